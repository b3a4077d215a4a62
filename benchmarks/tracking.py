"""Experiment tracking: loopml against MLflow, same workloads, one process, SQLite for both.

Workloads (every value is generated up front from a seeded random generator, so both tools
store exactly the same data):

(a) runs    100 runs, each with 10 params and 10 metric values logged one call per value;
            timed over the whole loop, starting and ending every run included.
(b) calls   10,000 values of one metric, one ``log_metric`` call each (steps 0..9,999);
            loopml is timed up to its ``flush()``, so every value is written when the clock
            stops. MLflow logs synchronously, its default. Two more lines: loopml's call
            alone, and MLflow's optional asynchronous mode up to ``flush_async_logging()``.
(c) batch   the same 10,000 values through each tool's batch path: MLflow's
            ``MlflowClient.log_batch`` with a list of ``Metric``; loopml's buffer, filled by
            ``log_metric`` and written by one ``flush()`` (loopml has no list-taking call).
            A second line logs 10,000 distinct keys at one step in a single call on both
            sides: ``log_metrics`` with a dict against ``log_batch``.
(d) search  a filtered, sorted search over 10,000 runs (``m0 > 0.5 and p0 = 3``, by ``m1``
            descending, all matches returned); median of 5 after one warm-up. Both tools
            must return the same runs in the same order.

Each tool gets a fresh temporary store per workload and one untimed warm-up run, so
one-time costs (imports, schema creation, first-run environment capture) are left out.

Run from the repository root:

    python3 -m venv benchmarks/.venv
    benchmarks/.venv/bin/pip install -e . -r benchmarks/requirements.txt
    benchmarks/.venv/bin/python benchmarks/tracking.py

Results go to benchmarks/results/tracking.json and benchmarks/results/tracking.md.
"""

from __future__ import annotations

import os

# Set before MLflow is imported: no usage reporting, no network.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import argparse
import json
import logging
import platform
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
from machine import cpu_model, loopml_source
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

import loopml
from loopml import Workspace

SEED = 7
EXPERIMENT = "tracking-bench"
RESULTS = Path(__file__).resolve().parent / "results"

SEARCH_WHERE_LOOPML = "metrics.m0 > 0.5 and params.p0 = 3"
SEARCH_SORT_LOOPML = "-metrics.m1"
SEARCH_FILTER_MLFLOW = "metrics.m0 > 0.5 and params.p0 = '3'"
SEARCH_ORDER_MLFLOW = ["metrics.m1 DESC"]


