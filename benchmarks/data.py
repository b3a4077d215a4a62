"""Data profiling and validation: loopml against pandas, pandera and Evidently, same data.

Workload: a generated table of 25 columns (20 numeric, 5 categorical strings), written as
Parquet (snappy compression, row groups of 1,000,000 rows) in a temporary folder at 1M and
10M rows (``--quick``: 100k and 1M). Every tool starts from the file on disk and stops when
it holds a profile of every column and the result of validating the same contract:

- loopml: ``loopml.data.check(path, contract)``, one streaming pass, and the profile's
  ``describe()``; two more lines time ``loopml.data.profile`` and ``loopml.data.validate``
  alone.
- pandas: ``pd.read_parquet``, ``describe()`` of the numeric columns, ``value_counts()`` of
  each categorical one, and hand-written vectorised checks of the contract.
- pandera: ``pd.read_parquet`` and ``DataFrameSchema.validate(df, lazy=True)`` with the same
  rules, then ``describe()`` and ``value_counts()`` for the profile; both points are timed.
- Evidently: ``pd.read_parquet``, a ``Report`` with ``DataSummaryPreset`` on the DataFrame,
  and the same hand-written checks as the pandas line.

The contract (types, nullability, ranges and category sets of all 25 columns) is written
once as loopml YAML; the other tools' rules are translated from that YAML. The data breaks
it in four known ways (values above the maximum in two columns, unknown categories in one,
nulls in a non-nullable one), and every tool must report exactly those rows, with the same
counts, and the same column statistics, or the benchmark stops.

Each measurement runs in its own Python process: the time excludes the imports and starts
with the file on disk; peak memory is that process's high-water resident set (VmHWM). Each
tool runs 3 times per size (median reported), or once when its first run takes over a
minute. Evidently is not run at a size where its time or memory, extrapolated linearly from
the size before, would pass 8 minutes or 16 GiB; the results then give the estimate.

Run from the repository root:

    python3 -m venv benchmarks/.venv
    benchmarks/.venv/bin/pip install -e . -r benchmarks/requirements.txt
    benchmarks/.venv/bin/python benchmarks/data.py

Results go to benchmarks/results/data.json and benchmarks/results/data.md.
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
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from machine import describe

SEED = 20_251_122
ROW_GROUP = 1_000_000
COMPRESSION = "snappy"
EXAMPLE_ROWS = 5
RESULTS = Path(__file__).resolve().parent / "results"
SCRIPT = Path(__file__).resolve()
TARGET_SPEEDUP = 5.0
TARGET_PEAK_MIB = 2048.0
FLAT_GROWTH = 1.2  # "flat": peak at the largest size at most 1.2x the peak at the smallest
EVIDENTLY_MAX_SECONDS = 480.0
EVIDENTLY_MAX_MIB = 16 * 1024.0
WORKER_TIMEOUT = 900.0
REPEATS = 3
REPEAT_UNDER_SECONDS = 60.0  # a tool whose first run takes longer runs once


# --- the data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Numeric:
    """A numeric column: a distribution clipped to [low, high], which the contract allows."""

    name: str
    kind: str  # "float" or "integer"
    distribution: str
    parameters: tuple[float, ...]
    low: float
    high: float
    null_rate: float = 0.0


@dataclass(frozen=True)
class Categorical:
    """A string column with `cardinality` values drawn with Zipf-like frequencies."""

    name: str
    cardinality: int
    null_rate: float = 0.0

    def labels(self) -> list[str]:
        width = len(str(self.cardinality - 1))
        return [f"{self.name}_{index:0{width}d}" for index in range(self.cardinality)]


NUMERIC = (
    Numeric("f00", "float", "normal", (0.0, 1.0), -6.0, 6.0),
    Numeric("f01", "float", "normal", (100.0, 15.0), 10.0, 190.0),
    Numeric("f02", "float", "normal", (-50.0, 0.5), -53.0, -47.0),
    Numeric("f03", "float", "lognormal", (0.0, 1.0), 0.0, 400.0),
    Numeric("f04", "float", "lognormal", (3.0, 0.5), 0.0, 500.0),
    Numeric("f05", "float", "uniform", (0.0, 1.0), 0.0, 1.0),
    Numeric("f06", "float", "uniform", (-1000.0, 1000.0), -1000.0, 1000.0),
    Numeric("f07", "float", "exponential", (2.0,), 0.0, 50.0),
    Numeric("f08", "float", "normal", (1e6, 1e5), 4e5, 1.6e6),
    Numeric("f09", "float", "normal", (0.0, 1e-3), -6e-3, 6e-3),
    Numeric("f10", "float", "lognormal", (10.0, 2.0), 0.0, 1e10),
    Numeric("f11", "float", "uniform", (0.0, 100.0), 0.0, 100.0, 0.01),
    Numeric("f12", "float", "normal", (37.0, 2.0), 25.0, 49.0, 0.01),
    Numeric("f13", "float", "exponential", (0.1,), 0.0, 3.0, 0.01),
    Numeric("f14", "float", "beta", (2.0, 5.0), 0.0, 1.0, 0.01),
    Numeric("i0", "integer", "integers", (0, 100), 0, 99),
    Numeric("i1", "integer", "poisson", (3.0,), 0, 50),
    Numeric("i2", "integer", "integers", (1900, 2026), 1900, 2025),
    Numeric("i3", "integer", "integers", (0, 1_000_000), 0, 999_999),
    Numeric("i4", "integer", "binomial", (20, 0.3), 0, 20),
)
CATEGORICAL = (
    Categorical("c0", 5),
    Categorical("c1", 20),
    Categorical("c2", 100),
    Categorical("c3", 1000),
    Categorical("c4", 50, 0.01),
)


@dataclass(frozen=True)
class Injection:
    """Rows made to break one rule of the contract."""

    column: str
    rule: str
    count: int

    @property
    def key(self) -> str:
        return f"{self.column}/{self.rule}"


INJECTIONS = (
    Injection("f03", "max", 37),
    Injection("i2", "max", 12),
    Injection("c1", "categories", 15),
    Injection("f01", "not_null", 7),
)
UNKNOWN_CATEGORY = "c1_unknown"


def contract_yaml() -> str:
    """The contract every tool checks, as loopml YAML: types, nullability, ranges and the
    category sets of all columns; no other column is allowed."""
    columns: dict[str, Any] = {}
    for spec in NUMERIC:
        bound = int if spec.kind == "integer" else float
        columns[spec.name] = {
            "type": spec.kind,
            "nullable": spec.null_rate > 0,
            "min": bound(spec.low),
            "max": bound(spec.high),
        }
    for spec in CATEGORICAL:
        columns[spec.name] = {
            "type": "string",
            "nullable": spec.null_rate > 0,
            "categories": spec.labels(),
        }
    contract = {"version": 1, "columns": columns, "extra_columns": "forbid"}
    return yaml.safe_dump(contract, sort_keys=False, width=100)


def injected_rows(rows: int) -> dict[str, list[int]]:
    """The sorted row numbers each injection breaks, drawn from a generator seeded by size."""
    import numpy as np

    rng = np.random.default_rng([SEED, rows, 1])
    return {
        item.key: sorted(rng.choice(rows, item.count, replace=False).tolist())
        for item in INJECTIONS
    }


def generate(path: Path, rows: int) -> dict[str, Any]:
    """Write `rows` rows to a Parquet file in chunks of ROW_GROUP rows (one row group each),
    with the injections applied; return what the tools must find."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    breaks = injected_rows(rows)
    schema = table_schema()
    with pq.ParquetWriter(path, schema, compression=COMPRESSION) as writer:
        for index, start in enumerate(range(0, rows, ROW_GROUP)):
            count = min(ROW_GROUP, rows - start)
            table = pa.Table.from_arrays(chunk(index, start, count, breaks), schema=schema)
            writer.write_table(table, row_group_size=ROW_GROUP)
    return {
        "rows": rows,
        "bytes": path.stat().st_size,
        "violations": {
            key: {"count": len(found), "rows": found[:EXAMPLE_ROWS]}
            for key, found in breaks.items()
        },
    }


