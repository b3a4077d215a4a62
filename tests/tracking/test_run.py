"""Runs as a user sees them: status, params, metrics, tags, nesting and context isolation."""

from __future__ import annotations

import threading
import time

import pytest

import loopml
from loopml.errors import InvalidMetricError, InvalidValueError, ParamConflictError, RunStateError
from loopml.workspace import Workspace


def test_a_run_records_what_it_was_given(workspace: Workspace) -> None:
    with loopml.start_run(
        experiment="flights", name="first", params={"lr": 0.1}, seed=7, tags={"team": "ops"}
    ) as run:
        run.log_metric("loss", 0.31, step=1)
        run.log_metrics({"auc": 0.71, "brier": 0.16})
        run.set_tags({"stage": "dev"})
    record = loopml.get_run(run.id)
    assert (record.experiment, record.name, record.status, record.seed) == (
        "flights",
        "first",
        "finished",
        7,
    )
    assert record.params == {"lr": 0.1}
    assert record.metrics == {"loss": 0.31, "auc": 0.71, "brier": 0.16}
    assert record.tags == {"team": "ops", "stage": "dev"}
    assert record.end_time is not None and record.end_time >= record.start_time


def test_an_exception_marks_the_run_failed_and_propagates(workspace: Workspace) -> None:
    with pytest.raises(ZeroDivisionError), loopml.start_run(experiment="e") as run:
        run.log_metric("before", 1.0)
        _ = 1 / 0
    record = loopml.get_run(run.id)
    assert record.status == "failed"
    assert "ZeroDivisionError: division by zero" in record.error
    assert record.metrics == {"before": 1.0}  # values logged before the error are kept


def test_ctrl_c_marks_the_run_killed(workspace: Workspace) -> None:
    with pytest.raises(KeyboardInterrupt), loopml.start_run(experiment="e") as run:
        raise KeyboardInterrupt
    assert loopml.get_run(run.id).status == "killed"


def test_sys_exit_zero_is_a_normal_end(workspace: Workspace) -> None:
    with pytest.raises(SystemExit), loopml.start_run(experiment="e") as run:
        raise SystemExit(0)
    assert loopml.get_run(run.id).status == "finished"


def test_steps_count_up_per_key_by_default(workspace: Workspace) -> None:
    with loopml.start_run(experiment="e") as run:
        for value in (3.0, 2.0, 1.0):
            run.log_metric("loss", value)
        run.log_metric("loss", 0.5, step=10)
        run.log_metric("loss", 0.4)
    history = loopml.metric_history(run.id, "loss")
    assert [(p.step, p.value) for p in history] == [
        (0, 3.0),
        (1, 2.0),
        (2, 1.0),
        (10, 0.5),
        (11, 0.4),
    ]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), "high", None, [1]])
def test_non_finite_or_non_numeric_metrics_are_refused(workspace: Workspace, bad: object) -> None:
    with loopml.start_run(experiment="e") as run:
        with pytest.raises(InvalidMetricError, match="'loss'"):
            run.log_metric("loss", bad)
        run.log_metric("loss", 1.0)
    assert [p.value for p in loopml.metric_history(run.id, "loss")] == [1.0]


@pytest.mark.parametrize(
    ("key", "step"), [("", None), (3, None), ("x" * 256, None), ("k", 1.5), ("k", "2")]
)
def test_bad_metric_keys_and_steps_are_refused(
    workspace: Workspace, key: object, step: object
) -> None:
    with loopml.start_run(experiment="e") as run, pytest.raises(InvalidMetricError):
        run.log_metric(key, 1.0, step=step)


def test_timestamps_must_be_epoch_seconds(workspace: Workspace) -> None:
    with loopml.start_run(experiment="e") as run:
        run.log_metric("x", 1.0, timestamp=1_700_000_000)
        with pytest.raises(InvalidMetricError, match="timestamp of metric 'x'"):
            run.log_metric("x", 2.0, timestamp="yesterday")
        run.log_metric("x", 3.0)
    history = loopml.metric_history(run.id, "x")
    assert next((p.step, p.timestamp) for p in history) == (0, 1_700_000_000.0)
    assert [p.step for p in history] == [0, 1]  # the refused value took no step


def test_a_param_logged_twice_must_keep_its_value(workspace: Workspace) -> None:
    with loopml.start_run(experiment="e", params={"lr": 0.1}) as run:
        run.log_param("lr", 0.1)
        with pytest.raises(ParamConflictError, match="'lr'.*already 0.1.*cannot change to 0.2"):
            run.log_param("lr", 0.2)
    assert loopml.get_run(run.id).params == {"lr": 0.1}


