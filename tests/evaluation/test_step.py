"""The ready-made evaluation step: wired by output names, logs intervals, returns the
Evaluation, cached like any step."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.evaluation import Evaluation, evaluation_step
from loopml.pipeline import Pipeline, step


def rows(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=1500), "group": rng.choice(["x", "y"], 1500)})
    frame["late"] = frame["a"] + rng.normal(size=1500) > 0
    return frame


def model(train: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression().fit(train[["a"]], train["late"])


def prior(train: pd.DataFrame) -> DummyClassifier:
    return DummyClassifier().fit(train[["a"]], train["late"])


@step(outputs=("train", "valid"))
def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return frame.iloc[:1000], frame.iloc[1000:]


def source(seed: int = 0) -> pd.DataFrame:
    return rows(seed)


def pipeline(**options) -> Pipeline:
    evaluate = evaluation_step(
        target="late",
        data="valid",
        baselines={"prior": "prior"},
        slices=["group"],
        resamples=100,
        **options,
    )
    return Pipeline([step(source, outputs="frame"), split, model, prior, evaluate])


@pytest.mark.parametrize("executor", ["inline", pytest.param("process:2", marks=pytest.mark.slow)])
def test_the_step_evaluates_and_logs_intervals(sqlite_workspace, executor: str) -> None:
    result = pipeline().run(executor=executor)
    found = result["evaluation"]
    assert isinstance(found, Evaluation) and found.target == "late"
    assert [s.value for s in found.slices] and "prior" in found.differences
    metrics = loopml.get_run(result.run_id).metrics
    auc = found.metrics["roc_auc"]
    assert metrics["val_roc_auc"] == auc.value
    assert metrics["val_roc_auc_low"] == auc.low and metrics["val_roc_auc_high"] == auc.high
    assert metrics["val_roc_auc_vs_prior_low"] > 0
    assert "val_precision_vs_prior" not in metrics  # undefined for the prior: left out


def test_the_step_is_cached_and_its_settings_are_part_of_the_key(sqlite_workspace) -> None:
    pipeline().run()
    assert "evaluation" in pipeline().run().cached
    assert "evaluation" not in pipeline(prefix="march").run().cached


def test_a_registered_model_takes_the_steps_evaluation_to_its_card(sqlite_workspace) -> None:
    result = pipeline().run()
    record = loopml.models.register("late", run=result.run_id)
    assert "| roc_auc |" in loopml.models.read_card(record.ref)
