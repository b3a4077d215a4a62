"""One conformance suite for every executor: inline, a local process pool, and a real Dask
LocalCluster. A new executor is done when it passes these."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pandas as pd
import pytest

import loopml
from loopml.data.snapshots import Snapshot
from loopml.errors import ExecutorError, StepFailedError, UsageError
from loopml.pipeline import (
    DaskExecutor,
    Executor,
    InlineExecutor,
    Pipeline,
    ProcessExecutor,
    StepContext,
    executor_from,
    step,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["inline", "process", "dask"])
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    """Each executor, shared by the tests of this module (starting workers takes seconds)."""
    made = {
        "inline": InlineExecutor,
        "process": lambda: ProcessExecutor(2),
        "dask": lambda: DaskExecutor(workers=2),
    }[request.param]()
    yield made
    made.shutdown()


def square(value: int) -> int:
    return value * value


def fail(message: str) -> None:
    raise ValueError(message)


def test_submit_returns_results_and_errors(executor: Executor) -> None:
    assert executor.submit(square, 7).result() == 49
    with pytest.raises(ValueError, match="bad input"):
        executor.submit(fail, "bad input").result()
    assert isinstance(executor, Executor)


def source(rows: int = 6) -> pd.DataFrame:
    return pd.DataFrame({"x": range(rows)})


def left(source: pd.DataFrame) -> tuple:
    start = time.time()
    time.sleep(0.4)
    return start, time.time(), float(source.x.sum())


def right(source: pd.DataFrame) -> tuple:
    start = time.time()
    time.sleep(0.4)
    return start, time.time(), float(source.x.max())


def joined(left: tuple, right: tuple, context: StepContext) -> float:
    context.log_metric("joined", left[2] + right[2])
    context.set_tag("where", "worker")
    return left[2] + right[2]


DIAMOND = Pipeline([source, left, right, joined], name="diamond")


def test_a_pipeline_gives_the_same_results_and_records(
    executor: Executor, sqlite_workspace
) -> None:
    result = DIAMOND.run(executor=executor)
    assert result["joined"] == 20.0
    record = loopml.get_run(result.run_id)
    assert record.metrics["joined"] == 20.0
    assert record.tags["loopml.executor"] == executor.name
    child = loopml.child_runs(result.run_id)[-1]
    assert child.name == "joined" and child.tags["where"] == "worker"
    assert DIAMOND.run(executor=executor).cached == ["source", "left", "right", "joined"]


def test_independent_steps_run_in_parallel(executor: Executor, sqlite_workspace) -> None:
    result = DIAMOND.run(executor=executor, cache=False)
    (a_start, a_end, _), (b_start, b_end, _) = result["left"], result["right"]
    overlap = min(a_end, b_end) - max(a_start, b_start)
    if executor.workers > 1:
        assert overlap > 0
    else:
        assert overlap <= 0


def test_a_failure_carries_its_traceback(executor: Executor, sqlite_workspace) -> None:
    def broken(source: pd.DataFrame) -> int:
        raise KeyError("missing column")

    with pytest.raises(StepFailedError, match="KeyError: 'missing column'") as caught:
        Pipeline([source, broken]).run(executor=executor)
    child = next(c for c in loopml.child_runs(caught.value.run_id) if c.name == "broken")
    assert 'raise KeyError("missing column")' in child.error


def test_an_output_that_cannot_be_pickled_is_explained(
    executor: Executor, sqlite_workspace
) -> None:
    def opened(source: pd.DataFrame):
        return open(__file__)

    with pytest.raises(StepFailedError, match="cannot be pickled") as caught:
        Pipeline([source, opened]).run(executor=executor)
    assert "sent between worker processes" in str(caught.value.result.step("opened").message)


def test_retries_and_wrong_types_behave_alike(executor: Executor, sqlite_workspace) -> None:
    @step(retries=2, backoff=0)
    def flaky(source: pd.DataFrame, context: StepContext) -> int:
        if context.attempt < 2:
            raise ConnectionError("again")
        return context.attempt

    assert Pipeline([source, flaky]).run(executor=executor)["flaky"] == 2

    def typed(source: pd.DataFrame) -> str:
        return 5

    with pytest.raises(StepFailedError, match="declares it returns typed: str"):
        Pipeline([source, typed]).run(executor=executor)


def test_snapshots_reach_workers(executor: Executor, sqlite_workspace) -> None:
    loopml.data.add("numbers", pd.DataFrame({"x": [1, 2, 3]}))

    def total(numbers: Snapshot) -> int:
        return int(numbers.to_pandas().x.sum())

    assert Pipeline([total], params={"numbers": "numbers"}).run(executor=executor)["total"] == 6


def test_executor_specs() -> None:
    made, owned = executor_from("inline")
    assert isinstance(made, InlineExecutor) and owned
    given = InlineExecutor()
    assert executor_from(given) == (given, False)
    with pytest.raises(UsageError, match="Unknown executor 'threads'"):
        executor_from("threads")
    with pytest.raises(UsageError, match="at least 1"):
        executor_from("process:0")


def test_the_executor_setting_is_used(new_workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = new_workspace(executor="process:2")
    with loopml.use_workspace(ws):
        result = DIAMOND.run()
    assert loopml.get_run(result.run_id, workspace=ws).tags["loopml.executor"] == "process"


def test_an_unreachable_dask_scheduler_is_a_clear_error() -> None:
    with pytest.raises(
        ExecutorError, match=r"Cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"
    ):
        DaskExecutor("tcp://127.0.0.1:9", timeout=1)


def test_a_dask_scheduler_address_from_the_settings(new_workspace) -> None:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        host="127.0.0.1",
    ) as cluster:
        address = cluster.scheduler_address.replace("tcp://", "dask://")
        ws = new_workspace(executor=address)
        with loopml.use_workspace(ws):
            result = DIAMOND.run()
        assert result["joined"] == 20.0
        assert loopml.get_run(result.run_id, workspace=ws).tags["loopml.executor"] == "dask"
