"""The event log as it grows: feedback look-up time and server memory from 1,000 to 10 million
logged predictions, and the rates of appending, sealing, compacting and scanning. One run, one
machine, a local folder store, loopback only (127.0.0.1).

The log grows in stages (1,000, 10,000, 100,000, 1 million, 10 million predictions in all).
Each stage appends its predictions with the log's own writer (requests of 100 rows, in the
columnar lines a server writes for a request of many rows), at a million an hour of event time
from eleven hours ago, then seals them into Parquet and compacts the finished hours, the way a
server does every minute and every hour. Each prediction has the flights model's seven inputs,
its score and label, and the fields a server logs.

After each stage a `loopml serve` process for the endpoint (started fresh, so none of the ids
is in its cache of recent predictions) answers 100 `POST /feedback` of one label each for
predictions picked at random across the whole log, one at a time: their latency (p50, p95), and
the server's resident memory after them. Beside it, what a user would write without an index:
the same ids looked up by scanning every sealed file with DuckDB (`SELECT endpoint FROM
read_parquet(all files) WHERE id = ?`), 5 look-ups.

At the last stage the same server is also measured under contention, the case of two clients
posting labels for ids the server has never seen: `wrk` (one thread, 4 connections, 10 s)
posts 1-row predictions alone, then again while two client threads post one label at a time
for ids picked across the whole log. The ratio of the two prediction rates is what look-ups
cost the server's other traffic; the label rate is what the two clients got.

Scan: a consistent snapshot of the whole log (`EventStore.snapshot`) and a DuckDB query over it
(count and mean score per hour): rows per second.

Run from the repository root in the benchmarks' environment (see benchmarks/README.md):

    benchmarks/.venv/bin/python benchmarks/events.py [--most 1000000]

With all stages it takes about a quarter of an hour on 2 cores and needs about 2 GB of disk.
The results go to benchmarks/results/events.md and events.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from machine import describe  # noqa: E402

STAGES = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
PER_HOUR = 1_000_000
REQUEST_ROWS = 100
LOOKUPS = 100
CONTENTION_SECONDS = 10
FEEDBACK_CLIENTS = 2
SCAN_LOOKUPS = 5
ENDPOINT = "flights"
CARRIERS = ["UA", "AA", "B6", "DL", "EV", "MQ", "US", "WN", "VX", "FL"]
AIRPORTS = ["EWR", "JFK", "LGA", "ATL", "ORD", "LAX", "BOS", "MCO", "SFO", "CLT"]


def register(folder: Path) -> None:
    """A workspace in folder with the endpoint's champion: a model on the seven inputs."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import loopml

    rng = np.random.default_rng(0)
    x = pd.DataFrame(
        {
            "month": rng.integers(1, 13, 500),
            "day": rng.integers(1, 29, 500),
            "dep_hour": rng.integers(5, 23, 500),
            "distance": rng.uniform(100, 2500, 500),
        }
    )
    (folder / "loopml.toml").write_text('home = ".loopml"\n')
    with loopml.use_workspace(folder):
        model = LogisticRegression().fit(x, x["dep_hour"] > 14)
        version = loopml.models.register(ENDPOINT, model, card=False)
        loopml.models.set_alias(ENDPOINT, "champion", version.version)


