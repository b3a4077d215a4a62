"""Tracking servers: `loopml server` against `mlflow server`, same machine, SQLite for both.

Each server runs as a subprocess with its own store in a temporary folder (`loopml server
--workers 2`; `mlflow server` with its default workers), gets one untimed warm-up run, and is
stopped by its process group when its workload is done. The clients run in this process,
except in (d). Workloads (values from a seeded random generator, so both stores hold the
same data):

(a) sdk      10,000 values of one metric, one ``log_metric`` call each (steps 0..9,999): the
             loopml SDK to loopml server, timed up to ``run.flush()`` (the SDK buffers values
             and sends them in batches), against ``mlflow.log_metric`` to mlflow server.
             MLflow's ``MlflowClient.log_batch`` of the same values is a line of context.
(b) client   the MLflow client's own ``mlflow.log_metric`` loop (2,000 calls) against loopml
             server (it speaks MLflow's REST protocol) and against mlflow server.
(c) search   ``metrics.m0 > 0.5 and params.p0 = '3'`` ordered by ``metrics.m1 DESC``, every
             match returned, over 10,000 runs (median of 5 after a warm-up): the MLflow client
             against both servers, and loopml's SDK against loopml server. The stores are
             filled before their servers start, loopml's through its SDK, MLflow's through
             its own SQLAlchemy models. Every search must return the same runs in order.
(d) writers  8 client processes, each with its own run, log through the loopml SDK to loopml
             server for 30 s, on SQLite and on PostgreSQL. Each counts the values its calls
             accepted and the calls that failed; the values stored are then read back through
             the SDK (``metric_history``): values lost, duplicated, requests failed.

Run from the repository root:

    benchmarks/.venv/bin/python benchmarks/server.py

Results go to benchmarks/results/server.json and benchmarks/results/server.md.
"""

from __future__ import annotations

import os

# Set before MLflow is imported: no usage reporting, no network.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # a link per ended run

import argparse
import contextlib
import json
import logging
import multiprocessing
import queue
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from machine import describe

import loopml
from loopml import Workspace