def test_bad_param_keys_are_refused(workspace: Workspace) -> None:
    with (
        loopml.start_run(experiment="e") as run,
        pytest.raises(InvalidValueError, match="Param keys"),
    ):
        run.log_params({"": 1})


def test_an_ended_run_refuses_new_values_but_takes_tags(workspace: Workspace) -> None:
    with loopml.start_run(experiment="e") as run:
        pass
    with pytest.raises(RunStateError, match="has ended"):
        run.log_metric("late", 1.0)
    with pytest.raises(RunStateError, match="has ended"):
        run.log_param("late", 1)
    run.set_tag("reviewed", "yes")
    assert loopml.get_run(run.id).tags == {"reviewed": "yes"}


def test_runs_nest_under_the_active_run(workspace: Workspace) -> None:
    with loopml.start_run(experiment="sweep") as parent:
        assert loopml.active_run() is parent
        for trial in range(3):
            with loopml.start_run(name=f"trial-{trial}", params={"trial": trial}) as child:
                assert loopml.active_run() is child
        with loopml.start_run(experiment="other", parent=None) as top:
            pass
        assert loopml.active_run() is parent
    assert loopml.active_run() is None
    children = loopml.child_runs(parent.id)
    assert [c.name for c in children] == ["trial-0", "trial-1", "trial-2"]
    assert {c.experiment for c in children} == {"sweep"}
    assert loopml.get_run(top.id).parent_id is None
    assert [r.name for r in loopml.search_runs(parent=parent.id, sort="params.trial")] == [
        "trial-0",
        "trial-1",
        "trial-2",
    ]


def test_a_parent_can_be_given_by_id(workspace: Workspace) -> None:
    with loopml.start_run(experiment="e") as parent:
        pass
    with loopml.start_run(parent=parent.id[:6]) as child:
        pass
    assert loopml.get_run(child.id).parent_id == parent.id


def test_each_thread_has_its_own_active_run(workspace: Workspace) -> None:
    seen: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def work(name: str) -> None:
        seen[f"{name}-before"] = loopml.active_run()
        with loopml.start_run(experiment="threads", name=name, workspace=workspace) as run:
            barrier.wait()
            seen[name] = loopml.active_run() is run
            run.log_metric("value", 1.0)
            barrier.wait()

    with loopml.start_run(experiment="main"):
        threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert seen == {"a-before": None, "b-before": None, "a": True, "b": True}
    records = loopml.search_runs("threads")
    assert {r.parent_id for r in records} == {None}


def test_metrics_reach_the_store_while_the_run_is_live(workspace: Workspace) -> None:
    other_process_view = Workspace(workspace.settings)  # its own connections
    with loopml.start_run(experiment="e") as run:
        run.log_metric("loss", 0.5)
        deadline = time.monotonic() + 5.0  # generous: the flusher writes every second
        while "loss" not in loopml.get_run(run.id, workspace=other_process_view).metrics:
            assert time.monotonic() < deadline, "the background thread never wrote the value"
            time.sleep(0.05)
    other_process_view.close()


def test_a_full_buffer_is_written_by_the_logging_thread(new_workspace) -> None:
    ws = new_workspace(metric_buffer_limit=100, metric_flush_interval=60)
    with loopml.start_run(experiment="e", workspace=ws) as run:
        for step in range(250):
            run.log_metric("x", float(step))
        assert loopml.metric_summaries(run.id, workspace=ws)[0].count == 200
    assert loopml.metric_summaries(run.id, workspace=ws)[0].count == 250


def test_seed_must_be_an_integer(workspace: Workspace) -> None:
    with pytest.raises(loopml.LoopmlError, match="seed must be an integer"):
        loopml.start_run(experiment="e", seed=1.5)


@pytest.mark.parametrize(
    ("key", "value", "step"),
    [("big-step", 1.0, 2**63), ("huge", 10**400, None), ("nul\x00key", 1.0, None)],
)
def test_a_bad_value_is_refused_and_never_spoils_the_batch(
    workspace: Workspace, key: str, value: object, step: object
) -> None:
    with loopml.start_run(experiment="e") as run:
        run.log_metric("good", 1.0)
        with pytest.raises(InvalidMetricError):
            run.log_metric(key, value, step=step)
        run.log_metric("good", 2.0)
    assert [p.value for p in loopml.metric_history(run.id, "good")] == [1.0, 2.0]