def table_schema() -> Any:
    import pyarrow as pa

    fields = [pa.field(s.name, pa.float64() if s.kind == "float" else pa.int64()) for s in NUMERIC]
    fields += [pa.field(s.name, pa.string()) for s in CATEGORICAL]
    return pa.schema(fields)


def chunk(index: int, start: int, count: int, breaks: dict[str, list[int]]) -> list[Any]:
    """The arrays of rows [start, start + count), from a generator seeded by chunk index (so
    a smaller file's rows are the start of a larger one's, injections aside)."""
    import numpy as np

    rng = np.random.default_rng([SEED, index])
    local = {
        key: np.asarray([r - start for r in found if start <= r < start + count], dtype=np.int64)
        for key, found in breaks.items()
    }
    arrays = [numeric_array(rng, spec, count, local) for spec in NUMERIC]
    arrays += [categorical_array(rng, spec, count, local) for spec in CATEGORICAL]
    return arrays


def numeric_array(rng: Any, spec: Numeric, count: int, local: dict[str, Any]) -> Any:
    import numpy as np
    import pyarrow as pa

    values = np.clip(draw(rng, spec, count), spec.low, spec.high)
    if spec.kind == "integer":
        values = values.astype(np.int64)
    above = local.get(f"{spec.name}/max")
    if above is not None and len(above):
        extra = rng.uniform(0.1, 2.0, len(above)) * max(abs(spec.high), 1.0)
        values[above] = spec.high + (np.ceil(extra) if spec.kind == "integer" else extra)
    missing = rng.random(count) < spec.null_rate if spec.null_rate else np.zeros(count, bool)
    forced = local.get(f"{spec.name}/not_null")
    if forced is not None:
        missing[forced] = True
    return pa.array(values, mask=missing if missing.any() else None)


def draw(rng: Any, spec: Numeric, count: int) -> Any:
    p = spec.parameters
    if spec.distribution == "normal":
        return rng.normal(p[0], p[1], count)
    if spec.distribution == "lognormal":
        return rng.lognormal(p[0], p[1], count)
    if spec.distribution == "uniform":
        return rng.uniform(p[0], p[1], count)
    if spec.distribution == "exponential":
        return rng.exponential(p[0], count)
    if spec.distribution == "beta":
        return rng.beta(p[0], p[1], count)
    if spec.distribution == "integers":
        return rng.integers(int(p[0]), int(p[1]), count)
    if spec.distribution == "poisson":
        return rng.poisson(p[0], count)
    if spec.distribution == "binomial":
        return rng.binomial(int(p[0]), p[1], count)
    raise ValueError(f"unknown distribution {spec.distribution}")


def categorical_array(rng: Any, spec: Categorical, count: int, local: dict[str, Any]) -> Any:
    import numpy as np
    import pyarrow as pa

    labels = spec.labels()
    weights = 1.0 / np.arange(1, spec.cardinality + 1) ** 0.8
    indices = rng.choice(spec.cardinality, count, p=weights / weights.sum()).astype(np.int32)
    unknown = local.get(f"{spec.name}/categories")
    if unknown is not None and len(unknown):
        labels = [*labels, UNKNOWN_CATEGORY]
        indices[unknown] = len(labels) - 1
    missing = rng.random(count) < spec.null_rate if spec.null_rate else None
    encoded = pa.DictionaryArray.from_arrays(pa.array(indices, mask=missing), pa.array(labels))
    return encoded.cast(pa.string())