@dataclass(frozen=True)
class Sizes:
    """How much work each workload does."""

    runs: int = 100
    params_per_run: int = 10
    metrics_per_run: int = 10
    values: int = 10_000
    search_runs: int = 10_000
    search_repeats: int = 5

    def scaled(self, factor: int) -> Sizes:
        """Smaller sizes for a quick check of the script itself."""
        return Sizes(
            runs=max(1, self.runs // factor),
            params_per_run=self.params_per_run,
            metrics_per_run=self.metrics_per_run,
            values=max(1, self.values // factor),
            search_runs=max(10, self.search_runs // factor),
            search_repeats=self.search_repeats,
        )


@dataclass(frozen=True)
class RunData:
    """What one run logs: params and one value per metric."""

    params: dict[str, Any]
    metrics: dict[str, float]


@dataclass
class Target:
    """A goal for one workload: a minimum loopml speed-up or a maximum loopml time."""

    description: str
    min_speedup: float | None = None
    max_loopml_ms: float | None = None
    met: bool = False

    def check(self, row: Row) -> None:
        met = True
        if self.min_speedup is not None:
            met = met and row.speedup >= self.min_speedup
        if self.max_loopml_ms is not None:
            met = met and row.loopml_seconds * 1000 < self.max_loopml_ms
        self.met = met


@dataclass
class Row:
    """One line of the results: the same work timed in both tools."""

    id: str
    title: str
    count: int
    unit: str
    loopml_seconds: float
    mlflow_seconds: float
    target: Target | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.target is not None:
            self.target.check(self)

    @property
    def speedup(self) -> float:
        """How many times faster loopml is (MLflow's time over loopml's)."""
        return self.mlflow_seconds / self.loopml_seconds

    def rate(self, seconds: float) -> float:
        """Units of work per second."""
        return self.count / seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "count": self.count,
            "unit": self.unit,
            "loopml_seconds": self.loopml_seconds,
            "mlflow_seconds": self.mlflow_seconds,
            f"loopml_{self.unit}_per_second": self.rate(self.loopml_seconds),
            f"mlflow_{self.unit}_per_second": self.rate(self.mlflow_seconds),
            "speedup": self.speedup,
            "target": asdict(self.target) if self.target else None,
            **self.notes,
        }


# --- data ------------------------------------------------------------------------------


def run_data(rng: random.Random, sizes: Sizes) -> list[RunData]:
    """Params and metrics of the (a) runs: numbers and short strings, as a sweep would log."""
    choices = ["adam", "sgd", "rmsprop", "adagrad"]
    data = []
    for _ in range(sizes.runs):
        params: dict[str, Any] = {}
        for j in range(sizes.params_per_run):
            params[f"p{j}"] = rng.choice(choices) if j % 3 == 2 else round(rng.random(), 6)
        metrics = {f"m{j}": rng.random() for j in range(sizes.metrics_per_run)}
        data.append(RunData(params, metrics))
    return data


def search_data(rng: random.Random, sizes: Sizes) -> list[RunData]:
    """The runs searched in (d): p0 in 0..9, an optimizer, an index; m0, m1, m2 in [0, 1)."""
    data = []
    for index in range(sizes.search_runs):
        params = {"p0": rng.randrange(10), "p1": rng.choice(["adam", "sgd"]), "idx": index}
        metrics = {"m0": rng.random(), "m1": rng.random(), "m2": rng.random()}
        data.append(RunData(params, metrics))
    return data


def metric_values(rng: random.Random, count: int) -> list[float]:
    """A noisy decreasing loss curve."""
    return [1.0 / (1 + step) + rng.random() * 0.01 for step in range(count)]


# --- stores ----------------------------------------------------------------------------


def quiet_mlflow() -> None:
    """Keep MLflow's and its migrations' logging and warnings out of the output."""
    warnings.filterwarnings("ignore")
    for name in ("mlflow", "alembic", "sqlalchemy", "urllib3", "git"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextmanager
def loopml_store() -> Iterator[Workspace]:
    """A fresh loopml workspace (SQLite) in a temporary folder, warmed up by one run."""
    with tempfile.TemporaryDirectory(prefix="loopml-bench-") as folder:
        workspace = loopml.open_workspace(folder, home=str(Path(folder) / ".loopml"))
        try:
            with loopml.start_run(experiment="warm-up", workspace=workspace) as run:
                run.log_params({"warm": 1})
                run.log_metric("warm", 1.0)
            yield workspace
        finally:
            workspace.close()


@contextmanager
def mlflow_store() -> Iterator[str]:
    """A fresh MLflow SQLite store in a temporary folder, warmed up by one run; yields the
    experiment id (the tracking URI is set for the fluent API and new clients)."""
    with tempfile.TemporaryDirectory(prefix="mlflow-bench-") as folder:
        mlflow.set_tracking_uri(f"sqlite:///{Path(folder) / 'mlflow.db'}")
        artifacts = (Path(folder) / "artifacts").as_uri()
        warm_up = mlflow.create_experiment("warm-up", artifact_location=artifacts)
        experiment_id = mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)
        with mlflow.start_run(experiment_id=warm_up):
            mlflow.log_param("warm", 1)
            mlflow.log_metric("warm", 1.0)
        yield experiment_id


def elapsed(action: Callable[[], Any]) -> float:
    """Seconds one call of action takes."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


# --- (a) many small runs ---------------------------------------------------------------


def loopml_runs(workspace: Workspace, data: list[RunData]) -> None:
    for item in data:
        with loopml.start_run(experiment=EXPERIMENT, workspace=workspace) as run:
            for key, value in item.params.items():
                run.log_param(key, value)
            for key, number in item.metrics.items():
                run.log_metric(key, number, step=0)


def mlflow_runs(experiment_id: str, data: list[RunData]) -> None:
    for item in data:
        with mlflow.start_run(experiment_id=experiment_id):
            for key, value in item.params.items():
                mlflow.log_param(key, value)
            for key, number in item.metrics.items():
                mlflow.log_metric(key, number, step=0)


def bench_runs(sizes: Sizes, data: list[RunData]) -> Row:
    with loopml_store() as workspace:
        loopml_seconds = elapsed(lambda: loopml_runs(workspace, data))
        stored = loopml.search_runs(EXPERIMENT, workspace=workspace)
        check(len(stored) == len(data), "loopml stored every run of (a)")
    with mlflow_store() as experiment_id:
        mlflow_seconds = elapsed(lambda: mlflow_runs(experiment_id, data))
        stored_count = len(mlflow.search_runs([experiment_id], output_format="list"))
        check(stored_count == len(data), "MLflow stored every run of (a)")
    values = sizes.params_per_run + sizes.metrics_per_run
    return Row(
        "a",
        f"{sizes.runs} runs x {sizes.params_per_run} params x {sizes.metrics_per_run} "
        "metrics, one call per value",
        sizes.runs,
        "runs",
        loopml_seconds,
        mlflow_seconds,
        notes={"values_per_run": values},
    )


# --- (b) one call per value ------------------------------------------------------------


def loopml_calls(workspace: Workspace, values: list[float]) -> tuple[float, float]:
    """(seconds of the calls alone, seconds of the calls plus the flush)."""
    with loopml.start_run(experiment=EXPERIMENT, workspace=workspace) as run:
        start = time.perf_counter()
        for step, value in enumerate(values):
            run.log_metric("loss", value, step=step)
        logged = time.perf_counter()
        run.flush()
        flushed = time.perf_counter()
    check(
        len(loopml.metric_history(run.id, "loss", workspace=workspace)) == len(values),
        "loopml stored every value of (b)",
    )
    return logged - start, flushed - start


def mlflow_calls(experiment_id: str, values: list[float], synchronous: bool = True) -> float:
    with mlflow.start_run(experiment_id=experiment_id) as run:
        start = time.perf_counter()
        for step, value in enumerate(values):
            mlflow.log_metric("loss", value, step=step, synchronous=synchronous)
        if not synchronous:
            mlflow.flush_async_logging()
        seconds = time.perf_counter() - start
    history = MlflowClient().get_metric_history(run.info.run_id, "loss")
    check(len(history) == len(values), "MLflow stored every value of (b)")
    return seconds


def bench_calls(values: list[float]) -> list[Row]:
    with loopml_store() as workspace:
        calls_only, with_flush = loopml_calls(workspace, values)
    with mlflow_store() as experiment_id:
        mlflow_sync = mlflow_calls(experiment_id, values)
    with mlflow_store() as experiment_id:
        mlflow_async = mlflow_calls(experiment_id, values, synchronous=False)
    count = len(values)
    return [
        Row(
            "b",
            f"{count:,} values, one log_metric call each (loopml: calls + flush)",
            count,
            "values",
            with_flush,
            mlflow_sync,
            Target("at least 100x MLflow's per-call rate", min_speedup=100),
        ),
        Row(
            "b.call",
            "the log_metric call alone (loopml: buffered, flush excluded)",
            count,
            "values",
            calls_only,
            mlflow_sync,
            notes={
                "loopml_microseconds_per_call": calls_only / count * 1e6,
                "mlflow_microseconds_per_call": mlflow_sync / count * 1e6,
            },
        ),
        Row(
            "b.async",
            "as (b), MLflow with synchronous=False + flush_async_logging()",
            count,
            "values",
            with_flush,
            mlflow_async,
        ),
    ]


# --- (c) batch logging -----------------------------------------------------------------


def loopml_buffered(workspace: Workspace, values: list[float]) -> float:
    """One metric, 10,000 steps: the calls fill the buffer, one flush writes it."""
    return loopml_calls(workspace, values)[1]


def loopml_dict(workspace: Workspace, values: list[float]) -> float:
    """10,000 distinct keys at one step, in one log_metrics call, then a flush."""
    with loopml.start_run(experiment=EXPERIMENT, workspace=workspace) as run:
        start = time.perf_counter()
        run.log_metrics({f"k{index}": value for index, value in enumerate(values)}, step=0)
        run.flush()
        seconds = time.perf_counter() - start
    summaries = loopml.metric_summaries(run.id, workspace=workspace)
    check(len(summaries) == len(values), "loopml stored every key of (c)")
    return seconds


def mlflow_batch(experiment_id: str, values: list[float], distinct_keys: bool) -> float:
    """log_batch of Metric objects built from the same values (building included)."""
    client = MlflowClient()
    run_id = client.create_run(experiment_id).info.run_id
    start = time.perf_counter()
    now = int(time.time() * 1000)
    if distinct_keys:
        metrics = [Metric(f"k{index}", value, now, 0) for index, value in enumerate(values)]
    else:
        metrics = [Metric("loss", value, now, step) for step, value in enumerate(values)]
    client.log_batch(run_id, metrics=metrics)
    seconds = time.perf_counter() - start
    client.set_terminated(run_id)
    stored = client.get_run(run_id).data.metrics
    check(len(stored) == (len(values) if distinct_keys else 1), "MLflow stored the batch")
    return seconds


def bench_batch(values: list[float]) -> list[Row]:
    with loopml_store() as workspace:
        loopml_steps = loopml_buffered(workspace, values)
    with loopml_store() as workspace:
        loopml_keys = loopml_dict(workspace, values)
    with mlflow_store() as experiment_id:
        mlflow_steps = mlflow_batch(experiment_id, values, distinct_keys=False)
    with mlflow_store() as experiment_id:
        mlflow_keys = mlflow_batch(experiment_id, values, distinct_keys=True)
    count = len(values)
    return [
        Row(
            "c",
            f"the same {count:,} values as a batch (loopml: buffer + one flush; MLflow: log_batch)",
            count,
            "values",
            loopml_steps,
            mlflow_steps,
            Target("at least 5x MLflow's log_batch", min_speedup=5),
        ),
        Row(
            "c.keys",
            f"{count:,} distinct keys at one step in one call (loopml: log_metrics + flush; "
            "MLflow: log_batch)",
            count,
            "values",
            loopml_keys,
            mlflow_keys,
        ),
    ]


# --- (d) search ------------------------------------------------------------------------


def populate_loopml(workspace: Workspace, data: list[RunData]) -> None:
    for item in data:
        with loopml.start_run(
            experiment=EXPERIMENT, params=item.params, workspace=workspace
        ) as run:
            run.log_metrics(item.metrics, step=0)


def populate_mlflow(experiment_id: str, data: list[RunData]) -> None:
    """MLflow's fastest supported path: create_run + log_batch + set_terminated."""
    client = MlflowClient()
    for item in data:
        run_id = client.create_run(experiment_id).info.run_id
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(key, value, now, 0) for key, value in item.metrics.items()],
            params=[Param(key, str(value)) for key, value in item.params.items()],
        )
        client.set_terminated(run_id)


