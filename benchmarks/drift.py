"""Data drift: loopml against Evidently and a hand-written SciPy floor, same files.

Workload: a reference set and a current set, each a Parquet file of 25 columns (the 20
numeric and 5 categorical columns of ``data.py``; snappy compression, row groups of 1,000,000
rows) at 1M and 10M rows each (``--quick``: 100k and 1M), generated in a temporary folder
from a seeded generator. The current set is drawn independently of the reference, from the
same distributions except in six columns (``SHIFTS``): a mean shift, a change of variance, a
mean shift in a column with nulls, a Poisson rate change, a change in the shares of
categories and a new category. Every line starts from the two files on disk and stops when
it holds a verdict per column:

- loopml: ``loopml.data.profile`` of each file (a streaming pass over record batches) and
  ``loopml.monitoring.drift(reference, current, alpha=0.05)``: KS on the sketches,
  chi-square on category counts, PSI, Jensen-Shannon, Wasserstein, Benjamini-Hochberg.
- Evidently: ``pd.read_parquet`` of both files and ``Report([DataDriftPreset()])`` run on
  the two DataFrames (numeric and categorical columns declared), then its ``dict()``.
  Evidently chooses its own tests: above 1,000 rows, the Wasserstein distance in units of the
  reference's standard deviation for numbers and the Jensen-Shannon distance for categories,
  each against a threshold of 0.1.
- SciPy floor: ``pyarrow.parquet.read_table`` of both files (strings as dictionaries), per
  numeric column ``scipy.stats.ks_2samp`` on all the values and PSI on the reference's
  deciles, per categorical column ``scipy.stats.chi2_contingency`` on the counts and PSI,
  then Benjamini-Hochberg at the same level as loopml; the columns are tested on a thread
  pool of one thread per core (NumPy's sorts release the GIL).

Every line must report exactly the six shifted columns as drifted, or the benchmark stops.
An unshifted column can fire by chance in the tests at level 0.05 (loopml's and the floor's):
the seed is one at which none does at 100k, 1M or 10M rows (see ``SEED_NOTE``).

Each measurement runs in its own Python process: the time excludes the imports and starts
with the files on disk; peak memory is that process's high-water resident set (VmHWM). Each
line runs 3 times per size (median reported), or once when its first run takes over a
minute. Evidently is not run at a size where its time or memory, extrapolated linearly from
the size before, would pass 10 minutes or 16 GiB; the results then give the estimate.

Run from the repository root:

    python3 -m venv benchmarks/.venv
    benchmarks/.venv/bin/pip install -e . -r benchmarks/requirements.txt
    benchmarks/.venv/bin/python benchmarks/drift.py

Results go to benchmarks/results/drift.json and benchmarks/results/drift.md.
"""

from __future__ import annotations

import os

# Set before any tool is imported: no usage reporting.
os.environ.setdefault("DO_NOT_TRACK", "1")

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from data import (
    CATEGORICAL,
    NUMERIC,
    CheckFailed,
    Clock,
    Numeric,
    check,
    describe_source,
    draw,
    format_rows,
    format_seconds,
    resident_mib,
)
from machine import describe

SEED = 20_251_202  # see SEED_NOTE
ROW_GROUP = 1_000_000
COMPRESSION = "snappy"
ALPHA = 0.05
DECILES = 10
PSI_EPSILON = 1e-4  # shares smoothed as loopml.data.shift does, so the PSIs compare
SEED_NOTE = (
    "The seed is one at which no unshifted column fires by chance in loopml's or the floor's "
    "tests at 100k, 1M or 10M rows; the one before it (20251201) fails at 100k (c1, adjusted "
    "p = 0.014). Benjamini-Hochberg bounds the expected share of false alarms among the "
    "columns flagged, not the chance of one: with 19 unshifted columns, one fires by chance "
    "in roughly one sample in five, and the benchmark would stop, since every line is held "
    "to the six shifted columns."
)
RESULTS = Path(__file__).resolve().parent / "results"
SCRIPT = Path(__file__).resolve()
TARGET_EVIDENTLY_SPEEDUP = 20.0
TARGET_EVIDENTLY_MEMORY = 5.0  # loopml's peak at most 1/5 of Evidently's
TARGET_FLOOR_SPEEDUP = 1.0
TARGET_PEAK_MIB = 2048.0
EVIDENTLY_MAX_SECONDS = 600.0
EVIDENTLY_MAX_MIB = 16 * 1024.0
WORKER_TIMEOUT = 1200.0
REPEATS = 3
REPEAT_UNDER_SECONDS = 60.0  # a line whose first run takes longer runs once


# --- the data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Shift:
    """How the current set differs from the reference in one column."""

    column: str
    what: str
    parameters: tuple[float, ...] = ()  # numbers: the current set's distribution parameters
    moved_share: float = 0.0  # categories: share of rows moved from the most to least frequent
    new_share: float = 0.0  # categories: share of rows given a value the reference never has