# --- the tools (each runs in a worker process) --------------------------------------------


def peak_mib() -> float:
    """This process's peak resident memory so far (VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def resident_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


class Clock:
    """Marks of elapsed time and peak memory since the clock started."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.marks: list[dict[str, Any]] = []

    def mark(self, line: str) -> None:
        self.marks.append(
            {"line": line, "seconds": time.perf_counter() - self.start, "peak_mib": peak_mib()}
        )


def run_loopml_check(path: str, contract_path: str, clock: Clock) -> dict[str, Any]:
    import loopml

    result = loopml.data.check(path, contract_path)
    described = result.profile.describe()
    clock.mark("loopml")
    return {
        "violations": loopml_violations(result.report),
        "profile": loopml_profile(result.profile),
        "described_columns": len(described["columns"]),
    }


def run_loopml_profile(path: str, contract_path: str, clock: Clock) -> dict[str, Any]:
    import loopml

    found = loopml.data.profile(path)
    found.describe()
    clock.mark("loopml.profile")
    return {"profile": loopml_profile(found)}


def run_loopml_validate(path: str, contract_path: str, clock: Clock) -> dict[str, Any]:
    import loopml

    report = loopml.data.validate(path, contract_path).report
    clock.mark("loopml.validate")
    return {"violations": loopml_violations(report)}


def loopml_violations(report: Any) -> dict[str, Any]:
    return {
        f"{v.column}/{v.rule}": {"count": v.count, "rows": v.rows[:EXAMPLE_ROWS]}
        for v in report.violations
    }


def loopml_profile(found: Any) -> dict[str, Any]:
    columns: dict[str, Any] = {"rows": found.rows_}
    for name, summary in found.columns_.items():
        stats = {"count": summary.count, "nulls": summary.nulls}
        if summary.kind == "numeric":
            stats |= {"min": summary.min, "max": summary.max, "mean": summary.mean}
        else:
            top_value, top_count = summary.top(1)[0]
            stats |= {"distinct": summary.distinct, "top": [str(top_value), int(top_count)]}
        columns[name] = stats
    return columns


def run_pandas(path: str, contract_path: str, clock: Clock) -> dict[str, Any]:
    import pandas as pd

    contract = yaml.safe_load(Path(contract_path).read_text())
    frame = pd.read_parquet(path)
    profile = pandas_profile(frame, contract)
    violations = hand_checks(frame, contract)
    clock.mark("pandas")
    return {"violations": violations, "profile": profile}


def pandas_profile(frame: Any, contract: dict[str, Any]) -> dict[str, Any]:
    """describe() of the numeric columns and value_counts() of the categorical ones."""
    numeric = [n for n, r in contract["columns"].items() if r["type"] != "string"]
    described = frame[numeric].describe()
    columns: dict[str, Any] = {"rows": len(frame)}
    for name in numeric:
        count = int(described.at["count", name])
        columns[name] = {
            "count": count,
            "nulls": len(frame) - count,
            "min": float(described.at["min", name]),
            "max": float(described.at["max", name]),
            "mean": float(described.at["mean", name]),
        }
    for name, rule in contract["columns"].items():
        if rule["type"] == "string":
            counts = frame[name].value_counts(dropna=True)
            count = int(counts.sum())
            columns[name] = {
                "count": count,
                "nulls": len(frame) - count,
                "distinct": len(counts),
                "top": [str(counts.index[0]), int(counts.iloc[0])],
            }
    return columns


DTYPE_KINDS = {"integer": "iu", "float": "fiu", "string": "OSU", "boolean": "b"}


def hand_checks(frame: Any, contract: dict[str, Any]) -> dict[str, Any]:
    """The contract's rules as a pandas user writes them: one vectorised mask per rule."""
    import numpy as np

    rules = contract["columns"]
    found: dict[str, Any] = {}
    for name in rules:
        if name not in frame.columns:
            found[f"{name}/missing_column"] = {"count": 0, "rows": []}
    if contract.get("extra_columns", "forbid") == "forbid":
        for name in frame.columns:
            if name not in rules:
                found[f"{name}/unexpected_column"] = {"count": 0, "rows": []}
    for name, rule in rules.items():
        if name not in frame.columns:
            continue
        values = frame[name]
        if values.dtype.kind not in DTYPE_KINDS[rule["type"]] and str(values.dtype) != "string":
            found[f"{name}/type"] = {"count": 0, "rows": []}
            continue
        for rule_name, mask in rule_masks(values, rule):
            count = int(mask.sum())
            if count:
                rows = np.flatnonzero(mask.to_numpy())[:EXAMPLE_ROWS].tolist()
                found[f"{name}/{rule_name}"] = {"count": count, "rows": rows}
    return found