def search_loopml(workspace: Workspace, limit: int) -> list[int]:
    found = loopml.search_runs(
        EXPERIMENT,
        where=SEARCH_WHERE_LOOPML,
        sort=SEARCH_SORT_LOOPML,
        limit=limit,
        workspace=workspace,
    )
    return [int(record.params["idx"]) for record in found]


def search_mlflow(experiment_id: str, limit: int) -> list[int]:
    found = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=SEARCH_FILTER_MLFLOW,
        order_by=SEARCH_ORDER_MLFLOW,
        max_results=limit,
        output_format="list",
    )
    return [int(run.data.params["idx"]) for run in found]


def median_time(action: Callable[[], Any], repeats: int) -> float:
    """Median seconds of repeats calls, after one untimed warm-up call."""
    action()
    return statistics.median(elapsed(action) for _ in range(repeats))


def expected_matches(data: list[RunData]) -> list[int]:
    """The (d) answer computed in Python: what both tools must return, in order."""
    hits = [item for item in data if item.metrics["m0"] > 0.5 and item.params["p0"] == 3]
    hits.sort(key=lambda item: -item.metrics["m1"])
    return [item.params["idx"] for item in hits]


def bench_search(sizes: Sizes, data: list[RunData]) -> Row:
    limit = sizes.search_runs  # at least the number of runs: every match is returned
    expected = expected_matches(data)
    with loopml_store() as workspace:
        populate_loopml_seconds = elapsed(lambda: populate_loopml(workspace, data))
        found_loopml = search_loopml(workspace, limit)
        loopml_seconds = median_time(lambda: search_loopml(workspace, limit), sizes.search_repeats)
    with mlflow_store() as experiment_id:
        populate_mlflow_seconds = elapsed(lambda: populate_mlflow(experiment_id, data))
        found_mlflow = search_mlflow(experiment_id, limit)
        mlflow_seconds = median_time(
            lambda: search_mlflow(experiment_id, limit), sizes.search_repeats
        )
    check(len(found_loopml) == len(found_mlflow), "both searches return the same number of runs")
    check(found_loopml == expected, "loopml returns the expected runs in order")
    check(found_mlflow == expected, "MLflow returns the expected runs in order")
    return Row(
        "d",
        f"filtered, sorted search over {sizes.search_runs:,} runs "
        f"({len(expected):,} matches, all returned)",
        1,
        "searches",
        loopml_seconds,
        mlflow_seconds,
        Target("loopml under 100 ms", max_loopml_ms=100),
        notes={
            "runs_searched": sizes.search_runs,
            "matches_returned": len(found_loopml),
            "limit": limit,
            "loopml_where": SEARCH_WHERE_LOOPML,
            "loopml_sort": SEARCH_SORT_LOOPML,
            "mlflow_filter_string": SEARCH_FILTER_MLFLOW,
            "mlflow_order_by": SEARCH_ORDER_MLFLOW,
            "repeats": sizes.search_repeats,
            "loopml_populate_seconds": populate_loopml_seconds,
            "mlflow_populate_seconds": populate_mlflow_seconds,
        },
    )


