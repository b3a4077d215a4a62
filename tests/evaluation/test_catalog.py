"""The metric catalog: every metric's direction, users' metrics registered by name and
computed in the same paired bootstrap as the built-in ones, and metrics registered by the
modules a setting names."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

import loopml
from loopml.errors import ConfigError, UsageError
from loopml.evaluation import evaluate
from loopml.evaluation.catalog import find_metric, get_metric, higher_is_better, metric_names


@pytest.fixture
def regression_frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    y = rng.normal(100, 20, 2000)
    return pd.DataFrame(
        {"y": y, "good": y + rng.normal(0, 5, 2000), "poor": y + rng.normal(0, 15, 2000)}
    )


@pytest.fixture
def within_ten():
    def share(y, score, weight):
        return np.sum(weight * (np.abs(score - y) <= 10)) / np.sum(weight)

    loopml.register_metric("within_10", share, task="regression", higher_is_better=True)
    yield share
    loopml.unregister_metric("within_10")


def test_every_builtin_metric_knows_its_direction() -> None:
    assert not higher_is_better("mae") and not higher_is_better("log_loss")
    assert higher_is_better("roc_auc") and higher_is_better("r2")
    assert set(metric_names("regression")) == {"mae", "rmse", "r2", "mape"}
    assert "ece" in metric_names("classification")


def test_a_registered_metric_is_computed_with_a_paired_interval(regression_frame, within_ten):
    found = evaluate(
        "good", regression_frame, target="y", baselines={"poor": "poor"}, resamples=200
    )
    share = float(np.mean(np.abs(regression_frame.good - regression_frame.y) <= 10))
    estimate = found.metrics["within_10"]
    assert estimate.value == pytest.approx(share)
    assert estimate.low < share < estimate.high
    assert found.differences["poor"]["within_10"].low > 0  # paired: good beats poor
    assert found.metrics["mae"].value == pytest.approx(
        np.mean(np.abs(regression_frame.good - regression_frame.y))
    )


def test_a_vectorised_metric_gives_the_same_values_as_a_plain_one(regression_frame):
    def plain(y, score, weight):
        return np.sum(weight * (score - y)) / np.sum(weight)

    def block(y, score, weights):
        return weights @ (score - y) / weights.sum(axis=1)

    loopml.register_metric("bias_plain", plain, task="regression", higher_is_better=False)
    loopml.register_metric(
        "bias_block", block, task="regression", higher_is_better=False, vectorised=True
    )
    try:
        found = evaluate("good", regression_frame, target="y", resamples=50)
        assert found.metrics["bias_plain"].low == pytest.approx(found.metrics["bias_block"].low)
        assert found.metrics["bias_plain"].high == pytest.approx(found.metrics["bias_block"].high)
    finally:
        loopml.unregister_metric("bias_plain")
        loopml.unregister_metric("bias_block")


def test_a_metric_that_gives_the_wrong_shape_is_explained(regression_frame):
    loopml.register_metric(
        "broken",
        lambda y, s, w: [1.0, 2.0],
        task="regression",
        higher_is_better=True,
        vectorised=True,
    )
    try:
        with pytest.raises(UsageError, match="gave 2 values for"):
            evaluate("good", regression_frame, target="y", resamples=20)
    finally:
        loopml.unregister_metric("broken")


def test_names_are_checked(within_ten) -> None:
    with pytest.raises(UsageError, match="is a built-in metric"):
        loopml.register_metric("mae", within_ten, task="regression", higher_is_better=False)
    with pytest.raises(UsageError, match="registered already.*replace=True"):
        loopml.register_metric("within_10", within_ten, task="regression", higher_is_better=True)
    with pytest.raises(UsageError, match="starts with a letter"):
        loopml.register_metric("10 within", within_ten, task="regression", higher_is_better=True)
    with pytest.raises(UsageError, match="Did you mean mae.*register_metric"):
        get_metric("maee")


def test_the_metric_modules_setting_registers_metrics_in_any_process(tmp_path, monkeypatch):
    (tmp_path / "house_metrics.py").write_text(
        "import numpy as np\nimport loopml\n"
        "loopml.register_metric('house_loss', lambda y, s, w: float(np.sum(w * (s - y) ** 4)"
        " / np.sum(w)), task='regression', higher_is_better=False)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("LOOPML_METRIC_MODULES", "house_metrics")
    try:
        assert find_metric("house_loss") is not None
        assert not higher_is_better("house_loss")
    finally:
        loopml.unregister_metric("house_loss")
        sys.modules.pop("house_metrics", None)
    monkeypatch.setenv("LOOPML_METRIC_MODULES", "no_such_metrics_module")
    with pytest.raises(ConfigError, match="no_such_metrics_module"):
        find_metric("anything_unknown")