def rule_masks(values: Any, rule: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    missing = values.isna()
    if not rule.get("nullable", True):
        yield "not_null", missing
    if rule.get("min") is not None:
        yield "min", values < rule["min"]
    if rule.get("max") is not None:
        yield "max", values > rule["max"]
    if rule.get("categories") is not None:
        yield "categories", ~values.isin(rule["categories"]) & ~missing


def run_pandera(path: str, contract_path: str, clock: Clock) -> dict[str, Any]:
    import pandas as pd
    import pandera.pandas as pa

    contract = yaml.safe_load(Path(contract_path).read_text())
    frame = pd.read_parquet(path)
    schema = pandera_schema(pa, contract)
    try:
        schema.validate(frame, lazy=True)
        violations: dict[str, Any] = {}
    except pa.errors.SchemaErrors as errors:
        violations = pandera_violations(errors.failure_cases)
    clock.mark("pandera.validate")
    profile = pandas_profile(frame, contract)
    clock.mark("pandera")
    return {"violations": violations, "profile": profile}


PANDERA_TYPES = {"integer": "int64", "float": "float64", "string": "str", "boolean": "bool"}


def pandera_schema(pa: Any, contract: dict[str, Any]) -> Any:
    """The contract as a pandera DataFrameSchema: one Column per rule, strict when the
    contract forbids other columns."""
    columns = {}
    for name, rule in contract["columns"].items():
        checks = []
        if rule.get("min") is not None:
            checks.append(pa.Check.ge(rule["min"]))
        if rule.get("max") is not None:
            checks.append(pa.Check.le(rule["max"]))
        if rule.get("categories") is not None:
            checks.append(pa.Check.isin(rule["categories"]))
        columns[name] = pa.Column(
            PANDERA_TYPES[rule["type"]], checks=checks, nullable=rule.get("nullable", True)
        )
    return pa.DataFrameSchema(columns, strict=contract.get("extra_columns") == "forbid")


PANDERA_RULES = (
    ("not_nullable", "not_null"),
    ("greater_than_or_equal_to", "min"),
    ("less_than_or_equal_to", "max"),
    ("isin", "categories"),
    ("column_in_schema", "unexpected_column"),
    ("column_in_dataframe", "missing_column"),
    ("dtype", "type"),
)


def pandera_violations(failures: Any) -> dict[str, Any]:
    """Failure cases grouped into the same column/rule keys as loopml's report."""
    found: dict[str, Any] = {}
    for (column, check), group in failures.groupby(["column", "check"], dropna=False):
        rule = next(
            (ours for theirs, ours in PANDERA_RULES if str(check).startswith(theirs)), str(check)
        )
        if rule in ("unexpected_column", "missing_column"):
            for name in group["failure_case"]:
                found[f"{name}/{rule}"] = {"count": 0, "rows": []}
            continue
        rows = sorted(int(r) for r in group["index"].dropna())
        count = len(group) if rule != "type" else 0
        found[f"{column}/{rule}"] = {"count": count, "rows": rows[:EXAMPLE_ROWS]}
    return found


def run_evidently(path: str, contract_path: str, clock: Clock) -> dict[str, Any]:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataSummaryPreset

    contract = yaml.safe_load(Path(contract_path).read_text())
    frame = pd.read_parquet(path)
    rules = contract["columns"]
    definition = DataDefinition(
        numerical_columns=[n for n, r in rules.items() if r["type"] in ("integer", "float")],
        categorical_columns=[n for n, r in rules.items() if r["type"] == "string"],
    )
    dataset = Dataset.from_pandas(frame, data_definition=definition)
    summary = Report([DataSummaryPreset()]).run(current_data=dataset).dict()
    violations = hand_checks(frame, contract)
    clock.mark("evidently")
    return {"violations": violations, "profile": evidently_profile(summary, rules)}


def evidently_profile(summary: dict[str, Any], rules: dict[str, Any]) -> dict[str, Any]:
    """The column statistics read back from Evidently's snapshot."""
    values: dict[tuple[str, str | None], Any] = {}
    for metric in summary["metrics"]:
        config = metric["config"]
        kind = config["type"].rsplit(":", 1)[-1]
        values[(kind, config.get("column"))] = metric["value"]
    rows = int(values[("RowCount", None)])
    columns: dict[str, Any] = {"rows": rows}
    for name, rule in rules.items():
        nulls = int(values[("MissingValueCount", name)]["count"])
        stats: dict[str, Any] = {"count": rows - nulls, "nulls": nulls}
        if rule["type"] == "string":
            counts = values[("UniqueValueCount", name)]["counts"]
            present = {str(k): int(v) for k, v in counts.items() if not _is_missing(k)}
            top = max(present.items(), key=lambda item: item[1])
            stats |= {"distinct": len(present), "top": [top[0], top[1]]}
        else:
            stats |= {
                "min": float(values[("MinValue", name)]),
                "max": float(values[("MaxValue", name)]),
                "mean": float(values[("MeanValue", name)]),
            }
        columns[name] = stats
    return columns


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


WORKERS: dict[str, tuple[list[str], Callable[[str, str, Clock], dict[str, Any]]]] = {
    "loopml": (["loopml.data"], run_loopml_check),
    "loopml.profile": (["loopml.data"], run_loopml_profile),
    "loopml.validate": (["loopml.data"], run_loopml_validate),
    "pandas": (["pandas", "pyarrow.parquet"], run_pandas),
    "pandera": (["pandas", "pyarrow.parquet", "pandera.pandas"], run_pandera),
    "evidently": (["pandas", "pyarrow.parquet", "evidently", "evidently.presets"], run_evidently),
}


def worker(name: str, path: str, contract_path: str, output: str) -> None:
    """Import the tool (untimed), then time it from the file on disk to results in hand."""
    import importlib

    modules, action = WORKERS[name]
    started = time.perf_counter()
    for module in modules:
        importlib.import_module(module)
    imported = time.perf_counter() - started
    baseline = resident_mib()
    clock = Clock()
    found = action(path, contract_path, clock)
    found |= {"marks": clock.marks, "import_seconds": imported, "baseline_mib": baseline}
    Path(output).write_text(json.dumps(found))


# --- running the tools --------------------------------------------------------------------


@dataclass
class Line:
    """One timed measurement: a tool (or part of one) on one file."""

    id: str
    rows: int
    seconds: float
    peak_mib: float
    baseline_mib: float
    import_seconds: float
    ru_maxrss_mib: float = math.nan
    runs: list[float] = field(default_factory=list)
    violations: dict[str, Any] | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


@dataclass(frozen=True)
class Tool:
    """How a line is labelled and what it stands for in the comparison."""

    id: str
    label: str
    role: str  # "loopml", "loopml part", "alternative", "alternative part"
    worker: str


TOOLS = (
    Tool("loopml", "loopml `data.check` (profile + validation, one pass)", "loopml", "loopml"),
    Tool("loopml.profile", "loopml `data.profile` alone", "loopml part", "loopml.profile"),
    Tool("loopml.validate", "loopml `data.validate` alone", "loopml part", "loopml.validate"),
    Tool("pandas", "pandas: read + describe + value_counts + hand checks", "alternative", "pandas"),
    Tool(
        "pandera.validate", "pandera: read + validate (no profile)", "alternative part", "pandera"
    ),
    Tool("pandera", "pandera: read + validate + describe + value_counts", "alternative", "pandera"),
    Tool(
        "evidently", "Evidently: read + DataSummaryPreset + hand checks", "alternative", "evidently"
    ),
)
TOOL_BY_ID = {tool.id: tool for tool in TOOLS}


class CheckFailed(Exception):
    """A tool did not find what was injected, or tools disagree."""


def check(condition: bool, claim: str) -> None:
    if not condition:
        raise CheckFailed(claim)


def run_worker(name: str, path: Path, contract: Path, folder: Path) -> dict[str, Any]:
    """Run one tool in a fresh process; its output plus the kernel's peak-memory figure."""
    output = folder / f"{name}.json"
    output.unlink(missing_ok=True)
    command = [sys.executable, str(SCRIPT), "--worker", name, str(path), str(contract), str(output)]
    process = subprocess.Popen(command)
    deadline = time.monotonic() + WORKER_TIMEOUT
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            process.kill()
            os.wait4(process.pid, 0)
            raise CheckFailed(f"{name} on {path.name} did not finish in {WORKER_TIMEOUT:.0f} s")
        time.sleep(0.05)
    process.returncode = os.waitstatus_to_exitcode(status)
    check(process.returncode == 0, f"{name} on {path.name} exited with {process.returncode}")
    found = json.loads(output.read_text())
    found["ru_maxrss_mib"] = usage.ru_maxrss / 1024
    return found


def measure(
    name: str, rows: int, path: Path, contract: Path, folder: Path, repeats: int
) -> tuple[list[Line], dict[str, Any]]:
    """Run a worker up to `repeats` times (once if its first run is slow); one Line per
    mark, with the median time."""
    outputs = [run_worker(name, path, contract, folder)]
    if outputs[0]["marks"][-1]["seconds"] < REPEAT_UNDER_SECONDS:
        outputs += [run_worker(name, path, contract, folder) for _ in range(repeats - 1)]
    lines = []
    for index, mark in enumerate(outputs[0]["marks"]):
        times = [out["marks"][index]["seconds"] for out in outputs]
        peaks = [out["marks"][index]["peak_mib"] for out in outputs]
        lines.append(
            Line(
                id=mark["line"],
                rows=rows,
                seconds=statistics.median(times),
                peak_mib=max(peaks),
                runs=times,
                ru_maxrss_mib=max(out["ru_maxrss_mib"] for out in outputs),
                baseline_mib=max(out["baseline_mib"] for out in outputs),
                import_seconds=statistics.median(out["import_seconds"] for out in outputs),
                violations=outputs[0].get("violations"),
            )
        )
    return lines, outputs[0]


def check_violations(tool: str, found: dict[str, Any] | None, expected: dict[str, Any]) -> None:
    """Every tool must report exactly the injected rows: same rules, counts, first rows."""
    if found is None:
        return
    check(
        set(found) == set(expected), f"{tool} reported {sorted(found)}, expected {sorted(expected)}"
    )
    for key, wanted in expected.items():
        check(
            found[key]["count"] == wanted["count"],
            f"{tool} counted {found[key]['count']} for {key}, expected {wanted['count']}",
        )
        check(
            found[key]["rows"] == wanted["rows"],
            f"{tool} gave rows {found[key]['rows']} for {key}, expected {wanted['rows']}",
        )


def check_profiles(tool: str, found: dict[str, Any] | None, reference: dict[str, Any]) -> None:
    """Column statistics must agree with pandas': counts exactly, min and max exactly, means
    to 1e-9 of the column's range."""
    if found is None:
        return
    check(found["rows"] == reference["rows"], f"{tool} counted {found['rows']} rows")
    for name, wanted in reference.items():
        if name == "rows":
            continue
        got = found[name]
        for key, value in wanted.items():
            if key == "mean":
                scale = max(abs(wanted["min"]), abs(wanted["max"]), 1e-300)
                same = math.isclose(got[key], value, rel_tol=1e-9, abs_tol=1e-9 * scale)
            else:
                same = got[key] == value
            check(same, f"{tool}: {name} {key} is {got[key]}, pandas says {value}")


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
    """Everything measured on one file."""

    rows: int
    file_bytes: int
    generate_seconds: float
    expected: dict[str, Any]
    repeats: int = 1
    lines: list[Line] = field(default_factory=list)
    skipped: dict[str, Any] = field(default_factory=dict)


def run_size(
    rows: int, folder: Path, contract: Path, repeats: int, earlier: list[Line]
) -> SizeResult:
    """Generate one file, run every tool on it, check what they found, delete the file."""
    path = folder / f"data_{rows}.parquet"
    started = time.perf_counter()
    made = run_generator(rows, path, folder)
    result = SizeResult(
        rows, made["bytes"], time.perf_counter() - started, made["violations"], repeats
    )
    print(
        f"\n{rows:,} rows: {made['bytes'] / 2**20:,.0f} MiB of Parquet, generated in "
        f"{result.generate_seconds:.0f} s",
        flush=True,
    )
    outputs: dict[str, dict[str, Any]] = {}
    for name in WORKERS:
        if name == "evidently":
            estimate = evidently_estimate(earlier, rows)
            if estimate and (
                estimate["seconds"] > EVIDENTLY_MAX_SECONDS
                or estimate["peak_mib"] > EVIDENTLY_MAX_MIB
            ):
                result.skipped["evidently"] = estimate
                print(
                    f"  evidently skipped: estimated {estimate['seconds']:.0f} s, "
                    f"{estimate['peak_mib']:,.0f} MiB",
                    flush=True,
                )
                continue
        lines, outputs[name] = measure(name, rows, path, contract, folder, repeats)
        for line in lines:
            print(
                f"  {line.id:<18} {line.seconds:8.2f} s {line.rows_per_second:>14,.0f} rows/s "
                f"{line.peak_mib:>9,.0f} MiB peak",
                flush=True,
            )
        result.lines += lines
    path.unlink()
    verify(result, outputs)
    return result


def run_generator(rows: int, path: Path, folder: Path) -> dict[str, Any]:
    """Generate the file in its own process, so no tool's process holds the generator's
    memory."""
    output = folder / "generated.json"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--generate", str(rows), str(path), str(output)], check=True
    )
    return json.loads(output.read_text())


