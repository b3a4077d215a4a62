"""Sweeps: search spaces checked with their line, Optuna trials as nested pipeline runs,
pruning that stops bad trials inside the step, and the best parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import loopml
from loopml.errors import ParameterError, SearchSpaceError, StepFailedError, UsageError
from loopml.pipeline import Pipeline, StepContext
from loopml.pipeline.pruning import MedianRule
from loopml.pipeline.space import load_space
from loopml.pipeline.sweep import sweep


def data(rows: int = 50) -> np.ndarray:
    return np.linspace(0, 1, rows)


def score(
    data: np.ndarray, context: StepContext, x: float = 0.0, depth: int = 3, kind: str = "a"
) -> float:
    """Best at x=0.3, depth=5, kind=b; reports a rising curve that ends at the value."""
    value = -((x - 0.3) ** 2) - 0.01 * abs(depth - 5) + (0.05 if kind == "b" else 0.0)
    for stage in range(4):
        if context.report(value - (3 - stage) * 0.1, stage):
            return value
    context.log_metric("val", value)
    return value


TUNE = Pipeline([data, score], name="tune")
SPACE = {
    "x": {"type": "float", "low": -1, "high": 1},
    "depth": {"type": "int", "low": 1, "high": 9},
    "kind": ["a", "b"],
}


def test_a_sweep_nests_every_trial_under_its_run(sqlite_workspace) -> None:
    result = sweep(TUNE, SPACE, metric="val", trials=12, seed=3)
    assert len(result.trials) == 12
    record = loopml.get_run(result.run_id)
    assert record.tags["loopml.kind"] == "sweep" and record.params["metric"] == "val"
    children = loopml.child_runs(result.run_id)
    assert len(children) == 12 and all(c.tags["loopml.kind"] == "pipeline" for c in children)
    best = result.best
    complete = [t for t in result.trials if t.state == "complete"]
    assert best.value == max(t.value for t in complete)
    assert record.metrics["best.val"] == best.value
    assert record.tags["loopml.best_run"] == best.run_id
    assert loopml.get_run(best.run_id).params["x"] == best.params["x"]


def test_shared_steps_come_from_the_cache_after_the_first_trial(sqlite_workspace) -> None:
    result = sweep(TUNE, SPACE, metric="val", trials=5, seed=1, prune=False)
    data_statuses = [
        next(c for c in loopml.child_runs(t.run_id) if c.name == "data").tags["loopml.cache"]
        for t in sorted(result.trials, key=lambda t: t.number)
    ]
    assert data_statuses[0] == "miss" and set(data_statuses[1:]) == {"hit"}


def test_bad_trials_are_pruned_after_the_startup_trials(sqlite_workspace) -> None:
    result = sweep(TUNE, SPACE, metric="val", trials=30, seed=0)
    states = result.to_dict()["states"]
    assert states["pruned"] > 0 and states["complete"] >= 5
    pruned = next(t for t in result.trials if t.state == "pruned")
    assert loopml.get_run(pruned.run_id).tags["loopml.pruned"] == "score"
    assert (
        sweep(TUNE, SPACE, metric="val", trials=8, seed=0, prune=False).to_dict()["states"][
            "pruned"
        ]
        == 0
    )


def test_the_median_rule_follows_the_direction() -> None:
    rule = MedianRule(maximize=True, medians={0: 0.5, 1: 0.6}, warmup_steps=1)
    assert not rule([(0, 0.1)])  # still warming up
    assert rule([(0, 0.1), (1, 0.2)])
    assert not rule([(0, 0.1), (1, 0.7)])
    assert not rule([(0, 0.1), (2, 0.0)])  # no median known at step 2
    lower = MedianRule(maximize=False, medians={0: 0.5})
    assert lower([(0, 0.9)]) and not lower([(0, 0.1)])


def test_the_best_parameters_rerun_with_one_command(sqlite_workspace) -> None:
    result = sweep(TUNE, SPACE, metric="val", trials=6, seed=2, params={"rows": 20})
    result.ref = "tests_module:TUNE"
    command = result.command()
    assert command.startswith("loopml run tests_module:TUNE --param rows=20 --param x=")
    assert f"--param depth={result.best.params['depth']}" in command


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(sqlite_workspace) -> None:
    def fragile(data: np.ndarray, context: StepContext, x: float = 0.0) -> float:
        if x > 0:
            raise ValueError("x must not be positive")
        context.log_metric("val", x)
        return x

    result = sweep(
        Pipeline([data, fragile]),
        {"x": {"type": "float", "low": -1, "high": 1}},
        metric="val",
        trials=10,
        seed=4,
    )
    failed = [t for t in result.trials if t.state == "failed"]
    assert failed and "x must not be positive" in failed[0].message
    assert result.best.value <= 0


def test_a_metric_no_step_logs_fails_every_trial(sqlite_workspace) -> None:
    with pytest.raises(StepFailedError, match="logged no metric 'auc'") as caught:
        sweep(TUNE, SPACE, metric="auc", trials=2, seed=0)
    assert "it logged: val" in str(caught.value)


def test_parameters_are_checked_before_any_trial(sqlite_workspace) -> None:
    with pytest.raises(ParameterError, match="both fixed"):
        sweep(TUNE, SPACE, metric="val", params={"x": 0.1})
    with pytest.raises(ParameterError, match="no parameter 'rowz'"):
        sweep(TUNE, SPACE, metric="val", params={"rowz": 3})
    with pytest.raises(UsageError, match="max or min"):
        sweep(TUNE, SPACE, metric="val", direction="up")
    with pytest.raises(UsageError, match="trials must be a whole number"):
        sweep(TUNE, SPACE, metric="val", trials=0)
    assert loopml.search_runs() == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("x: {type: float, low: 1, high: 0.5}\n", "x (line 1): low (1.0) must be below high"),
        ("rows: 3\nx: {type: float, low: 0, high: 1, log: true}\n", "line 2"),
        ("x: {type: float, low: 0, high: 1, log: true}\n", "a log scale needs low above 0"),
        ("depth: {type: int, low: 1, high: 9, step: 2, log: true}\n", "cannot have a step"),
        ("kind: {type: categorical, choices: []}\n", "at least 1 item"),
        ("kind: [a, a]\n", "choices must be distinct"),
        ("x: {type: normal, low: 0, high: 1}\n", "does not match any of the expected tags"),
        ("x: {type: float, low: 0, high: 1, scale: 3}\n", "Extra inputs"),
        ("\ndepht: {type: int, low: 1, high: 3}\n", "line 2) names 'depht'"),
        ("depth: {type: float, low: 1, high: 3}\n", "declares depth: int"),
        ("x: [1, 2\n", "is not valid YAML"),
        ("- x\n", "must map parameter names to ranges"),
    ],
)
def test_invalid_spaces_say_where(text: str, fragment: str) -> None:
    with pytest.raises(SearchSpaceError) as caught:
        load_space(text if "\n" in text else text + "\n", TUNE)
    assert fragment in str(caught.value)


def test_a_space_file_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(SearchSpaceError, match="Cannot read the search space 'nope.yaml'"):
        load_space("nope.yaml", TUNE)
    (tmp_path / "space.yaml").write_text("depth: {type: int, low: 2, high: 4}\n")
    assert list(load_space(tmp_path / "space.yaml", TUNE).root) == ["depth"]


def test_did_you_mean_in_space_errors() -> None:
    with pytest.raises(SearchSpaceError, match="Did you mean 'depth'"):
        load_space({"depht": [1, 2]}, TUNE)


@pytest.mark.slow
def test_trials_run_side_by_side_on_a_process_pool(sqlite_workspace) -> None:
    result = sweep(TUNE, SPACE, metric="val", trials=6, parallel=2, executor="process:2", seed=5)
    assert len(result.trials) == 6 and result.best is not None
    assert loopml.get_run(result.run_id).tags["loopml.executor"] == "process"