SHIFTS = (
    Shift("f00", "mean +0.2 sd (normal 0, 1 -> 0.2, 1)", parameters=(0.2, 1.0)),
    Shift("f01", "sd x1.5 (normal 100, 15 -> 100, 22.5)", parameters=(100.0, 22.5)),
    Shift("f12", "mean +0.3 sd, 1% nulls (normal 37, 2 -> 37.6, 2)", parameters=(37.6, 2.0)),
    Shift("i1", "Poisson rate 3 -> 3.5", parameters=(3.5,)),
    Shift(
        "c0", "15% of rows move from the most to the least frequent value (of 5)", moved_share=0.15
    ),
    Shift("c2", "10% of rows take a value the reference never has (of 100)", new_share=0.10),
)
SHIFT_BY_COLUMN = {shift.column: shift for shift in SHIFTS}
SIDES = {"reference": 0, "current": 1}


def generate(folder: Path, rows: int) -> dict[str, Any]:
    """Write the reference and the current set of `rows` rows each; their paths and sizes."""
    files = {}
    for side in SIDES:
        path = folder / f"{side}_{rows}.parquet"
        write_side(path, side, rows)
        files[side] = {"path": str(path), "bytes": path.stat().st_size}
    return files


def write_side(path: Path, side: str, rows: int) -> None:
    """One set, in chunks of ROW_GROUP rows from a generator seeded by side and chunk index
    (so a smaller file's rows are the start of a larger one's)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = table_schema()
    with pq.ParquetWriter(path, schema, compression=COMPRESSION) as writer:
        for index, start in enumerate(range(0, rows, ROW_GROUP)):
            count = min(ROW_GROUP, rows - start)
            arrays = chunk(side, index, count)
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema), ROW_GROUP)


def table_schema() -> Any:
    import pyarrow as pa

    fields = [pa.field(s.name, pa.float64() if s.kind == "float" else pa.int64()) for s in NUMERIC]
    fields += [pa.field(s.name, pa.string()) for s in CATEGORICAL]
    return pa.schema(fields)


def chunk(side: str, index: int, count: int) -> list[Any]:
    import numpy as np

    rng = np.random.default_rng([SEED, SIDES[side], index])
    shifts = SHIFT_BY_COLUMN if side == "current" else {}
    arrays = [numeric_array(rng, spec, count, shifts.get(spec.name)) for spec in NUMERIC]
    arrays += [categorical_array(rng, spec, count, shifts.get(spec.name)) for spec in CATEGORICAL]
    return arrays


def numeric_array(rng: Any, spec: Numeric, count: int, shift: Shift | None) -> Any:
    import numpy as np
    import pyarrow as pa

    if shift is not None:
        spec = replace(spec, parameters=shift.parameters)
    values = np.clip(draw(rng, spec, count), spec.low, spec.high)
    if spec.kind == "integer":
        values = values.astype(np.int64)
    missing = rng.random(count) < spec.null_rate if spec.null_rate else None
    return pa.array(values, mask=missing)


def categorical_array(rng: Any, spec: Any, count: int, shift: Shift | None) -> Any:
    """Values drawn with Zipf-like frequencies, as in data.py, then shifted."""
    import numpy as np
    import pyarrow as pa

    labels = spec.labels()
    weights = 1.0 / np.arange(1, spec.cardinality + 1) ** 0.8
    weights /= weights.sum()
    if shift is not None and shift.moved_share:
        weights[0] -= shift.moved_share
        weights[-1] += shift.moved_share
    indices = rng.choice(spec.cardinality, count, p=weights).astype(np.int32)
    if shift is not None and shift.new_share:
        labels = [*labels, f"{spec.name}_new"]
        indices[rng.random(count) < shift.new_share] = len(labels) - 1
    missing = rng.random(count) < spec.null_rate if spec.null_rate else None
    encoded = pa.DictionaryArray.from_arrays(pa.array(indices, mask=missing), pa.array(labels))
    return encoded.cast(pa.string())


NUMERIC_NAMES = [spec.name for spec in NUMERIC]
CATEGORICAL_NAMES = [spec.name for spec in CATEGORICAL]


# --- the lines (each runs in a worker process) --------------------------------------------


def run_loopml(reference: str, current: str, clock: Clock) -> dict[str, Any]:
    import loopml
    from loopml.monitoring import drift

    before = loopml.data.profile(reference)
    after = loopml.data.profile(current)
    clock.mark("loopml.profiles")
    report = drift(before, after, alpha=ALPHA)
    clock.mark("loopml")
    features = {
        f.name: {
            "test": f.test,
            "statistic": f.statistic,
            "p_value": f.p_value,
            "adjusted_p_value": f.adjusted_p_value,
            "psi": f.psi,
            "drifted": f.drifted,
        }
        for f in report.features
    }
    return {"drifted": sorted(report.drifted), "features": features}


def run_evidently(reference: str, current: str, clock: Clock) -> dict[str, Any]:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=NUMERIC_NAMES, categorical_columns=CATEGORICAL_NAMES
    )
    before = Dataset.from_pandas(pd.read_parquet(reference), data_definition=definition)
    after = Dataset.from_pandas(pd.read_parquet(current), data_definition=definition)
    clock.mark("evidently.read")
    found = Report([DataDriftPreset()]).run(current_data=after, reference_data=before).dict()
    clock.mark("evidently")
    features = evidently_features(found)
    return {"drifted": sorted(n for n, f in features.items() if f["drifted"]), "features": features}


SCORES = ("distance", "divergence", "psi")  # Evidently's methods that return a score


def evidently_features(found: dict[str, Any]) -> dict[str, Any]:
    """Each column's ValueDrift: its method, score and threshold, and whether it drifted (a
    distance at or above its threshold, a p-value below it), read back from the snapshot and
    checked against Evidently's own count of drifted columns."""
    features, counted = {}, None
    for metric in found["metrics"]:
        config = metric["config"]
        if config["type"].endswith("DriftedColumnsCount"):
            counted = int(metric["value"]["count"])
        if not config["type"].endswith("ValueDrift"):
            continue
        method, threshold, score = config["method"], config["threshold"], metric["value"]
        distance = any(word in method.lower() for word in SCORES)
        features[config["column"]] = {
            "method": method,
            "score": score,
            "threshold": threshold,
            "drifted": bool(score >= threshold if distance else score < threshold),
        }
    drifted = sum(f["drifted"] for f in features.values())
    check(counted == drifted, f"Evidently counts {counted} drifted columns, its columns {drifted}")
    return features