def verify(result: SizeResult, outputs: dict[str, dict[str, Any]]) -> None:
    for line in result.lines:
        check_violations(f"{line.id} at {result.rows:,} rows", line.violations, result.expected)
    reference = outputs["pandas"]["profile"]
    for name, output in outputs.items():
        check_profiles(f"{name} at {result.rows:,} rows", output.get("profile"), reference)


# --- reporting ----------------------------------------------------------------------------


def line(result: SizeResult, tool_id: str) -> Line | None:
    return next((item for item in result.lines if item.id == tool_id), None)


def speedups(result: SizeResult) -> dict[str, float]:
    """loopml check's speed-up over every other tool's line on the same file (their time over
    its time)."""
    ours = line(result, "loopml")
    assert ours is not None
    return {
        item.id: item.seconds / ours.seconds
        for item in result.lines
        if not TOOL_BY_ID[item.id].role.startswith("loopml")
    }


def validation_speedup(result: SizeResult) -> float | None:
    """Validation alone, like for like: pandera's validate over loopml's."""
    ours, theirs = line(result, "loopml.validate"), line(result, "pandera.validate")
    if ours is None or theirs is None:
        return None
    return theirs.seconds / ours.seconds


def fastest_alternative(result: SizeResult) -> Line:
    alternatives = [item for item in result.lines if TOOL_BY_ID[item.id].role == "alternative"]
    return min(alternatives, key=lambda item: item.seconds)