SEED = 11
HOST = "127.0.0.1"
RESULTS = Path(__file__).resolve().parent / "results"
BIN = Path(sys.executable).parent
POSTGRES_URL = os.environ.get(
    "LOOPML_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
LOOPML_WORKERS = 2
EXPERIMENT = "server-bench"

SEARCH_FILTER_MLFLOW = "metrics.m0 > 0.5 and params.p0 = '3'"
SEARCH_ORDER_MLFLOW = ["metrics.m1 DESC"]
SEARCH_WHERE_LOOPML = "metrics.m0 > 0.5 and params.p0 = 3"
SEARCH_SORT_LOOPML = "-metrics.m1"


@dataclass(frozen=True)
class Sizes:
    """How much work each workload does."""

    values: int = 10_000
    mlflow_calls: int = 2_000
    search_runs: int = 10_000
    search_repeats: int = 5
    clients: int = 8
    client_seconds: float = 30.0

    def scaled(self, factor: int) -> Sizes:
        """Smaller sizes for a quick check of the script itself (same code path)."""
        return Sizes(
            values=max(10, self.values // factor),
            mlflow_calls=max(10, self.mlflow_calls // factor),
            search_runs=max(100, self.search_runs // factor),
            search_repeats=self.search_repeats,
            clients=self.clients,
            client_seconds=max(1.0, self.client_seconds / factor),
        )


@dataclass(frozen=True)
class RunData:
    """What one searched run holds: params and one value per metric."""

    params: dict[str, Any]
    metrics: dict[str, float]


@dataclass
class Target:
    """A goal for one line: a minimum ratio of loopml server over mlflow server."""

    description: str
    min_ratio: float
    met: bool = False


@dataclass
class Row:
    """One line: the same work against loopml server and against mlflow server."""

    id: str
    title: str
    count: int
    unit: str
    loopml_seconds: float
    mlflow_seconds: float
    loopml_client: str
    mlflow_client: str
    target: Target | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.target is not None:
            self.target.met = self.ratio >= self.target.min_ratio

    @property
    def ratio(self) -> float:
        """How many times faster loopml server is (mlflow server's time over loopml's)."""
        return self.mlflow_seconds / self.loopml_seconds

    def rate(self, seconds: float) -> float:
        return self.count / seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "count": self.count,
            "unit": self.unit,
            "loopml_client": self.loopml_client,
            "mlflow_client": self.mlflow_client,
            "loopml_seconds": self.loopml_seconds,
            "mlflow_seconds": self.mlflow_seconds,
            f"loopml_{self.unit}_per_second": self.rate(self.loopml_seconds),
            f"mlflow_{self.unit}_per_second": self.rate(self.mlflow_seconds),
            "ratio": self.ratio,
            "target": asdict(self.target) if self.target else None,
            **self.notes,
        }


@dataclass(frozen=True)
class ClientResult:
    """What one (d) client process did: values its calls accepted, and what failed."""

    index: int
    run_id: str
    accepted: int
    seconds: float
    failures: int
    errors: list[str]  # the first few
    retries: int


@dataclass
class WritersRow:
    """One (d) line: concurrent writers to loopml server over one metadata store."""

    backend: str
    clients: int
    seconds_asked: float
    seconds: float = float("nan")
    acknowledged: int = 0
    stored: int = 0
    duplicates: int = 0
    runs_finished: int = 0
    requests_failed: int = 0
    retries: int = 0
    server_errors_logged: int = 0
    errors: list[str] = field(default_factory=list)
    skipped: str | None = None

    @property
    def lost(self) -> int:
        return self.acknowledged - (self.stored - self.duplicates)

    @property
    def met(self) -> bool:
        clean = self.lost == 0 and self.duplicates == 0 and self.requests_failed == 0
        return self.skipped is None and clean and self.runs_finished == self.clients

    def to_dict(self) -> dict[str, Any]:
        rate = self.stored / self.seconds if self.seconds > 0 else None
        return {
            **asdict(self),
            "lost": self.lost,
            "values_per_second": rate,
            "target": "no value lost or duplicated, no request failed",
            "met": self.met,
        }


# --- data ------------------------------------------------------------------------------


def metric_values(rng: random.Random, count: int) -> list[float]:
    """A noisy decreasing loss curve."""
    return [1.0 / (1 + step) + rng.random() * 0.01 for step in range(count)]


def search_data(rng: random.Random, count: int) -> list[RunData]:
    """The runs searched in (c): p0 in 0..9, an optimizer, an index; m0, m1, m2 in [0, 1)."""
    data = []
    for index in range(count):
        params = {"p0": rng.randrange(10), "p1": rng.choice(["adam", "sgd"]), "idx": index}
        metrics = {"m0": rng.random(), "m1": rng.random(), "m2": rng.random()}
        data.append(RunData(params, metrics))
    return data


def expected_matches(data: list[RunData]) -> list[int]:
    """The (c) answer computed in Python: what every search must return, in order."""
    hits = [item for item in data if item.metrics["m0"] > 0.5 and item.params["p0"] == 3]
    hits.sort(key=lambda item: -item.metrics["m1"])
    return [item.params["idx"] for item in hits]


# --- servers ---------------------------------------------------------------------------


@dataclass
class Server:
    """A server process this benchmark started, in its own session (process group)."""

    label: str
    process: subprocess.Popen
    url: str
    log: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def clean_environment(**values: str) -> dict[str, str]:
    """This process's environment without LOOPML_* and MLFLOW_* settings, plus values."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPML_", "MLFLOW_"))}
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", **values})
    return env


def start(label: str, command: list[str], env: dict[str, str], cwd: Path, port: int) -> Server:
    """Start a server in a new session and wait until GET /health answers 200."""
    log = cwd / f"{label.replace(' ', '-')}-{port}.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped by that id, children too
        )  # fmt: skip
    server = Server(label, process, f"http://{HOST}:{port}", log)
    try:
        wait_until_up(server)
    except BaseException:
        stop(server)
        raise
    return server


def wait_until_up(server: Server, timeout: float = 180.0) -> None:
    """Return once the server's /health answers 200; stop the benchmark if it never does."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if server.process.poll() is not None:
            raise SystemExit(f"{server.label} exited: {server.process.returncode}\n{tail(server)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.url + "/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"{server.label} was not ready after {timeout:.0f} s:\n{tail(server)}")


def stop(server: Server) -> None:
    """SIGTERM to the server's process group (its workers too), SIGKILL after 20 s."""
    group = server.process.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
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


def tail(server: Server, lines: int = 30) -> str:
    try:
        return "\n".join(server.log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def logged_errors(server: Server) -> int:
    """Tracebacks and failed operations in the server's log."""
    text = server.log.read_text(errors="replace")
    return text.count("Traceback (most recent call last)") + text.count("failed (error ")


@contextlib.contextmanager
def loopml_server(folder: Path, metadata_url: str | None = None) -> Iterator[Server]:
    """`loopml server` over the workspace in folder (SQLite there unless metadata_url)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = clean_environment(LOOPML_HOME=str(folder / ".loopml"))
    if metadata_url:
        env["LOOPML_METADATA_URL"] = metadata_url
    command = [str(BIN / "loopml"), "server", "--host", HOST, "--port", str(port)]
    command += ["--workers", str(LOOPML_WORKERS)]
    server = start("loopml server", command, env, folder, port)
    try:
        yield server
    finally:
        stop(server)


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[Server]:
    """`mlflow server` over folder/mlflow.db with its default workers and artifact proxy."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [str(BIN / "mlflow"), "server", "--host", HOST, "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"]
    command += ["--artifacts-destination", str(folder / "mlartifacts")]
    server = start("mlflow server", command, clean_environment(), folder, port)
    try:
        yield server
    finally:
        stop(server)


def remote_workspace(folder: Path, server: Server) -> Workspace:
    """A loopml workspace that keeps its metadata through the server (LOOPML_SERVER_URL)."""
    client = folder / "client"
    client.mkdir(exist_ok=True)
    return loopml.open_workspace(client, home=str(client / ".loopml"), server_url=server.url)


def warm_up_loopml(workspace: Workspace) -> None:
    with loopml.start_run(experiment="warm-up", workspace=workspace) as run:
        run.log_params({"warm": 1})
        run.log_metric("warm", 1.0)


def warm_up_mlflow(url: str) -> None:
    import mlflow

    mlflow.set_tracking_uri(url)
    with mlflow.start_run(experiment_id=experiment_id(url, "warm-up")):
        mlflow.log_param("warm", 1)
        mlflow.log_metric("warm", 1.0)


def experiment_id(url: str, name: str) -> str:
    """The id of an experiment, created if missing, through the MLflow client."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else client.create_experiment(name)


# --- (a) the loopml SDK against the MLflow client, one call per value -------------------


def loopml_sdk_calls(workspace: Workspace, values: list[float]) -> float:
    """Seconds of the log_metric calls plus the flush that sends them to the server."""
    with loopml.start_run(experiment=EXPERIMENT, workspace=workspace) as run:
        started = time.perf_counter()
        for step, value in enumerate(values):
            run.log_metric("loss", value, step=step)
        run.flush()
        seconds = time.perf_counter() - started
    stored = loopml.metric_history(run.id, "loss", workspace=workspace)
    check(len(stored) == len(values), "loopml server stored every value of (a)")
    return seconds


def mlflow_calls(url: str, values: list[float]) -> float:
    """Seconds of a synchronous mlflow.log_metric loop against the server at url."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(url)
    with mlflow.start_run(experiment_id=experiment_id(url, EXPERIMENT)) as run:
        started = time.perf_counter()
        for step, value in enumerate(values):
            mlflow.log_metric("loss", value, step=step)
        seconds = time.perf_counter() - started
    history = MlflowClient(tracking_uri=url).get_metric_history(run.info.run_id, "loss")
    check(len(history) == len(values), f"the server at {url} stored every mlflow.log_metric")
    return seconds


def mlflow_log_batch(url: str, values: list[float]) -> float:
    """Seconds of MlflowClient.log_batch of the values (the client sends 1,000 a request)."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    run_id = client.create_run(experiment_id(url, EXPERIMENT)).info.run_id
    started = time.perf_counter()
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric("loss", v, now, s) for s, v in enumerate(values)])
    seconds = time.perf_counter() - started
    client.set_terminated(run_id)
    check(len(client.get_metric_history(run_id, "loss")) == len(values), "log_batch stored all")
    return seconds


def bench_sdk(folder: Path, values: list[float]) -> list[Row]:
    with loopml_server(folder / "loopml") as server:
        workspace = remote_workspace(folder / "loopml", server)
        try:
            warm_up_loopml(workspace)
            loopml_seconds = loopml_sdk_calls(workspace, values)
        finally:
            workspace.close()
    with mlflow_server(folder / "mlflow") as server:
        warm_up_mlflow(server.url)
        mlflow_seconds = mlflow_calls(server.url, values)
        batch_seconds = mlflow_log_batch(server.url, values)
    return sdk_rows(len(values), loopml_seconds, mlflow_seconds, batch_seconds)


def sdk_rows(count: int, loopml_seconds: float, mlflow_seconds: float, batch: float) -> list[Row]:
    sdk = "loopml SDK: log_metric per value + flush()"
    return [
        Row(
            "a", f"{count:,} values, one log_metric call each", count, "values",
            loopml_seconds, mlflow_seconds, sdk, "mlflow.log_metric per value",
            Target("at least 100x MLflow's per-call rate", 100),
        ),
        Row(
            "a.batch", f"the same {count:,} values, MLflow through log_batch (context)",
            count, "values", loopml_seconds, batch, sdk, "MlflowClient.log_batch",
        ),
    ]  # fmt: skip


# --- (b) the MLflow client against both servers ----------------------------------------


def bench_mlflow_client(folder: Path, values: list[float]) -> Row:
    with loopml_server(folder / "loopml-b") as server:
        warm_up_mlflow(server.url)
        loopml_seconds = mlflow_calls(server.url, values)
    with mlflow_server(folder / "mlflow-b") as server:
        warm_up_mlflow(server.url)
        mlflow_seconds = mlflow_calls(server.url, values)
    client = "mlflow.log_metric per value"
    count = len(values)
    return Row(
        "b", f"the MLflow client's own log_metric loop, {count:,} calls", count, "values",
        loopml_seconds, mlflow_seconds, client, client,
        Target("at least 3x mlflow server", 3),
    )  # fmt: skip


# --- (c) search ------------------------------------------------------------------------


def populate_loopml(folder: Path, data: list[RunData]) -> float:
    """Fill the workspace in folder through the SDK, on its SQLite store directly."""
    workspace = loopml.open_workspace(folder, home=str(folder / ".loopml"))
    try:
        started = time.perf_counter()
        for item in data:
            with loopml.start_run(
                experiment=EXPERIMENT, params=item.params, workspace=workspace
            ) as run:
                run.log_metrics(item.metrics, step=0)
        return time.perf_counter() - started
    finally:
        workspace.close()


def populate_mlflow(folder: Path, data: list[RunData]) -> float:
    """Fill folder/mlflow.db through MLflow's own store (schema, experiment) and SQLAlchemy
    models (runs, params, metrics, latest metrics, tags), in one transaction: what
    create_run + log_batch + set_terminated store, without 30,000 transactions."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    started = time.perf_counter()
    store = SqlAlchemyStore(f"sqlite:///{folder / 'mlflow.db'}", (folder / "mlartifacts").as_uri())
    try:
        experiment = store.create_experiment(EXPERIMENT)
        with store.engine.begin() as connection:
            for table, rows in mlflow_rows(experiment, data, folder).items():
                connection.execute(table.insert(), rows)
    finally:
        store.engine.dispose()
    return time.perf_counter() - started


def mlflow_rows(experiment: str, data: list[RunData], folder: Path) -> dict[Any, list[dict]]:
    """The rows of MLflow's tables for the runs, as its store writes them."""
    from mlflow.store.tracking.dbmodels import models

    now = int(time.time() * 1000)
    tables: dict[Any, list[dict]] = {
        models.SqlRun.__table__: [],
        models.SqlParam.__table__: [],
        models.SqlMetric.__table__: [],
        models.SqlLatestMetric.__table__: [],
        models.SqlTag.__table__: [],
    }
    runs, params, metrics, latest, tags = tables.values()
    for index, item in enumerate(data):
        run_id = uuid.UUID(int=random.Random(index).getrandbits(128)).hex
        runs.append(mlflow_run_row(run_id, experiment, index, now, folder))
        tags.append({"key": "mlflow.runName", "value": f"run-{index}", "run_uuid": run_id})
        params.extend(
            {"key": k, "value": str(v), "run_uuid": run_id} for k, v in item.params.items()
        )
        for key, value in item.metrics.items():
            row = {"key": key, "value": value, "timestamp": now, "step": 0, "is_nan": False}
            metrics.append({**row, "run_uuid": run_id})
            latest.append({**row, "run_uuid": run_id})
    return tables


def mlflow_run_row(run_id: str, experiment: str, index: int, now: int, folder: Path) -> dict:
    return {
        "run_uuid": run_id,
        "name": f"run-{index}",
        "source_type": "LOCAL",
        "source_name": "",
        "entry_point_name": "",
        "user_id": "bench",
        "status": "FINISHED",
        "start_time": now + index,
        "end_time": now + index + 1,
        "source_version": "",
        "lifecycle_stage": "active",
        "artifact_uri": f"{(folder / 'mlartifacts').as_uri()}/{run_id}/artifacts",
        "experiment_id": int(experiment),
    }


def search_mlflow(url: str, experiment: str, limit: int) -> list[int]:
    import mlflow

    mlflow.set_tracking_uri(url)
    found = mlflow.search_runs(
        experiment_ids=[experiment],
        filter_string=SEARCH_FILTER_MLFLOW,
        order_by=SEARCH_ORDER_MLFLOW,
        max_results=limit,
        output_format="list",
    )
    return [int(run.data.params["idx"]) for run in found]


def search_loopml(workspace: Workspace, limit: int) -> list[int]:
    found = loopml.search_runs(
        EXPERIMENT,
        where=SEARCH_WHERE_LOOPML,
        sort=SEARCH_SORT_LOOPML,
        limit=limit,
        workspace=workspace,
    )
    return [int(record.params["idx"]) for record in found]


def median_time(action: Callable[[], list[int]], repeats: int, expected: list[int]) -> float:
    """Median seconds of repeats calls after one untimed warm-up; every answer checked."""
    check(action() == expected, "the search returns the expected runs in order")
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        found = action()
        times.append(time.perf_counter() - started)
        check(found == expected, "the search returns the expected runs in order")
    return statistics.median(times)


def bench_search(folder: Path, sizes: Sizes, data: list[RunData]) -> list[Row]:
    expected, limit = expected_matches(data), sizes.search_runs
    repeats = sizes.search_repeats
    (folder / "loopml-c").mkdir()
    (folder / "mlflow-c").mkdir()
    filled = {
        "loopml_populate_seconds": populate_loopml(folder / "loopml-c", data),
        "mlflow_populate_seconds": populate_mlflow(folder / "mlflow-c", data),
    }
    with loopml_server(folder / "loopml-c") as server:
        found = experiment_id(server.url, EXPERIMENT)
        client_loopml = median_time(
            lambda: search_mlflow(server.url, found, limit), repeats, expected
        )
        workspace = remote_workspace(folder / "loopml-c", server)
        try:
            sdk_loopml = median_time(lambda: search_loopml(workspace, limit), repeats, expected)
        finally:
            workspace.close()
    with mlflow_server(folder / "mlflow-c") as server:
        found = experiment_id(server.url, EXPERIMENT)
        client_mlflow = median_time(
            lambda: search_mlflow(server.url, found, limit), repeats, expected
        )
    notes = search_notes(sizes, len(expected), filled)
    return search_rows(sizes, len(expected), client_loopml, sdk_loopml, client_mlflow, notes)


def search_notes(sizes: Sizes, matches: int, filled: dict[str, float]) -> dict[str, Any]:
    return {
        "runs_searched": sizes.search_runs,
        "matches_returned": matches,
        "limit": sizes.search_runs,
        "repeats": sizes.search_repeats,
        "mlflow_filter_string": SEARCH_FILTER_MLFLOW,
        "mlflow_order_by": SEARCH_ORDER_MLFLOW,
        "loopml_where": SEARCH_WHERE_LOOPML,
        "loopml_sort": SEARCH_SORT_LOOPML,
        **filled,
    }


def search_rows(sizes, matches, client_loopml, sdk_loopml, client_mlflow, notes) -> list[Row]:
    title = f"filtered, sorted search over {sizes.search_runs:,} runs ({matches:,} matches)"
    client = 'mlflow.search_runs(output_format="list")'
    target = "at least 5x faster than mlflow server"
    return [
        Row(
            "c", title + ", the MLflow client against both", 1, "searches",
            client_loopml, client_mlflow, client, client, Target(target, 5), notes,
        ),
        Row(
            "c.sdk", title + ", loopml's SDK against loopml server", 1, "searches",
            sdk_loopml, client_mlflow, "loopml.search_runs", client, Target(target, 5),
        ),
    ]  # fmt: skip


# --- (d) concurrent writers ------------------------------------------------------------


class _Retries(logging.Handler):
    """Counts the SDK's 'retrying' warnings (a request sent again after a 502/503/504 or a
    transport error) instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "retrying" in record.getMessage():
            self.count += 1


def client_main(index: int, url: str, folder: str, seconds: float, barrier, results) -> None:
    """One (d) client process: start a run, wait for the others, log for seconds, end."""
    retries = _Retries()
    logger = logging.getLogger("loopml.store")
    logger.addHandler(retries)
    logger.propagate = False
    home = Path(folder) / f"client-{index}"
    home.mkdir(parents=True, exist_ok=True)
    workspace = loopml.open_workspace(home, home=str(home / ".loopml"), server_url=url)
    run = loopml.start_run(experiment="writers", name=f"client-{index}", workspace=workspace)
    barrier.wait(timeout=300)
    accepted, failures, errors, took = log_for(run, seconds)
    results.put(ClientResult(index, run.id, accepted, took, failures, errors, retries.count))
    workspace.close()


def log_for(run: Any, seconds: float) -> tuple[int, int, list[str], float]:
    """Log one metric, a value a call, for seconds; then end the run (its final flush).
    (values accepted, calls that raised, their first errors, seconds including the end)."""
    accepted, failures, errors, step = 0, 0, [], 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(1000):
            try:
                run.log_metric("loss", 1.0 / (1 + step), step=step)
                accepted += 1
            except Exception as error:  # counted, and reported as a failed request
                failures += 1
                errors.append(f"{type(error).__name__}: {error}"[:300])
            step += 1
    try:
        run.end()
    except Exception as error:
        failures += 1
        errors.append(f"end: {type(error).__name__}: {error}"[:300])
    return accepted, failures, errors[:20], time.perf_counter() - started


def run_clients(server: Server, folder: Path, sizes: Sizes) -> list[ClientResult]:
    """Start the client processes (spawned: no inherited threads or connections), release
    them together, and collect what each did."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(sizes.clients)
    results = context.Queue()
    processes = [
        context.Process(
            target=client_main,
            args=(i, server.url, str(folder), sizes.client_seconds, barrier, results),
        )
        for i in range(sizes.clients)
    ]
    for process in processes:
        process.start()
    found = collect(processes, results, sizes.client_seconds + 600)
    for process in processes:
        process.join(timeout=60)
    check(all(p.exitcode == 0 for p in processes), "every client process exited cleanly")
    return sorted(found, key=lambda result: result.index)


def collect(processes: list[Any], results: Any, timeout: float) -> list[ClientResult]:
    """Every client's result; stops the benchmark if a client died or took far too long."""
    found: list[ClientResult] = []
    deadline = time.monotonic() + timeout
    while len(found) < len(processes):
        try:
            found.append(results.get(timeout=5))
        except queue.Empty:
            dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
            check(not dead, f"every client process reported (exit codes {dead})")
            check(time.monotonic() < deadline, "every client process finished in time")
    return found


def count_stored(row: WritersRow, server: Server, folder: Path, found: list[ClientResult]):
    """Read every run's values back through the SDK and fill the row's counts."""
    workspace = remote_workspace(folder, server)
    try:
        for result in found:
            points = loopml.metric_history(result.run_id, "loss", workspace=workspace)
            steps = {point.step for point in points}
            row.stored += len(points)
            row.duplicates += len(points) - len(steps)
            finished = loopml.get_run(result.run_id, workspace=workspace).status == "finished"
            row.runs_finished += finished
    finally:
        workspace.close()


def writers(backend: str, folder: Path, sizes: Sizes, metadata_url: str | None) -> WritersRow:
    row = WritersRow(backend, sizes.clients, sizes.client_seconds)
    folder.mkdir()
    with loopml_server(folder, metadata_url) as server:
        found = run_clients(server, folder, sizes)
        count_stored(row, server, folder, found)
    row.seconds = max(result.seconds for result in found)
    row.acknowledged = sum(result.accepted for result in found)
    row.requests_failed = sum(result.failures for result in found)
    row.retries = sum(result.retries for result in found)
    row.errors = [error for result in found for error in result.errors][:20]
    row.server_errors_logged = logged_errors(server)
    return row


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped at the end."""
    import sqlalchemy as sa

    schema = f"loopml_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    try:
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        try:
            separator = "&" if "?" in POSTGRES_URL else "?"
            yield f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}"
        finally:
            with admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


def postgres_unreachable() -> str | None:
    """Why PostgreSQL cannot be used at POSTGRES_URL, or None when it answers."""
    import sqlalchemy as sa

    engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as error:
        return f"PostgreSQL is not reachable at {POSTGRES_URL}: {str(error.orig).strip()}"[:300]
    finally:
        engine.dispose()
    return None


def bench_writers(folder: Path, sizes: Sizes) -> list[WritersRow]:
    rows = [writers("SQLite", folder / "writers-sqlite", sizes, None)]
    reason = postgres_unreachable()
    if reason is not None:  # no PostgreSQL here: the row says so
        rows.append(WritersRow("PostgreSQL", sizes.clients, sizes.client_seconds, skipped=reason))
        return rows
    with postgres_schema() as url:
        rows.append(writers("PostgreSQL", folder / "writers-postgres", sizes, url))
    return rows


def check(condition: bool, claim: str) -> None:
    """Stop the benchmark if a server did not do the work that was timed."""
    if not condition:
        raise SystemExit(f"Check failed: {claim}.")


# --- report ----------------------------------------------------------------------------


def format_time(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:,.1f} ms"
    return f"{seconds:,.2f} s"


def format_cell(row: Row, seconds: float, client: str) -> str:
    if row.unit == "searches":
        return f"{format_time(seconds)} ({client})"
    return f"{row.rate(seconds):,.0f} values/s, {format_time(seconds)} ({client})"


def format_target(target: Target | None) -> str:
    if target is None:
        return ""
    return f"{target.description}: {'met' if target.met else '**MISSED**'}"


def table(rows: list[Row]) -> str:
    lines = [
        "| | workload | loopml server | mlflow server | ratio | target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        cells = [
            row.id,
            row.title,
            format_cell(row, row.loopml_seconds, row.loopml_client),
            format_cell(row, row.mlflow_seconds, row.mlflow_client),
            f"**{row.ratio:,.1f}x**",
            format_target(row.target),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def writers_table(rows: list[WritersRow]) -> str:
    lines = [
        "| store | clients | seconds | values acknowledged | stored | lost | duplicated "
        "| runs finished | requests failed | retried | values/s | no loss, no failure |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        if row.skipped:
            lines.append(f"| {row.backend} | not run: {row.skipped} |" + " |" * 10)
            continue
        rate = row.stored / row.seconds
        cells = [
            row.backend, f"{row.clients}", f"{row.seconds:,.1f}", f"{row.acknowledged:,}",
            f"{row.stored:,}", f"{row.lost:,}", f"{row.duplicates:,}",
            f"{row.runs_finished} of {row.clients}", f"{row.requests_failed:,}",
            f"{row.retries:,}", f"{rate:,.0f}",
            "met" if row.met else "**MISSED**",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


METHOD = """\
One run on one machine: the ratios are the numbers to compare, not the absolute times, which \
depend on the machine and on what else it was doing. Both servers run as subprocesses on \
127.0.0.1 with a SQLite store in a fresh temporary folder: `loopml server --workers \
{workers}` and `mlflow server --backend-store-uri sqlite:///...` with its default workers \
(4) and artifact proxy. Each server is waited for until `/health` answers, gets one untimed \
warm-up run, and is stopped after its workload. The clients of (a) to (c) run in the \
benchmark's process. (a): the loopml SDK buffers metric values and sends them in batches, so \
its time stops only after `run.flush()` has sent every value and the server has answered; \
`mlflow.log_metric` sends one request per call; every value is read back from each server \
before the line counts. (b): the same MLflow client code, `mlflow.log_metric` in a loop, \
once with `MLFLOW_TRACKING_URI` at loopml server (which speaks MLflow's REST protocol) and \
once at mlflow server. (c): both stores hold the same {search_runs:,} runs (loopml filled \
through its SDK on the SQLite file before its server started, with typed params; MLflow \
through its own SQLAlchemy store and models in one transaction before its server started, \
with the same values as text); the search asks for every match (`max_results` and `limit` \
{search_runs:,}); median of {search_repeats} after one warm-up, and every answer must be the \
expected runs in the expected order, else the benchmark stops. (d): {clients} client \
processes (spawned), each with its own run through the loopml SDK to loopml server (on \
SQLite, then on PostgreSQL in a fresh schema dropped at the end), are \
released together and call `log_metric` as fast as they can for {client_seconds:g} s, then \
end their run (the final flush); a value counts as acknowledged when its call returned \
without error. The values stored are read back through the SDK (`metric_history`); lost \
means acknowledged but not stored, duplicated means a step stored twice. Requests failed \
counts the SDK calls that raised; retried counts requests the SDK sent again after a \
502/503/504 or a transport error, which it does for up to 60 s before a call fails. Values/s \
is values stored over the slowest client's time, its end included. The ratio is mlflow \
server's time over loopml server's for the same work."""


def markdown(info: dict[str, Any], settings: dict[str, Any], rows, writers_rows) -> str:
    search = next(row for row in rows if row.id == "c")
    missed = [row.id for row in rows if row.target and not row.target.met]
    missed += [f"d ({row.backend})" for row in writers_rows if not row.met]
    quick = settings["quick"]
    return "\n".join(
        [
            "# Tracking servers: loopml server vs mlflow server",
            "",
            f"One run, {info['date']}, {info['cpu_count']} CPUs ({info['cpu']}), "
            f"{info['memory_gib']:.0f} GiB, {info['platform']}, Python {info['python']}, "
            f"loopml {info['loopml']} ({describe_source(info)}), MLflow {info['mlflow']}, "
            f"uvicorn {info['uvicorn']}. The whole benchmark took "
            f"{settings['total_seconds']:,.0f} s; the 1-minute load average was "
            f"{info['load_average_start']:.1f} at its start and {info['load_average_end']:.1f} "
            "at its end. Ratios, not absolute times, are the point."
            + (
                " **A --quick run: every size a tenth, to check the script only.**" if quick else ""
            ),
            "",
            table(rows),
            "",
            f"Search (c): {search.notes['matches_returned']:,} of "
            f"{search.notes['runs_searched']:,} runs match `{SEARCH_FILTER_MLFLOW}` (loopml's "
            f"SDK: `{SEARCH_WHERE_LOOPML}`, sorted by `{SEARCH_SORT_LOOPML}`); every search "
            "returned them in the same order. Filling the stores took "
            f"{search.notes['loopml_populate_seconds']:,.1f} s for loopml (a run at a time "
            f"through its SDK) and {search.notes['mlflow_populate_seconds']:,.1f} s for MLflow "
            "(one bulk insert), not part of the search time.",
            "",
            f"## (d) {settings['clients']} concurrent writers, {settings['client_seconds']:g} s",
            "",
            writers_table(writers_rows),
            "",
            *writers_errors(writers_rows),
            "## Targets",
            "",
            ("Missed: " + ", ".join(missed) + "." if missed else "Every target was met.")
            + (" Sizes of a quick run; only the full run judges the targets." if quick else ""),
            "",
            "## Method",
            "",
            METHOD.format(workers=LOOPML_WORKERS, **settings),
            "",
            "Reproduce with `benchmarks/.venv/bin/python benchmarks/server.py` "
            "(see benchmarks/README.md).",
            "",
        ]
    )


def writers_errors(rows: list[WritersRow]) -> list[str]:
    """Markdown lines on what failed in (d), followed by a blank line; none if nothing did."""
    lines = []
    for row in rows:
        if row.errors:
            lines.append(f"First errors of the {row.backend} clients:")
            lines.extend(f"- `{error}`" for error in row.errors[:5])
        if row.server_errors_logged:
            lines.append(f"The {row.backend} server logged {row.server_errors_logged} errors.")
    return [*lines, ""] if lines else []


def describe_source(info: dict[str, Any]) -> str:
    if info["loopml_commit"] is None:
        return "not a git checkout"
    changes = ", with uncommitted changes in src/" if info["loopml_uncommitted_changes"] else ""
    return f"commit {info['loopml_commit']}{changes}"


def results(info, settings, rows: list[Row], writers_rows: list[WritersRow]) -> dict[str, Any]:
    targets = [row.target.met for row in rows if row.target] + [r.met for r in writers_rows]
    return {
        "machine": info,
        "settings": settings,
        "workloads": [row.to_dict() for row in rows],
        "writers": [row.to_dict() for row in writers_rows],
        "all_targets_met": all(targets),
    }


# --- main ------------------------------------------------------------------------------


def quiet_mlflow() -> None:
    """Keep MLflow's, its migrations' and the HTTP clients' logging out of the output (after
    MLflow's import, which sets its loggers' levels)."""
    import mlflow  # noqa: F401

    warnings.filterwarnings("ignore")
    for name in ("mlflow", "alembic", "sqlalchemy", "urllib3", "git", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run_all(folder: Path, sizes: Sizes) -> tuple[list[Row], list[WritersRow]]:
    rng = random.Random(SEED)
    values = metric_values(rng, sizes.values)
    calls = metric_values(rng, sizes.mlflow_calls)
    searched = search_data(rng, sizes.search_runs)
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("(a) loopml SDK vs MLflow client", lambda: bench_sdk(folder, values)),
        ("(b) the MLflow client against both", lambda: [bench_mlflow_client(folder, calls)]),
        ("(c) search", lambda: bench_search(folder, sizes, searched)),
        ("(d) concurrent writers", lambda: bench_writers(folder, sizes)),
    ]
    done: list[Any] = []
    for label, step in steps:
        print(f"{label} ...", end=" ", flush=True)
        started = time.perf_counter()
        done.extend(step())
        print(f"{time.perf_counter() - started:,.0f} s", flush=True)
    rows = [item for item in done if isinstance(item, Row)]
    return rows, [item for item in done if isinstance(item, WritersRow)]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tenth of every size (the clients of (d) log for 3 s), to check the script; "
        "writes no results unless --output",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help=f"folder for the results (default {RESULTS})"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    for name in [n for n in os.environ if n.startswith("LOOPML_") and "_BENCH_" not in n]:
        del os.environ[name]  # the stores are the benchmark's own, never the caller's
    sizes = Sizes().scaled(10) if args.quick else Sizes()
    output = args.output or (None if args.quick else RESULTS)
    quiet_mlflow()
    info = describe(("loopml", "mlflow", "uvicorn", "httpx"))
    info["load_average_start"] = os.getloadavg()[0]  # other work on the machine, if any
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="loopml-server-bench-") as folder:
        rows, writers_rows = run_all(Path(folder), sizes)
    settings = {**asdict(sizes), "seed": SEED, "quick": args.quick}
    settings["total_seconds"] = time.perf_counter() - started
    info["load_average_end"] = os.getloadavg()[0]
    print()
    print(table(rows))
    print()
    print(writers_table(writers_rows))
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        data = results(info, settings, rows, writers_rows)
        (output / "server.json").write_text(json.dumps(data, indent=2) + "\n")
        (output / "server.md").write_text(markdown(info, settings, rows, writers_rows))
        print(f"\nWrote {output / 'server.json'} and {output / 'server.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