def run_floor(reference: str, current: str, clock: Clock) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.parquet as pq
    from scipy import stats

    before = pq.read_table(reference, read_dictionary=CATEGORICAL_NAMES)
    after = pq.read_table(current, read_dictionary=CATEGORICAL_NAMES)
    clock.mark("floor.read")
    jobs = [(numeric_test, name) for name in NUMERIC_NAMES]
    jobs += [(categorical_test, name) for name in CATEGORICAL_NAMES]
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        tested = list(pool.map(lambda job: job[0](before[job[1]], after[job[1]]), jobs))
    adjusted = stats.false_discovery_control([t["p_value"] for t in tested], method="bh")
    features = {}
    for (_, name), test, value in zip(jobs, tested, adjusted, strict=True):
        features[name] = {**test, "adjusted_p_value": float(value), "drifted": bool(value < ALPHA)}
    clock.mark("floor")
    return {"drifted": sorted(n for n, f in features.items() if f["drifted"]), "features": features}


def numeric_test(reference: Any, current: Any) -> dict[str, Any]:
    """KS on all the values, PSI on the reference's deciles."""
    import numpy as np
    from scipy import stats

    a = reference.drop_null().to_numpy()
    b = current.drop_null().to_numpy()
    statistic, p_value = stats.ks_2samp(a, b)
    edges = np.unique(np.quantile(a, np.linspace(0, 1, DECILES + 1)[1:-1]))
    p = np.bincount(np.searchsorted(edges, a, side="right"), minlength=len(edges) + 1)
    q = np.bincount(np.searchsorted(edges, b, side="right"), minlength=len(edges) + 1)
    return {
        "test": "ks",
        "statistic": float(statistic),
        "p_value": float(p_value),
        "psi": psi(p, q),
    }


def categorical_test(reference: Any, current: Any) -> dict[str, Any]:
    """Chi-square of homogeneity on the counts of every value seen on either side, and PSI."""
    import numpy as np
    from scipy import stats

    a, b = value_counts(reference), value_counts(current)
    values = sorted(a.keys() | b.keys())
    p = np.array([a.get(v, 0) for v in values], dtype=float)
    q = np.array([b.get(v, 0) for v in values], dtype=float)
    statistic, p_value, _, _ = stats.chi2_contingency(np.vstack([p, q]), correction=False)
    return {
        "test": "chi-square",
        "statistic": float(statistic),
        "p_value": float(p_value),
        "psi": psi(p, q),
    }


def value_counts(column: Any) -> dict[str, int]:
    import pyarrow.compute as pc

    counts = pc.value_counts(column)
    values = counts.field("values").cast("string").to_pylist()
    found = dict(zip(values, counts.field("counts").to_pylist(), strict=True))
    found.pop(None, None)  # the count of nulls
    return found


def psi(reference: Any, current: Any) -> float:
    """Population stability index of two arrays of counts, shares smoothed by PSI_EPSILON."""
    import numpy as np

    p = reference / reference.sum() + PSI_EPSILON
    q = current / current.sum() + PSI_EPSILON
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((q - p) * np.log(q / p)))