@pytest.mark.parametrize(
    "arguments",
    [
        {"params": {"": 1}},
        {"tags": {"k" * 300: "v"}},
        {"tags": {"k": "a\x00b"}},
        {"params": {"k": "a\x00b"}},
        {"name": "n" * 300},
        {"experiment": "e" * 300},
        {"seed": 2**64},
    ],
)
def test_start_run_refuses_what_a_backend_could_not_store(
    workspace: Workspace, arguments: dict
) -> None:
    with pytest.raises(loopml.LoopmlError):
        loopml.start_run(**{"experiment": "e", **arguments})
    assert loopml.search_runs() == []


def test_params_are_stored_as_plain_values(workspace: Workspace) -> None:
    import numpy as np

    values = {"grid": [np.int64(3), np.float32(0.5)], "mixed": {1: "a", "b": 2}, "n": np.int8(4)}
    with loopml.start_run(experiment="e", params=values) as run:
        pass
    assert loopml.get_run(run.id).params == {"grid": [3, 0.5], "mixed": {"1": "a", "b": 2}, "n": 4}


def test_a_failed_flush_at_the_end_keeps_the_run_open(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopml.errors import StoreUnavailableError

    run = loopml.start_run(experiment="e")
    run.log_metric("loss", 0.5)
    real_perform = type(workspace.metadata).perform

    def failing_perform(self, operation, arguments):
        raise StoreUnavailableError("The metadata store is down.")

    monkeypatch.setattr(type(workspace.metadata), "perform", failing_perform)
    with pytest.raises(StoreUnavailableError):
        run.end()
    monkeypatch.setattr(type(workspace.metadata), "perform", real_perform)
    assert loopml.get_run(run.id).status == "running"
    run.log_metric("loss", 0.4)  # still open
    run.end()
    record = loopml.get_run(run.id)
    assert record.status == "finished"
    assert [p.value for p in loopml.metric_history(run.id, "loss")] == [0.5, 0.4]


def test_a_failing_store_gets_a_bounded_backlog_not_an_exception_per_call(
    new_workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopml.errors import StoreUnavailableError

    ws = new_workspace(metric_buffer_limit=10, metric_flush_interval=60)
    run = loopml.start_run(experiment="e", workspace=ws)
    real_perform = type(ws.metadata).perform

    def failing_perform(self, operation, arguments):
        raise StoreUnavailableError("The metadata store is down.")

    monkeypatch.setattr(type(ws.metadata), "perform", failing_perform)
    for step in range(100):  # ten times the limit is kept without complaint
        run.log_metric("x", float(step))
    with pytest.raises(StoreUnavailableError, match="this value was not recorded"):
        run.log_metric("x", 100.0)
    monkeypatch.setattr(type(ws.metadata), "perform", real_perform)
    run.end()
    history = loopml.metric_history(run.id, "x", workspace=ws)
    assert [p.value for p in history] == [float(step) for step in range(100)]


def test_values_logged_while_another_thread_ends_the_run_are_kept(
    sqlite_workspace: Workspace,
) -> None:
    for _ in range(5):
        run = loopml.start_run(experiment="race", parent=None)
        accepted = []

        def log(run=run, accepted=accepted) -> None:
            for step in range(100_000):
                try:
                    run.log_metric("x", float(step))
                except RunStateError:
                    return
                accepted.append(step)

        thread = threading.Thread(target=log)
        thread.start()
        time.sleep(0.01)
        run.end()
        thread.join()
        stored = loopml.metric_summaries(run.id)
        assert (stored[0].count if stored else 0) == len(accepted)


def test_runs_nest_only_within_their_workspace(workspace: Workspace, new_workspace) -> None:
    other = new_workspace()
    with loopml.start_run(experiment="e") as parent:
        with loopml.start_run(experiment="e", workspace=other) as elsewhere:
            pass
        with loopml.use_workspace(other), loopml.start_run(experiment="e") as inside:
            pass
        with pytest.raises(loopml.LoopmlError, match="another workspace"):
            loopml.start_run(experiment="e", workspace=other, parent=parent)
    assert loopml.get_run(elsewhere.id, workspace=other).parent_id is None
    assert loopml.get_run(inside.id, workspace=other).parent_id is None
    assert loopml.search_runs(workspace=workspace) == [loopml.get_run(parent.id)]
