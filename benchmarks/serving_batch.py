"""Batch scoring: `loopml predict` (loopml.serving.predict_batch) against the script a user
would write with raw `model.predict_proba`, over the same Parquet files of 1 million and 10
million rows. One run, one machine.

The model is serving.py's: HistGradientBoostingClassifier on NYC flights 2013 (month, day,
dep_hour, distance; carrier, origin, dest as categories). The inputs are training rows drawn
with replacement (seeded), written in row groups of 2^20 rows, so every row meets the contract
the model is registered with and nothing is quarantined.

Contenders, each in a fresh process so its peak memory (max RSS) is its own:

1. raw: read the file in batches of 2^18 rows with pyarrow, `to_pandas`, `predict_proba`,
   append the score, write input + score with a ParquetWriter. (Also timed without the write:
   "raw, no output", the floor of reading and predicting.)
2. loopml: `predict_batch(NAME@champion, input, output)` with its defaults: the same chunks,
   each validated against the contract, scored, written with prediction ids, scores and
   labels, and logged to the prediction log (Parquet partitions of the workspace).

Check (issue): loopml's throughput at least 80% of raw's, with peak memory flat as rows grow
(10M-row peak within 1.2x of the 1M-row peak).

    benchmarks/.venv/bin/python benchmarks/serving_batch.py [--rows 1000000,10000000]

It takes about five minutes at 10 million rows. Results: benchmarks/results/serving_batch.md.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from machine import describe
from serving import NAME, SEED, fit, flights_features

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
ROW_GROUP = 1 << 20
CHUNK = 1 << 18
TARGET_RATIO = 0.8
FLAT = 1.2


def write_input(train, rows: int, path: Path) -> None:
    """rows training rows drawn with replacement, in row groups of ROW_GROUP."""
    rng = np.random.default_rng(SEED)
    table = pa.Table.from_pandas(train, preserve_index=False)
    with pq.ParquetWriter(path, table.schema) as writer:
        for start in range(0, rows, ROW_GROUP):
            take = rng.integers(0, table.num_rows, min(ROW_GROUP, rows - start))
            writer.write_table(table.take(take))


# --- the contenders, each run in a process of its own ---------------------------------------


def raw(source: str, destination: str | None, model_path: str) -> int:
    model = pickle.loads(Path(model_path).read_bytes())
    parquet, rows, writer = pq.ParquetFile(source), 0, None
    for batch in parquet.iter_batches(batch_size=CHUNK):
        frame = batch.to_pandas()
        frame["score"] = model.predict_proba(frame)[:, 1]
        rows += len(frame)
        if destination is None:
            continue
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(destination, table.schema)
        writer.write_table(table)
    if writer is not None:
        writer.close()
    return rows


def loopml_batch(source: str, destination: str) -> int:
    from loopml.serving import predict_batch

    return predict_batch(f"{NAME}@champion", source, destination).scored


def worker(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    if args.worker == "loopml":
        rows = loopml_batch(args.input, args.output)
    else:
        rows = raw(args.input, args.output if args.worker == "raw" else None, args.model)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_bytes": peak}))


def run(kind: str, source: Path, folder: Path, model: Path) -> dict[str, Any]:
    output = folder / f"out-{kind}-{source.stem}.parquet"
    output.unlink(missing_ok=True)
    command = [sys.executable, __file__, "--worker", kind, "--input", str(source)]
    command += ["--output", str(output), "--model", str(model)]
    env = {**os.environ, "LOOPML_HOME": str(folder / "loopml")}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{done.stderr[-3000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    output.unlink(missing_ok=True)
    return found


# --- the benchmark -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="1000000,10000000")
    parser.add_argument("--output", type=Path, default=RESULTS / "serving_batch")
    parser.add_argument("--worker", choices=("raw", "raw-no-output", "loopml"))
    parser.add_argument("--input")
    parser.add_argument("--model")
    parser.add_argument("--report", action="store_true", help="rewrite the .md from the .json")
    args, _ = parser.parse_known_args()
    if args.report:
        found = json.loads(args.output.with_suffix(".json").read_text())
        args.output.with_suffix(".md").write_text(markdown(found))
        return
    if args.worker:
        args.output = args.output and str(args.output)
        worker(args)
        return
    sizes = [int(size) for size in args.rows.split(",")]
    with tempfile.TemporaryDirectory(prefix="loopml-batch-bench-") as temporary:
        folder = Path(temporary)
        found = measure(folder, sizes)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(found, indent=2) + "\n")
    args.output.with_suffix(".md").write_text(markdown(found))
    print(markdown(found))


def measure(folder: Path, sizes: list[int]) -> dict[str, Any]:
    os.environ["LOOPML_HOME"] = str(folder / "loopml")
    import loopml

    train, target, _ = flights_features()
    model = fit(train, target)
    model_path = folder / "model.pkl"
    model_path.write_bytes(pickle.dumps(model))
    version = loopml.models.register(NAME, model, contract=train, card=False)
    loopml.models.set_alias(NAME, "champion", version.version)
    found: dict[str, Any] = {"machine": machine(), "sizes": {}}
    for rows in sizes:
        source = folder / f"input-{rows}.parquet"
        write_input(train, rows, source)
        print(f"{rows:,} rows: {source.stat().st_size / 2**20:.0f} MiB of Parquet", flush=True)
        found["sizes"][rows] = {
            kind: run(kind, source, folder, model_path)
            for kind in ("raw-no-output", "raw", "loopml")
        }
        print(json.dumps(found["sizes"][rows]), flush=True)
        source.unlink()
    return found


def machine() -> dict[str, Any]:
    return describe(("scikit-learn", "pandas", "pyarrow"))


def markdown(found: dict[str, Any]) -> str:
    info = found["machine"]
    lines = [
        "# Batch scoring: loopml predict against raw model.predict_proba",
        "",
        f"One run on {info['cpu_count']} x {info['cpu']}, {info['memory_gib']:.0f} GiB, Python "
        f"{info['python']}, scikit-learn {info['scikit-learn']}, pandas {info['pandas']}, "
        f"pyarrow {info['pyarrow']}; loopml at commit {info['loopml_commit']}"
        + (" with uncommitted changes" if info["loopml_uncommitted_changes"] else "")
        + f", {info['date']}. Produced by `benchmarks/serving_batch.py`.",
        "",
        "| rows | contender | seconds | rows/s | vs raw | peak memory |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    sizes = found["sizes"]
    for rows, runs in sizes.items():
        base = runs["raw"]["rows"] / runs["raw"]["seconds"]
        for kind in ("raw-no-output", "raw", "loopml"):
            got = runs[kind]
            speed = got["rows"] / got["seconds"]
            lines.append(
                f"| {int(rows):,} | {kind} | {got['seconds']:.1f} | {speed:,.0f} | "
                f"{speed / base:.2f} | {got['peak_bytes'] / 2**20:,.0f} MiB |"
            )
    lines += ["", "## Checks", "", *checks(sizes)]
    lines += [
        "",
        "raw writes the input and the score; loopml writes the input, the prediction id, the "
        "score and the label, validates every chunk against the contract and writes every "
        "prediction to the log (inputs and outputs as typed columns). raw-no-output only reads "
        "and predicts: the floor.",
        "",
    ]
    return "\n".join(lines)


def checks(sizes: dict[Any, Any]) -> list[str]:
    keys = sorted(sizes, key=int)
    largest = sizes[keys[-1]]
    ratio = (largest["loopml"]["rows"] / largest["loopml"]["seconds"]) / (
        largest["raw"]["rows"] / largest["raw"]["seconds"]
    )
    found = [
        f"- Throughput at {int(keys[-1]):,} rows: loopml at {ratio:.0%} of raw "
        f"(target ≥ {TARGET_RATIO:.0%}): **{'PASS' if ratio >= TARGET_RATIO else 'FAIL'}**."
    ]
    if len(keys) > 1:
        small, big = sizes[keys[0]]["loopml"]["peak_bytes"], largest["loopml"]["peak_bytes"]
        growth = big / small
        found.append(
            f"- Peak memory of loopml: {small / 2**20:,.0f} MiB at {int(keys[0]):,} rows, "
            f"{big / 2**20:,.0f} MiB at {int(keys[-1]):,} rows, {growth:.2f}x (flat: ≤ {FLAT}x): "
            f"**{'PASS' if growth <= FLAT else 'FAIL'}**."
        )
    return found


if __name__ == "__main__":
    main()