WORKERS: dict[str, tuple[list[str], Callable[[str, str, Clock], dict[str, Any]]]] = {
    "loopml": (["loopml.data", "loopml.monitoring"], run_loopml),
    "floor": (["pyarrow.parquet", "pyarrow.compute", "scipy.stats"], run_floor),
    "evidently": (["pandas", "pyarrow.parquet", "evidently", "evidently.presets"], run_evidently),
}


def worker(name: str, reference: str, current: str, output: str) -> None:
    """Import the tool (untimed), then time it from the files on disk to a verdict per
    column."""
    import importlib

    modules, action = WORKERS[name]
    started = time.perf_counter()
    for module in modules:
        importlib.import_module(module)
    imported = time.perf_counter() - started
    baseline = resident_mib()
    clock = Clock()
    found = action(reference, current, clock)
    found |= {"marks": clock.marks, "import_seconds": imported, "baseline_mib": baseline}
    Path(output).write_text(json.dumps(found))


# --- running the lines --------------------------------------------------------------------


@dataclass
class Line:
    """One timed measurement: a tool (or part of one) on one pair of files."""

    id: str
    rows: int
    seconds: float
    peak_mib: float
    baseline_mib: float
    import_seconds: float
    ru_maxrss_mib: float = math.nan
    runs: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Tool:
    id: str
    label: str
    role: str  # "loopml", "loopml part", "alternative", "alternative part"


TOOLS = (
    Tool("loopml", "loopml: `data.profile` x2 + `monitoring.drift`", "loopml"),
    Tool("loopml.profiles", "loopml: the two profiles alone", "loopml part"),
    Tool("floor", "SciPy floor: read + `ks_2samp` / `chi2_contingency` + PSI", "alternative"),
    Tool("floor.read", "SciPy floor: `read_table` of both files alone", "alternative part"),
    Tool("evidently", "Evidently: `read_parquet` + `DataDriftPreset`", "alternative"),
    Tool("evidently.read", "Evidently: `read_parquet` + `Dataset` alone", "alternative part"),
)
TOOL_BY_ID = {tool.id: tool for tool in TOOLS}