def targets(results: list[SizeResult]) -> dict[str, Any]:
    """The issue's three targets, judged on the largest size (flatness: smallest vs
    largest)."""
    small, large = results[0], results[-1]
    ours_small, ours_large = line(small, "loopml"), line(large, "loopml")
    assert ours_small is not None and ours_large is not None
    best = fastest_alternative(large)
    speedup = best.seconds / ours_large.seconds
    growth = ours_large.peak_mib / ours_small.peak_mib
    return {
        "speedup": {
            "description": f"at least {TARGET_SPEEDUP:g}x faster than the fastest "
            f"alternative at {large.rows:,} rows",
            "fastest_alternative": best.id,
            "value": speedup,
            "met": speedup >= TARGET_SPEEDUP,
        },
        "peak_memory": {
            "description": f"peak memory under {TARGET_PEAK_MIB:,.0f} MiB at {large.rows:,} rows",
            "value_mib": ours_large.peak_mib,
            "met": ours_large.peak_mib < TARGET_PEAK_MIB,
        },
        "flat_memory": {
            "description": f"peak memory flat as rows grow: at {large.rows:,} "
            f"rows at most {FLAT_GROWTH:g}x the peak at {small.rows:,}",
            "small_mib": ours_small.peak_mib,
            "large_mib": ours_large.peak_mib,
            "growth": growth,
            "met": growth <= FLAT_GROWTH,
        },
    }


def format_seconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def format_rows(rows: int) -> str:
    if rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    return f"{rows // 1000}k" if rows % 1000 == 0 else f"{rows:,}"


def violations_cell(found: dict[str, Any] | None) -> str:
    if found is None:
        return "(profile only)"
    return f"{sum(item['count'] for item in found.values())} in {len(found)} rules"


def table(results: list[SizeResult]) -> str:
    """The plain-text table printed at the end."""
    header = (
        f"{'rows':>5}  {'line':<17} {'seconds':>9} {'rows/s':>12} {'peak MiB':>9} "
        f"{'loopml x':>9}  violations"
    )
    out = [header, "-" * len(header)]
    for result in results:
        ups = speedups(result)
        for item in result.lines:
            ratio = f"{ups[item.id]:.1f}x" if item.id in ups else ""
            out.append(
                f"{format_rows(result.rows):>5}  {item.id:<17} {item.seconds:9.2f} "
                f"{item.rows_per_second:12,.0f} {item.peak_mib:9,.0f} {ratio:>9}  "
                f"{violations_cell(item.violations)}"
            )
        for name, estimate in result.skipped.items():
            out.append(
                f"{format_rows(result.rows):>5}  {name:<17} not run: estimated "
                f"{estimate['seconds']:,.0f} s and {estimate['peak_mib']:,.0f} MiB"
            )
    return "\n".join(out)