def append(store: Any, first: int, count: int, start: float) -> list[str]:
    """Append predictions number first..first+count, as a server logs requests of many rows;
    returns a sample of their ids (one per request)."""
    from loopml.ids import new_event_ids

    rng = np.random.default_rng(first)
    log = store.writer("predictions")
    sample = []
    for at in range(first, first + count, REQUEST_ROWS):
        rows = min(REQUEST_ROWS, first + count - at)
        moment = start + at * 3600 / PER_HOUR
        ids = new_event_ids(rows, moment)
        sample.append(ids[rng.integers(rows)])
        line = {
            "request_id": ids[0],
            "time": moment,
            "endpoint": ENDPOINT,
            "version": 1,
            "role": "champion",
            "dialect": "predict",
            "status": "ok",
            "latency_ms": 1.5,
            "cpu_ms": 1.2,
            "columns": {
                "id": ids,
                "input.month": rng.integers(1, 13, rows).tolist(),
                "input.day": rng.integers(1, 29, rows).tolist(),
                "input.dep_hour": rng.integers(5, 23, rows).tolist(),
                "input.distance": rng.uniform(100, 2500, rows).round(1).tolist(),
                "input.carrier": rng.choice(CARRIERS, rows).tolist(),
                "input.origin": rng.choice(AIRPORTS[:3], rows).tolist(),
                "input.dest": rng.choice(AIRPORTS, rows).tolist(),
                "output.score": rng.random(rows).round(6).tolist(),
                "output.label": (rng.random(rows) > 0.8).tolist(),
            },
        }
        log.append_lines((json.dumps(line, separators=(",", ":")) + "\n").encode())
    store.close()
    return sample


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve_lookups(folder: Path, ids: list[str], contend: list[str] | None) -> dict[str, float]:
    """Start a server, post one label for each id, one at a time: latency and memory; with
    ids to contend with, prediction throughput alone and beside look-ups of them."""
    port = free_port()
    log = open(folder / f"serve-{port}.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "loopml"), "serve", ENDPOINT, "--port", str(port)],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(base + "/v2/health/ready", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    text = (folder / f"serve-{port}.log").read_text()[-3000:]
                    raise SystemExit(f"the server did not start:\n{text}") from None
                time.sleep(0.2)
        before = resident_mb(process.pid)
        latencies, unknown = [], 0
        for found in ids:
            started = time.perf_counter()
            unknown += post_label(base, found)
            latencies.append(time.perf_counter() - started)
        found = {
            "lookup_p50_ms": statistics.median(latencies) * 1000,
            "lookup_p95_ms": float(np.percentile(latencies, 95)) * 1000,
            "server_mb_before": before,
            "server_mb_after": resident_mb(process.pid),
            "unknown": unknown,
            "lookups": len(ids),
        }
        if contend:
            found["contention"] = contention(folder, base, contend)
        return found
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def post_label(base: str, found: str) -> int:
    """Post one label for an id: 1 if the server answered it unknown, else 0."""
    body = json.dumps({"id": found, "label": True}).encode()
    request = urllib.request.Request(base + "/feedback", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as answer:
        return len(json.loads(answer.read())["unknown"])


def contention(folder: Path, base: str, ids: list[str]) -> dict[str, Any]:
    """Prediction requests/s alone, then while FEEDBACK_CLIENTS threads post labels for
    these ids (none in the server's cache), one at a time each, for as long."""
    from serving import lua_script, wrk

    record = {"month": 6, "day": 15, "dep_hour": 17, "distance": 1065.0}
    script = lua_script(folder / "predict.lua", json.dumps({"records": [record]}))
    alone = wrk(base + "/predict", script, 1, 4, CONTENTION_SECONDS)
    stop, posted, unknown = threading.Event(), [], []

    def client(offset: int) -> None:
        for found in ids[offset::FEEDBACK_CLIENTS]:
            if stop.is_set():
                return
            unknown.append(post_label(base, found))
            posted.append(time.perf_counter())

    clients = [threading.Thread(target=client, args=(k,)) for k in range(FEEDBACK_CLIENTS)]
    for thread in clients:
        thread.start()
    began = time.perf_counter()
    beside = wrk(base + "/predict", script, 1, 4, CONTENTION_SECONDS)
    elapsed = time.perf_counter() - began
    stop.set()
    for thread in clients:
        thread.join()
    return {
        "predict_alone_per_s": alone["requests_per_second"],
        "predict_beside_per_s": beside["requests_per_second"],
        "labels_per_s": sum(1 for at in posted if at <= began + elapsed) / elapsed,
        "labels_unknown": sum(unknown),
        "labels_posted": len(unknown),
    }


def scan_lookups(store: Any, ids: list[str]) -> float:
    """The p50 seconds of looking an id up by scanning every sealed file (no index)."""
    files = [store.location(f) for f in store.snapshot("predictions").files]
    connection = store.connect()
    times = []
    for found in ids:
        started = time.perf_counter()
        connection.execute(
            "SELECT endpoint FROM read_parquet(?, hive_partitioning = true, "
            "union_by_name = true) WHERE id = ?",
            [files, found],
        ).fetchall()
        times.append(time.perf_counter() - started)
    connection.close()
    return statistics.median(times)


def scan(store: Any) -> tuple[int, float]:
    """Rows and seconds of a snapshot of the whole log and a query over every row."""
    started = time.perf_counter()
    snapshot = store.snapshot("predictions")
    connection = store.connect()
    snapshot.view(connection, "predictions")
    rows = connection.execute(
        'SELECT hour, count(*), avg("output.score") FROM predictions GROUP BY hour'
    ).fetchall()
    connection.close()
    return sum(row[1] for row in rows), time.perf_counter() - started


def run(folder: Path, most: int) -> dict[str, Any]:
    import loopml
    from loopml.workspace import use_workspace

    register(folder)
    workspace = loopml.open_workspace(folder)
    store = workspace.events
    start = time.time() - 11 * 3600
    logged, sample, stages = 0, [], []
    with use_workspace(workspace):
        for total in (s for s in STAGES if s <= most):
            count = total - logged
            began = time.perf_counter()
            sample += append(store, logged, count, start)
            appended = time.perf_counter() - began
            began = time.perf_counter()
            sealed = store.seal("predictions")
            sealing = time.perf_counter() - began
            began = time.perf_counter()
            merged = store.compact("predictions", now=start + (total / PER_HOUR + 2) * 3600)
            compacting = time.perf_counter() - began
            logged = total
            rows, scanning = scan(store)
            assert rows == logged, (rows, logged)
            picked = random.Random(total).sample(sample, min(LOOKUPS, len(sample)))
            last = total == max(s for s in STAGES if s <= most)
            contend = random.Random(-total).sample(sample, len(sample)) if last else None
            served = serve_lookups(folder, picked, contend)
            stage = {
                "predictions": logged,
                "append_per_s": count / appended,
                "seal_per_s": sealed / sealing,
                "compact_seconds": compacting,
                "files_merged": merged,
                "files": len(store.snapshot("predictions").files),
                "scan_rows_per_s": rows / scanning,
                "scan_lookup_ms": scan_lookups(store, picked[:SCAN_LOOKUPS]) * 1000,
                "disk_mb": folder_mb(Path(store.root)),
                **served,
            }
            stages.append(stage)
            print(json.dumps(stage), flush=True)
    workspace.close()
    return {"machine": describe(("duckdb", "pyarrow", "pandas")), "stages": stages}


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def markdown(found: dict[str, Any]) -> str:
    info, stages = found["machine"], found["stages"]
    first, last = stages[0], stages[-1]
    lines = [
        "# The event log as it grows",
        "",
        f"One run on {info['cpu_count']} cores ({info['cpu']}), {info['memory_gib']:.0f} GiB, "
        f"Python {info['python']}, DuckDB {info['duckdb']}, pyarrow {info['pyarrow']}; "
        f"loopml at commit {info.get('loopml_commit')}"
        + (" with uncommitted changes in src/" if info.get("loopml_uncommitted_changes") else "")
        + ". Made by `benchmarks/events.py`, whose docstring says how.",
        "",
        "| predictions logged | feedback look-up p50 | p95 | server memory after | "
        "look-up by scanning every file | append | seal | scan | files | disk |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for stage in stages:
        lines.append(
            f"| {stage['predictions']:,} | {stage['lookup_p50_ms']:.1f} ms | "
            f"{stage['lookup_p95_ms']:.1f} ms | {stage['server_mb_after']:.0f} MB | "
            f"{stage['scan_lookup_ms']:.1f} ms | {stage['append_per_s']:,.0f}/s | "
            f"{stage['seal_per_s']:,.0f}/s | {stage['scan_rows_per_s']:,.0f} rows/s | "
            f"{stage['files']:,} | {stage['disk_mb']:,.0f} MB |"
        )
    growth = last["predictions"] / first["predictions"]
    lines += [
        "",
        f"From {first['predictions']:,} to {last['predictions']:,} predictions ({growth:,.0f}x), "
        f"the feedback look-up's p50 went from {first['lookup_p50_ms']:.1f} to "
        f"{last['lookup_p50_ms']:.1f} ms ({last['lookup_p50_ms'] / first['lookup_p50_ms']:.2f}x) "
        f"and the server's memory from {first['server_mb_after']:.0f} to "
        f"{last['server_mb_after']:.0f} MB; a look-up by scanning every file went from "
        f"{first['scan_lookup_ms']:.1f} to {last['scan_lookup_ms']:.1f} ms "
        f"({last['scan_lookup_ms'] / first['scan_lookup_ms']:.1f}x). Ids answered unknown: "
        f"{sum(s['unknown'] for s in stages)} of {sum(s['lookups'] for s in stages)}.",
        "",
    ]
    if "contention" in last:
        contended = last["contention"]
        lines += [
            f"Under contention, at {last['predictions']:,} predictions: the server answered "
            f"{contended['predict_alone_per_s']:,.0f} 1-row predictions/s alone and "
            f"{contended['predict_beside_per_s']:,.0f}/s while {FEEDBACK_CLIENTS} clients posted "
            f"labels for ids it had never seen "
            f"(**{contended['predict_beside_per_s'] / contended['predict_alone_per_s']:.2f}x**), "
            f"and those clients got {contended['labels_per_s']:,.0f} labels/s answered "
            f"({contended['labels_unknown']} of {contended['labels_posted']:,} unknown).",
            "",
        ]
    lines += [
        "Append is the log's writer alone (requests of 100 rows, a JSON line each); seal turns "
        "the stage's segments into Parquet partitions sorted by id; scan is a consistent "
        "snapshot of the whole log and a DuckDB query over every row. Finished hours are "
        "compacted to one file each after every stage.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--most", type=int, default=STAGES[-1], help="the last stage's size")
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite events.md from events.json"
    )
    args = parser.parse_args(argv)
    results = HERE / "results"
    if args.report_only:
        found = json.loads((results / "events.json").read_text())
    else:
        with tempfile.TemporaryDirectory(prefix="loopml-events-") as folder:
            found = run(Path(folder), args.most)
    results.mkdir(exist_ok=True)
    (results / "events.json").write_text(json.dumps(found, indent=2) + "\n")
    (results / "events.md").write_text(markdown(found))
    print(markdown(found))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