def run_worker(name: str, files: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Run one line in a fresh process; its output plus the kernel's peak-memory figure."""
    output = folder / f"{name}.json"
    output.unlink(missing_ok=True)
    paths = [files["reference"]["path"], files["current"]["path"]]
    command = [sys.executable, str(SCRIPT), "--worker", name, *paths, str(output)]
    process = subprocess.Popen(command)
    deadline = time.monotonic() + WORKER_TIMEOUT
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            process.kill()
            os.wait4(process.pid, 0)
            raise CheckFailed(f"{name} did not finish in {WORKER_TIMEOUT:.0f} s")
        time.sleep(0.05)
    code = os.waitstatus_to_exitcode(status)
    check(code == 0, f"{name} exited with {code}")
    found = json.loads(output.read_text())
    found["ru_maxrss_mib"] = usage.ru_maxrss / 1024
    return found


def measure(
    name: str, rows: int, files: dict[str, Any], folder: Path, repeats: int
) -> tuple[list[Line], dict[str, Any]]:
    """Run a worker up to `repeats` times (once if its first run is slow); one Line per
    mark, with the median time."""
    outputs = [run_worker(name, files, folder)]
    if outputs[0]["marks"][-1]["seconds"] < REPEAT_UNDER_SECONDS:
        outputs += [run_worker(name, files, folder) for _ in range(repeats - 1)]
    lines = []
    for index, mark in enumerate(outputs[0]["marks"]):
        times = [out["marks"][index]["seconds"] for out in outputs]
        lines.append(
            Line(
                id=mark["line"],
                rows=rows,
                seconds=statistics.median(times),
                peak_mib=max(out["marks"][index]["peak_mib"] for out in outputs),
                baseline_mib=max(out["baseline_mib"] for out in outputs),
                import_seconds=statistics.median(out["import_seconds"] for out in outputs),
                ru_maxrss_mib=max(out["ru_maxrss_mib"] for out in outputs),
                runs=times,
            )
        )
    return lines, outputs[0]


def evidently_estimate(lines: list[Line], rows: int) -> dict[str, float] | None:
    """Linear extrapolation of Evidently's time and memory above its import baseline from
    the largest size measured so far to `rows`."""
    done = [line for line in lines if line.id == "evidently"]
    if not done:
        return None
    last = max(done, key=lambda line: line.rows)
    factor = rows / last.rows
    return {
        "from_rows": last.rows,
        "seconds": last.seconds * factor,
        "peak_mib": last.baseline_mib + (last.peak_mib - last.baseline_mib) * factor,
    }


@dataclass
class SizeResult:
    """Everything measured on one pair of files."""

    rows: int
    file_bytes: dict[str, int]
    generate_seconds: float
    repeats: int
    lines: list[Line] = field(default_factory=list)
    found: dict[str, Any] = field(default_factory=dict)  # per tool: drifted and features
    skipped: dict[str, Any] = field(default_factory=dict)


def run_size(rows: int, folder: Path, repeats: int, earlier: list[Line]) -> SizeResult:
    """Generate the two files, run every line on them, check the verdicts, delete them."""
    started = time.perf_counter()
    files = generate(folder, rows)
    result = SizeResult(
        rows,
        {side: item["bytes"] for side, item in files.items()},
        time.perf_counter() - started,
        repeats,
    )
    size = sum(result.file_bytes.values()) / 2**20
    print(
        f"\n{rows:,} rows per set: {size:,.0f} MiB of Parquet, generated in "
        f"{result.generate_seconds:.0f} s",
        flush=True,
    )
    for name in WORKERS:
        estimate = evidently_estimate(earlier, rows) if name == "evidently" else None
        if estimate and (
            estimate["seconds"] > EVIDENTLY_MAX_SECONDS or estimate["peak_mib"] > EVIDENTLY_MAX_MIB
        ):
            result.skipped[name] = estimate
            print(
                f"  {name} skipped: estimated {estimate['seconds']:,.0f} s, "
                f"{estimate['peak_mib']:,.0f} MiB",
                flush=True,
            )
            continue
        lines, output = measure(name, rows, files, folder, repeats)
        for line in lines:
            print(
                f"  {line.id:<16} {line.seconds:8.2f} s {line.peak_mib:>9,.0f} MiB peak",
                flush=True,
            )
        print(f"  {name} found drift in: {', '.join(output['drifted']) or '(none)'}", flush=True)
        result.lines += lines
        result.found[name] = {"drifted": output["drifted"], "features": output["features"]}
    for item in files.values():
        Path(item["path"]).unlink()
    verify(result)
    return result


def verify(result: SizeResult) -> None:
    """Every line must find drift in exactly the shifted columns."""
    expected = sorted(SHIFT_BY_COLUMN)
    for name, found in result.found.items():
        check(
            found["drifted"] == expected,
            f"{name} at {result.rows:,} rows found drift in {found['drifted']}, "
            f"the shifted columns are {expected}",
        )


# --- reporting ----------------------------------------------------------------------------


def line(result: SizeResult, tool_id: str) -> Line | None:
    return next((item for item in result.lines if item.id == tool_id), None)


def ordered(lines: list[Line]) -> list[Line]:
    """Lines in the order of TOOLS: each tool's whole line before its parts."""
    rank = {tool.id: index for index, tool in enumerate(TOOLS)}
    return sorted(lines, key=lambda item: rank[item.id])


def speedups(result: SizeResult) -> dict[str, float]:
    """loopml's speed-up over the other lines on the same files (their time over its)."""
    ours = line(result, "loopml")
    assert ours is not None
    return {
        item.id: item.seconds / ours.seconds
        for item in result.lines
        if not TOOL_BY_ID[item.id].role.startswith("loopml")
    }


def targets(results: list[SizeResult]) -> dict[str, Any]:
    """The issue's targets: against Evidently at 1M rows, against the floor at every size,
    and loopml's peak at the largest size."""
    goals: dict[str, Any] = {}
    first = next((r for r in results if r.rows == 1_000_000), results[-1])
    ours, theirs = line(first, "loopml"), line(first, "evidently")
    assert ours is not None
    if theirs is not None:
        speedup, share = theirs.seconds / ours.seconds, theirs.peak_mib / ours.peak_mib
        goals["evidently_speed"] = {
            "description": f"at least {TARGET_EVIDENTLY_SPEEDUP:g}x faster than Evidently at "
            f"{first.rows:,} rows",
            "value": speedup,
            "met": speedup >= TARGET_EVIDENTLY_SPEEDUP,
        }
        goals["evidently_memory"] = {
            "description": f"peak memory at most 1/{TARGET_EVIDENTLY_MEMORY:g} of Evidently's "
            f"at {first.rows:,} rows",
            "value": share,
            "loopml_mib": ours.peak_mib,
            "evidently_mib": theirs.peak_mib,
            "met": share >= TARGET_EVIDENTLY_MEMORY,
        }
    for result in results:
        ours, floor = line(result, "loopml"), line(result, "floor")
        assert ours is not None and floor is not None
        speedup = floor.seconds / ours.seconds
        goals[f"floor_speed_{result.rows}"] = {
            "description": f"no slower than the SciPy floor at {result.rows:,} rows",
            "value": speedup,
            "met": speedup >= TARGET_FLOOR_SPEEDUP,
        }
    large = line(results[-1], "loopml")
    assert large is not None
    goals["peak_memory"] = {
        "description": f"peak memory under {TARGET_PEAK_MIB:,.0f} MiB at {results[-1].rows:,} rows",
        "value_mib": large.peak_mib,
        "met": large.peak_mib < TARGET_PEAK_MIB,
    }
    return goals


def goal_value(key: str, goal: dict[str, Any]) -> str:
    if key == "evidently_memory":
        return (
            f"{goal['loopml_mib']:,.0f} MiB vs {goal['evidently_mib']:,.0f} MiB "
            f"(1/{goal['value']:.1f})"
        )
    if key == "peak_memory":
        return f"{goal['value_mib']:,.0f} MiB"
    return f"{goal['value']:.1f}x"


def yes(met: bool) -> str:
    return "yes" if met else "**no**"


def table(results: list[SizeResult]) -> str:
    """The plain-text table printed at the end."""
    header = f"{'rows':>5}  {'line':<16} {'seconds':>9} {'peak MiB':>9} {'loopml x':>9}"
    out = [header, "-" * len(header)]
    for result in results:
        ups = speedups(result)
        for item in ordered(result.lines):
            ratio = f"{ups[item.id]:.1f}x" if item.id in ups else ""
            out.append(
                f"{format_rows(result.rows):>5}  {item.id:<16} {item.seconds:9.2f} "
                f"{item.peak_mib:9,.0f} {ratio:>9}"
            )
        for name, estimate in result.skipped.items():
            out.append(
                f"{format_rows(result.rows):>5}  {name:<16} not run: estimated "
                f"{estimate['seconds']:,.0f} s and {estimate['peak_mib']:,.0f} MiB"
            )
    return "\n".join(out)


def markdown(
    info: dict[str, Any], results: list[SizeResult], goals: dict[str, Any], seconds: float
) -> str:
    large = results[-1]
    ours, floor = line(large, "loopml"), line(large, "floor")
    assert ours is not None and floor is not None
    parts = [
        "# Data drift: loopml vs Evidently and a SciPy floor",
        "",
        f"{info['date']}, {info['cpu_count']} CPUs ({info['cpu']}), {info['memory_gib']:.0f} "
        f"GiB RAM, Python {info['python']}, loopml {info['loopml']}{describe_source(info)}, "
        f"pandas {info['pandas']}, pyarrow {info['pyarrow']}, NumPy {info['numpy']}, SciPy "
        f"{info['scipy']}, Evidently {info['evidently']}. The whole benchmark took "
        f"{seconds:,.0f} s; the load average (1 min) was "
        f"{info['load_average_1min_at_start']:.2f} when it started.",
        "",
        f"**loopml tests two sets of {format_rows(large.rows)} rows x 25 columns for drift, "
        f"from the Parquet files to the report, in {format_seconds(ours.seconds)} with a peak "
        f"of {ours.peak_mib:,.0f} MiB: {floor.seconds / ours.seconds:.1f}x faster than the "
        f"SciPy floor on all the values ({format_seconds(floor.seconds)}, "
        f"{floor.peak_mib:,.0f} MiB).{evidently_summary(results)}**",
        "",
        "## Targets",
        "",
        "| target | result | met |",
        "| --- | --- | --- |",
    ]
    for key, goal in goals.items():
        parts.append(f"| {goal['description']} | {goal_value(key, goal)} | {yes(goal['met'])} |")
    parts += ["", "## Results", ""]
    for result in results:
        parts += size_table(result)
    parts += shifts_list()
    for result in results:
        parts += features_table(result)
    parts += method(results)
    return "\n".join(parts) + "\n"


def evidently_summary(results: list[SizeResult]) -> str:
    measured = [(r, line(r, "evidently")) for r in results if line(r, "evidently")]
    if not measured:
        return ""
    result, theirs = measured[-1]
    ours = line(result, "loopml")
    assert ours is not None and theirs is not None
    return (
        f" At {format_rows(result.rows)} rows it is {theirs.seconds / ours.seconds:.0f}x "
        f"faster than Evidently's DataDriftPreset ({format_seconds(theirs.seconds)}) with "
        f"1/{theirs.peak_mib / ours.peak_mib:.1f} of its peak memory ({theirs.peak_mib:,.0f} MiB)."
    )


def size_table(result: SizeResult) -> list[str]:
    ups = speedups(result)
    size = sum(result.file_bytes.values()) / 2**20
    out = [
        f"### {result.rows:,} rows per set (two files, {size:,.0f} MiB of Parquet)",
        "",
        "| line | time | peak memory | memory after imports | loopml speed-up | drift found in |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for item in ordered(result.lines):
        tool = TOOL_BY_ID[item.id]
        if item.id in ups:
            ratio = f"**{ups[item.id]:.1f}x**" if tool.role == "alternative" else ""
            ratio = ratio or f"({ups[item.id]:.1f}x)"
        else:
            ratio = ""
        drifted = result.found.get(item.id, {}).get("drifted")
        found = ", ".join(drifted) if drifted is not None else ""
        out.append(
            f"| {tool.label} | {format_seconds(item.seconds)} | {item.peak_mib:,.0f} MiB | "
            f"{item.baseline_mib:,.0f} MiB | {ratio} | {found} |"
        )
    for name, estimate in result.skipped.items():
        out.append(
            f"| {TOOL_BY_ID[name].label} | not run (estimated "
            f"{format_seconds(estimate['seconds'])} from {format_rows(estimate['from_rows'])} "
            f"rows) | estimated {estimate['peak_mib']:,.0f} MiB | | | |"
        )
    out += [
        "",
        "In brackets: loopml's whole line against that part of the other line alone.",
        "",
    ]
    return out


def shifts_list() -> list[str]:
    out = ["### The shifted columns", ""]
    out += [f"- {shift.column}: {shift.what}" for shift in SHIFTS]
    return [*out, ""]


def features_table(result: SizeResult) -> list[str]:
    """Each column's verdict and measures at one size, line by line."""
    ours, floor = result.found["loopml"]["features"], result.found["floor"]["features"]
    theirs = result.found.get("evidently", {}).get("features")
    header = "| column | loopml statistic | loopml p | loopml PSI | floor statistic | floor p | "
    header += "floor PSI |" + (" Evidently |" if theirs else "")
    out = [
        f"### Each column at {result.rows:,} rows",
        "",
        "Statistic: KS (numbers) or chi-square (categories); p: adjusted by Benjamini-Hochberg"
        + ("; Evidently: its method's score against its threshold" if theirs else "")
        + ". Shifted columns are in bold.",
        "",
        header,
        "|" + " --- |" * (header.count("|") - 1),
    ]
    for name in [*NUMERIC_NAMES, *CATEGORICAL_NAMES]:
        mine, exact = ours[name], floor[name]
        label = f"**{name}**" if name in SHIFT_BY_COLUMN else name
        row = (
            f"| {label} | {mine['statistic']:.4g} | {mine['adjusted_p_value']:.3g} | "
            f"{mine['psi']:.3g} | {exact['statistic']:.4g} | {exact['adjusted_p_value']:.3g} | "
            f"{exact['psi']:.3g} |"
        )
        if theirs:
            other = theirs[name]
            drifted = " (drift)" if other["drifted"] else ""
            row += f" {other['method']} {other['score']:.3f} vs {other['threshold']:g}{drifted} |"
        out.append(row)
    return [*out, ""]


def method(results: list[SizeResult]) -> list[str]:
    runs = "once" if results[-1].repeats == 1 else f"{results[-1].repeats} times"
    return [
        "## Method",
        "",
        f"Both sets come from NumPy's seeded generator ({SEED}, one stream per set and chunk "
        "of rows), with the 25 columns of the data benchmark (`data.py`): 15 float64 and 5 "
        "int64 columns (normal, lognormal, uniform, exponential, beta, Poisson, binomial, "
        "four floats with 1% nulls) and 5 strings with 5 to 1,000 values of Zipf-like "
        "frequencies (one with 1% nulls). The current set is an independent sample of the "
        "same distributions except in the six shifted columns listed above. Each set is "
        f"written with pyarrow as Parquet, {COMPRESSION} compression, one row group per "
        f"{ROW_GROUP:,} rows. {SEED_NOTE}",
        "",
        "Each line runs in a fresh Python process started after the files are written (so they "
        "are in the page cache for every line). The clock starts after the tool's imports and "
        "stops when a verdict per column is a Python object. loopml: "
        "`loopml.data.profile(path)` of each file and `loopml.monitoring.drift(reference, "
        f"current, alpha={ALPHA})`. SciPy floor: `pq.read_table` of both files with the "
        "strings as dictionaries; per numeric column `scipy.stats.ks_2samp` on all non-null "
        "values and PSI on the reference's deciles (`np.quantile`, `np.searchsorted`, "
        "`np.bincount`); per categorical column `pyarrow.compute.value_counts` on each side, "
        "`scipy.stats.chi2_contingency` on the two rows of counts and PSI on the shares; the "
        "25 columns on a thread pool of one thread per core; `scipy.stats."
        f"false_discovery_control` (Benjamini-Hochberg) across columns, drift below {ALPHA}. "
        "PSI smooths shares by 1e-4 in both, so the values compare. Evidently: `pd."
        "read_parquet` of both files, `Dataset.from_pandas` with the numeric and categorical "
        "columns declared, `Report([DataDriftPreset()]).run(current, reference)` and the "
        "snapshot's `dict()`; a column drifts when its `ValueDrift` score passes the threshold "
        "Evidently chose. Its defaults above 1,000 rows are effect sizes, not tests: the "
        "Wasserstein distance over the reference's standard deviation for numbers and the "
        "Jensen-Shannon distance for categories, each at 0.1; the shifts are large enough to "
        "pass them, so all three lines must name the same six columns, or the benchmark stops.",
        "",
        "Peak memory is the process's high-water resident set (`VmHWM`), imports included; "
        "the memory after imports is given beside it, and `drift.json` also has the kernel's "
        f"`ru_maxrss` of each process. Each line runs {runs} per size and the median time is "
        "reported (`drift.json` lists every run), except a line whose first run takes over "
        f"{REPEAT_UNDER_SECONDS:.0f} s, which runs once. Evidently is not run at a size where "
        "its time or memory above its imports, extrapolated linearly from the size before, "
        f"would pass {EVIDENTLY_MAX_SECONDS / 60:.0f} minutes or "
        f"{EVIDENTLY_MAX_MIB / 1024:.0f} GiB. The speed-up is the other line's time divided "
        "by loopml's on the same files. Ratios are the numbers to compare across machines; "
        "absolute times depend on the machine.",
        "",
        "Reproduce with `benchmarks/.venv/bin/python benchmarks/drift.py` (see "
        "benchmarks/README.md).",
    ]


def machine() -> dict[str, Any]:
    return describe(("loopml", "pandas", "pyarrow", "numpy", "scipy", "evidently"))


def results_json(
    info: dict[str, Any], results: list[SizeResult], goals: dict[str, Any], seconds: float
) -> dict[str, Any]:
    sizes = []
    for result in results:
        ups = speedups(result)
        sizes.append(
            {
                "rows": result.rows,
                "columns": len(NUMERIC) + len(CATEGORICAL),
                "file_bytes": result.file_bytes,
                "generate_seconds": result.generate_seconds,
                "repeats_at_most": result.repeats,
                "lines": [
                    {
                        **asdict(item),
                        "label": TOOL_BY_ID[item.id].label,
                        "role": TOOL_BY_ID[item.id].role,
                        "loopml_speedup": ups.get(item.id),
                    }
                    for item in result.lines
                ],
                "found": result.found,
                "not_run": result.skipped,
            }
        )
    return {
        "benchmark": "data drift",
        "machine": info,
        "settings": {
            "seed": SEED,
            "seed_note": SEED_NOTE,
            "alpha": ALPHA,
            "row_group_rows": ROW_GROUP,
            "compression": COMPRESSION,
            "shifts": [asdict(shift) for shift in SHIFTS],
            "worker_timeout_seconds": WORKER_TIMEOUT,
        },
        "targets": goals,
        "sizes": sizes,
        "seconds": seconds,
    }


# --- entry point --------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="100k and 1M rows instead of 1M and 10M, to check the script; "
        "writes no results unless --output is given",
    )
    parser.add_argument(
        "--output", type=Path, help="write drift.json and drift.md here instead of results/"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=REPEATS,
        help=f"runs per line and size, median reported (default {REPEATS}); a line whose "
        f"first run takes over {REPEAT_UNDER_SECONDS:.0f} s runs once",
    )
    parser.add_argument(
        "--worker",
        nargs=4,
        metavar=("TOOL", "REFERENCE", "CURRENT", "OUTPUT"),
        help=argparse.SUPPRESS,
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.worker:
        worker(*args.worker)
        return 0
    sizes = [100_000, 1_000_000] if args.quick else [1_000_000, 10_000_000]
    output = args.output or (None if args.quick else RESULTS)
    started, load = time.perf_counter(), os.getloadavg()[0]
    results: list[SizeResult] = []
    try:
        with tempfile.TemporaryDirectory(prefix="loopml-drift-bench-") as folder:
            for rows in sizes:
                earlier = [item for result in results for item in result.lines]
                results.append(run_size(rows, Path(folder), args.repeats, earlier))
    except CheckFailed as failure:
        print(f"Check failed: {failure}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    goals = targets(results)
    print()
    print(table(results))
    for goal in goals.values():
        print(f"target: {goal['description']}: {'met' if goal['met'] else 'NOT met'}")
    if output is not None:
        info = machine() | {"load_average_1min_at_start": load}
        write(output, info, results, goals, seconds)
    return 0


def write(
    output: Path,
    info: dict[str, Any],
    results: list[SizeResult],
    goals: dict[str, Any],
    seconds: float,
) -> None:
    output.mkdir(parents=True, exist_ok=True)
    found = results_json(info, results, goals, seconds)
    (output / "drift.json").write_text(json.dumps(found, indent=2) + "\n")
    (output / "drift.md").write_text(markdown(info, results, goals, seconds))
    print(f"Wrote {output / 'drift.json'} and {output / 'drift.md'}")


if __name__ == "__main__":
    sys.exit(main())