def check(condition: bool, claim: str) -> None:
    """Stop the benchmark if the tools did not do the work that was timed."""
    if not condition:
        raise SystemExit(f"Check failed: {claim}.")


# --- report ----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loopml": loopml.__version__,
        **loopml_source(),
        "mlflow": mlflow.__version__,
    }


def format_time(seconds: float) -> str:
    if seconds < 0.001:
        return f"{seconds * 1e6:,.0f} µs"
    if seconds < 1:
        return f"{seconds * 1000:,.1f} ms"
    return f"{seconds:,.2f} s"


def format_cell(row: Row, seconds: float) -> str:
    if row.unit == "searches":
        return format_time(seconds)
    return f"{format_time(seconds)} ({row.rate(seconds):,.0f} {row.unit}/s)"


def format_target(row: Row) -> str:
    if row.target is None:
        return ""
    return f"{row.target.description}: {'met' if row.target.met else 'MISSED'}"


def table(rows: list[Row]) -> str:
    lines = [
        "| | workload | loopml | MLflow | loopml speed-up | target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        cells = [
            row.id,
            row.title,
            format_cell(row, row.loopml_seconds),
            format_cell(row, row.mlflow_seconds),
            f"**{row.speedup:,.1f}x**",
            format_target(row),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


METHOD = """\
Both tools run in one process on the same machine, each against a SQLite file in a fresh
temporary folder per workload (MLflow with `sqlite:///` as its backend store and a temporary
artifact location), each with its own default SQLite settings (loopml: WAL journal,
`synchronous=NORMAL`; MLflow: rollback journal, SQLite's default `synchronous=FULL`). Every
store gets one untimed warm-up run first. All data comes from `random.Random({seed})` and is
generated before timing, so both tools store the same values. loopml buffers metric values
in memory, so its times for (b) and (c) stop only after `run.flush()` has written every value
(line b.call shows the buffered call alone); MLflow's `log_metric` is synchronous by default
(line b.async uses its optional asynchronous mode, ended by `flush_async_logging()`). loopml
has no call that takes a list of values, so for (c) the same one-metric, {values:,}-step data
goes through its batch path: `log_metric` calls fill the buffer and one `flush()` writes it in
one transaction, against `MlflowClient.log_batch` of `Metric` objects built from the same
values (building them is timed). Line c.keys is the single-call reading: `log_metrics` with a
dict of {values:,} keys at one step against one `log_batch` of the same keys. For (d) each
tool is filled with the same {search_runs:,} runs (MLflow through `create_run` + `log_batch` +
`set_terminated`) and only the search is timed: median of {repeats} after one warm-up, with a
limit of {search_runs:,} for both, so every match is returned (`mlflow.search_runs` with
`output_format="list"`). Both must return the same runs in the same order as a plain Python
computation over the data, else the benchmark stops. The speed-up is MLflow's time divided
by loopml's for the same work; it is the number to compare across machines, absolute times
are not."""


def markdown(info: dict[str, Any], sizes: Sizes, rows: list[Row], seconds: float) -> str:
    search = next(row for row in rows if row.id == "d")
    method = METHOD.format(
        seed=SEED,
        values=sizes.values,
        search_runs=sizes.search_runs,
        repeats=sizes.search_repeats,
    ).replace("\n", " ")
    return "\n".join(
        [
            "# Experiment tracking: loopml vs MLflow",
            "",
            f"{info['date']}, {info['cpu_count']} CPUs ({info['cpu']}), Python "
            f"{info['python']}, loopml {info['loopml']} ({describe_source(info)}), "
            f"MLflow {info['mlflow']}. The whole benchmark took {seconds:,.0f} s.",
            "",
            table(rows),
            "",
            f"Search (d): {search.notes['matches_returned']:,} of "
            f"{search.notes['runs_searched']:,} runs match `{SEARCH_WHERE_LOOPML}` "
            f"(MLflow: `{SEARCH_FILTER_MLFLOW}`), sorted by `{SEARCH_SORT_LOOPML}`; both tools "
            "return the same runs in the same order. Filling the stores took "
            f"{search.notes['loopml_populate_seconds']:,.1f} s for loopml and "
            f"{search.notes['mlflow_populate_seconds']:,.1f} s for MLflow (not part of the "
            "search time).",
            "",
            "## Method",
            "",
            method,
            "",
            "Reproduce with `benchmarks/.venv/bin/python benchmarks/tracking.py` "
            "(see benchmarks/README.md).",
            "",
        ]
    )


def describe_source(info: dict[str, Any]) -> str:
    if info["loopml_commit"] is None:
        return "not a git checkout"
    changes = ", with uncommitted changes in src/" if info["loopml_uncommitted_changes"] else ""
    return f"commit {info['loopml_commit']}{changes}"


def results(info: dict[str, Any], sizes: Sizes, rows: list[Row], seconds: float) -> dict[str, Any]:
    targets = [row for row in rows if row.target is not None]
    return {
        "machine": info,
        "settings": {**asdict(sizes), "seed": SEED, "total_seconds": seconds},
        "workloads": [row.to_dict() for row in rows],
        "all_targets_met": all(row.target.met for row in targets if row.target),
    }


# --- main ------------------------------------------------------------------------------


def run_all(sizes: Sizes) -> list[Row]:
    rng = random.Random(SEED)
    runs = run_data(rng, sizes)
    values = metric_values(rng, sizes.values)
    searched = search_data(rng, sizes)
    rows: list[Row] = []
    steps: list[tuple[str, Callable[[], Row | list[Row]]]] = [
        ("(a) runs", lambda: bench_runs(sizes, runs)),
        ("(b) one call per value", lambda: bench_calls(values)),
        ("(c) batch", lambda: bench_batch(values)),
        ("(d) search", lambda: bench_search(sizes, searched)),
    ]
    for label, step in steps:
        print(f"{label} ...", end=" ", flush=True)
        started = time.perf_counter()
        done = step()
        rows.extend(done if isinstance(done, list) else [done])
        print(f"{time.perf_counter() - started:,.0f} s", flush=True)
    return rows


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tenth of every size, to check the script; writes no results unless --output",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help=f"folder for the results (default {RESULTS})"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    sizes = Sizes().scaled(10) if args.quick else Sizes()
    output = args.output or (None if args.quick else RESULTS)
    quiet_mlflow()
    info = machine()  # before the run: the date and commit of what is measured
    started = time.perf_counter()
    rows = run_all(sizes)
    seconds = time.perf_counter() - started
    text = markdown(info, sizes, rows, seconds)
    print()
    print(table(rows))
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        data = results(info, sizes, rows, seconds)
        (output / "tracking.json").write_text(json.dumps(data, indent=2) + "\n")
        (output / "tracking.md").write_text(text)
        print(f"\nWrote {output / 'tracking.json'} and {output / 'tracking.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