def markdown(
    info: dict[str, Any],
    results: list[SizeResult],
    goals: dict[str, Any],
    contract: str,
    seconds: float,
) -> str:
    large = results[-1]
    best = fastest_alternative(large)
    ours = line(large, "loopml")
    assert ours is not None
    parts = [
        "# Data profiling and validation: loopml vs pandas, pandera and Evidently",
        "",
        f"{info['date']}, {info['cpu_count']} CPUs ({info['cpu']}), {info['memory_gib']:.0f} "
        f"GiB RAM, Python {info['python']}, loopml {info['loopml']}"
        f"{describe_source(info)}, pandas {info['pandas']}, pyarrow {info['pyarrow']}, "
        f"pandera {info['pandera']}, Evidently {info['evidently']}. The whole benchmark took "
        f"{seconds:,.0f} s.",
        "",
        f"**loopml profiles and validates {format_rows(large.rows)} rows x 25 columns in "
        f"{format_seconds(ours.seconds)} ({ours.rows_per_second:,.0f} rows/s), "
        f"{best.seconds / ours.seconds:.1f}x faster than the fastest alternative "
        f"({TOOL_BY_ID[best.id].label.split(':')[0]}, {format_seconds(best.seconds)}), with a "
        f"peak of {ours.peak_mib:,.0f} MiB against {best.peak_mib:,.0f} MiB.**",
        "",
        "## Targets",
        "",
        "| target | result | met |",
        "| --- | --- | --- |",
        f"| {goals['speedup']['description']} | {goals['speedup']['value']:.1f}x "
        f"(over {goals['speedup']['fastest_alternative']}) | {yes(goals['speedup']['met'])} |",
        f"| {goals['peak_memory']['description']} | {goals['peak_memory']['value_mib']:,.0f} "
        f"MiB | {yes(goals['peak_memory']['met'])} |",
        f"| {goals['flat_memory']['description']} | {goals['flat_memory']['small_mib']:,.0f} "
        f"MiB -> {goals['flat_memory']['large_mib']:,.0f} MiB "
        f"({goals['flat_memory']['growth']:.2f}x) | {yes(goals['flat_memory']['met'])} |",
        "",
        "## Results",
        "",
    ]
    for result in results:
        parts += size_table(result)
    parts += memory_table(results)
    parts += method(results, contract)
    return "\n".join(parts) + "\n"


def yes(met: bool) -> str:
    return "yes" if met else "**no**"


def size_table(result: SizeResult) -> list[str]:
    ups = speedups(result)
    best = fastest_alternative(result)
    out = [
        f"### {result.rows:,} rows ({result.file_bytes / 2**20:,.0f} MiB of Parquet)",
        "",
        "| line | time | rows/s | peak memory | loopml `check` speed-up | violations found |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for item in result.lines:
        tool = TOOL_BY_ID[item.id]
        ratio = (
            f"**{ups[item.id]:.1f}x**"
            if tool.role == "alternative"
            else (f"({ups[item.id]:.1f}x)" if item.id in ups else "")
        )
        mark = " (fastest alternative)" if item.id == best.id else ""
        out.append(
            f"| {tool.label}{mark} | {format_seconds(item.seconds)} | "
            f"{item.rows_per_second:,.0f} | {item.peak_mib:,.0f} MiB | {ratio} | "
            f"{violations_cell(item.violations)} |"
        )
    for name, estimate in result.skipped.items():
        out.append(
            f"| {TOOL_BY_ID[name].label} | not run (estimated "
            f"{format_seconds(estimate['seconds'])} from "
            f"{format_rows(estimate['from_rows'])} rows) | | estimated "
            f"{estimate['peak_mib']:,.0f} MiB | | |"
        )
    like = validation_speedup(result)
    if like is not None:
        out += [
            "",
            f"Validation alone, like for like: loopml `data.validate` is {like:.1f}x "
            "faster than pandera's read + validate. The speed-up in brackets compares "
            "pandera's validation alone with loopml's profile and validation.",
        ]
    out.append("")
    return out


def memory_table(results: list[SizeResult]) -> list[str]:
    sizes = [format_rows(result.rows) for result in results]
    out = [
        "### Peak memory as rows grow",
        "",
        "| line | after imports | " + " | ".join(sizes) + " | growth |",
        "| --- | --- | " + " | ".join("---" for _ in sizes) + " | --- |",
    ]
    for tool in TOOLS:
        peaks = [line(result, tool.id) for result in results]
        if any(item is None for item in peaks):
            continue
        cells = [f"{item.peak_mib:,.0f} MiB" for item in peaks if item]
        growth = peaks[-1].peak_mib / peaks[0].peak_mib  # type: ignore[union-attr]
        imports = f"{peaks[-1].baseline_mib:,.0f} MiB"  # type: ignore[union-attr]
        out.append(f"| {tool.label} | {imports} | " + " | ".join(cells) + f" | {growth:.2f}x |")
    out.append("")
    return out


def method(results: list[SizeResult], contract: str) -> list[str]:
    expected = results[-1].expected
    runs = "once" if results[-1].repeats == 1 else f"{results[-1].repeats} times"
    injected = ", ".join(f"{key} ({item['count']})" for key, item in expected.items())
    return [
        "## Method",
        "",
        f"The data is generated from NumPy's seeded generator ({SEED}): 25 columns, 15 float64 "
        "(normal, lognormal, uniform, exponential and beta at scales from 1e-3 to 1e6, four of "
        "them with 1% nulls), 5 int64 (uniform, Poisson, binomial) and 5 strings with 5, 20, "
        "100, 1,000 and 50 values drawn with Zipf-like frequencies (one with 1% nulls). It is "
        f"written with pyarrow as Parquet, {COMPRESSION} compression, one row group per "
        f"{ROW_GROUP:,} rows, and generated chunk by chunk. The contract gives every column "
        "its type, nullability, range or category set, and forbids other columns; it is "
        "written once as loopml YAML (in `data.json`) and translated into each tool's checks. "
        f"Injected violations, column/rule (rows): {injected}. Every tool must report exactly "
        "these rules with these counts and the same first row numbers, and every profile must "
        "give the same row, null and distinct counts, minimum, maximum and mean as pandas' "
        "`describe()`, or the benchmark stops.",
        "",
        "Each line runs in a fresh Python process started after the file is written (so the "
        "file is in the page cache for every tool). The clock starts after the tool's imports "
        "and stops once the profile and the validation results are Python objects: loopml: "
        "`loopml.data.check(path, contract)` and `profile.describe()`; pandas: "
        "`read_parquet`, `describe()` of the 20 numeric columns, `value_counts()` of each "
        "string column and the contract checked with vectorised masks (`isna`, comparisons, "
        "`isin`); pandera: `read_parquet` and `DataFrameSchema.validate(df, lazy=True)` with "
        "`Check.ge`, `Check.le`, `Check.isin`, dtypes, nullability and `strict=True` (failures "
        "counted from `SchemaErrors.failure_cases`), then the same `describe()` and "
        "`value_counts()` as pandas; its line without the profile is the same process's time "
        "at that point. Evidently: `read_parquet`, `Report([DataSummaryPreset()])` run on a "
        "`Dataset` with the numeric and categorical columns declared, its `dict()`, and the "
        "pandas hand checks. Peak memory is the process's high-water resident set (`VmHWM`), "
        "imports included; `data.json` also gives the memory after imports and the kernel's "
        "`ru_maxrss` of each process. Every tool reads the contract from the same YAML file "
        f"inside the timed part. Each tool runs {runs} per size and the median time is "
        "reported (`data.json` lists every run), except a tool whose first run takes over "
        f"{REPEAT_UNDER_SECONDS:.0f} s, which runs once.",
        "",
        "The speed-up is the other line's time divided by loopml's `check` on the same file; "
        "the fastest alternative is the fastest line that produces both a profile and a "
        "validation. Ratios are the numbers to compare across machines; absolute times "
        "depend on the machine.",
        "",
        "Reproduce with `benchmarks/.venv/bin/python benchmarks/data.py` (see "
        "benchmarks/README.md).",
    ]


def describe_source(info: dict[str, Any]) -> str:
    commit = info.get("loopml_commit")
    if not commit:
        return ""
    dirty = ", with uncommitted changes" if info.get("loopml_uncommitted_changes") else ""
    return f" (commit {commit}{dirty})"


def machine() -> dict[str, Any]:
    return describe(("loopml", "pandas", "pyarrow", "numpy", "pandera", "evidently"))


def results_json(
    info: dict[str, Any],
    results: list[SizeResult],
    goals: dict[str, Any],
    contract: str,
    seconds: float,
) -> dict[str, Any]:
    sizes = []
    for result in results:
        ups = speedups(result)
        best = fastest_alternative(result)
        sizes.append(
            {
                "rows": result.rows,
                "columns": len(NUMERIC) + len(CATEGORICAL),
                "file_bytes": result.file_bytes,
                "generate_seconds": result.generate_seconds,
                "repeats_at_most": result.repeats,
                "expected_violations": result.expected,
                "fastest_alternative": best.id,
                "loopml_speedup_over_fastest_alternative": ups[best.id],
                "lines": [
                    {
                        **asdict(item),
                        "label": TOOL_BY_ID[item.id].label,
                        "role": TOOL_BY_ID[item.id].role,
                        "rows_per_second": item.rows_per_second,
                        "loopml_speedup": ups.get(item.id),
                    }
                    for item in result.lines
                ],
                "not_run": result.skipped,
            }
        )
    return {
        "benchmark": "data profiling and validation",
        "machine": info,
        "settings": {
            "seed": SEED,
            "row_group_rows": ROW_GROUP,
            "compression": COMPRESSION,
            "flat_growth_limit": FLAT_GROWTH,
            "worker_timeout_seconds": WORKER_TIMEOUT,
        },
        "contract_yaml": contract,
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
        "--output",
        type=Path,
        help="write data.json and data.md here instead of benchmarks/results/",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=REPEATS,
        help=f"runs per tool and size, median reported (default {REPEATS}); "
        f"a tool whose first run takes over {REPEAT_UNDER_SECONDS:.0f} s "
        "runs once",
    )
    parser.add_argument(
        "--worker", nargs=4, metavar=("TOOL", "PATH", "CONTRACT", "OUTPUT"), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--generate", nargs=3, metavar=("ROWS", "PATH", "OUTPUT"), help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.worker:
        worker(*args.worker)
        return 0
    if args.generate:
        rows, path, output = args.generate
        Path(output).write_text(json.dumps(generate(Path(path), int(rows))))
        return 0
    sizes = [100_000, 1_000_000] if args.quick else [1_000_000, 10_000_000]
    output = args.output or (None if args.quick else RESULTS)
    started = time.perf_counter()
    contract = contract_yaml()
    results: list[SizeResult] = []
    try:
        with tempfile.TemporaryDirectory(prefix="loopml-data-bench-") as folder:
            contract_path = Path(folder) / "contract.yaml"
            contract_path.write_text(contract)
            for rows in sizes:
                earlier = [item for result in results for item in result.lines]
                results.append(run_size(rows, Path(folder), contract_path, args.repeats, earlier))
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
        write(output, machine(), results, goals, contract, seconds)
    return 0


def write(
    output: Path,
    info: dict[str, Any],
    results: list[SizeResult],
    goals: dict[str, Any],
    contract: str,
    seconds: float,
) -> None:
    output.mkdir(parents=True, exist_ok=True)
    found = results_json(info, results, goals, contract, seconds)
    (output / "data.json").write_text(json.dumps(found, indent=2) + "\n")
    (output / "data.md").write_text(markdown(info, results, goals, contract, seconds))
    print(f"Wrote {output / 'data.json'} and {output / 'data.md'}")


if __name__ == "__main__":
    sys.exit(main())
