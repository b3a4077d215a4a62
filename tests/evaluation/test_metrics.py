"""Metrics under weights agree with scikit-learn, ties and all; Poisson weights are Poisson."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk

from loopml.evaluation import bootstrap
from loopml.evaluation.metrics import (
    RankedScores,
    classification_sums,
    classification_values,
    regression_sums,
    regression_values,
)


@st.composite
def labelled_scores(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(4, 60))
    labels = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    labels[0], labels[1] = True, False  # both classes
    grid = draw(st.sampled_from([4, 20, 10_000]))  # coarse grids make many ties
    scores = np.array(draw(st.lists(st.integers(0, grid), min_size=n, max_size=n))) / grid
    weights = np.array(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), dtype=np.uint8)
    weights[0] = weights[1] = 1
    return labels, scores, weights


@settings(max_examples=200, deadline=None)
@given(labelled_scores())
def test_weighted_auc_equals_scikit_learn(case) -> None:
    labels, scores, weights = case
    found = RankedScores(labels, scores).auc(weights[None, :])[0]
    assert found == pytest.approx(
        sk.roc_auc_score(labels, scores, sample_weight=weights), abs=1e-12
    )


@settings(max_examples=100, deadline=None)
@given(labelled_scores())
def test_weighted_classification_metrics_equal_scikit_learn(case) -> None:
    labels, scores, weights = case
    found = classification_values(classification_sums(labels, scores, 0.5).of(weights[None, :]))
    chosen = scores >= 0.5
    w = weights.astype(float)
    assert found["accuracy"][0] == pytest.approx(sk.accuracy_score(labels, chosen, sample_weight=w))
    assert found["brier"][0] == pytest.approx(sk.brier_score_loss(labels, scores, sample_weight=w))
    assert found["log_loss"][0] == pytest.approx(
        sk.log_loss(labels, scores, sample_weight=w), rel=1e-9
    )
    if (w * chosen).sum() > 0:
        assert found["precision"][0] == pytest.approx(
            sk.precision_score(labels, chosen, sample_weight=w, zero_division=0)
        )
    assert found["recall"][0] == pytest.approx(sk.recall_score(labels, chosen, sample_weight=w))
    assert found["f1"][0] == pytest.approx(
        sk.f1_score(labels, chosen, sample_weight=w, zero_division=0)
    )


def test_expected_calibration_error_by_hand() -> None:
    labels = np.array([1, 0, 1, 1, 0, 0], dtype=bool)
    scores = np.array([0.05, 0.05, 0.55, 0.58, 0.95, 0.99])
    found = classification_values(classification_sums(labels, scores, 0.5).of(np.ones((1, 6))))
    # bins: [0, .1): p .10 vs y 1; [.5, .6): p 1.13 vs y 2; [.9, 1]: p 1.94 vs y 0
    assert found["ece"][0] == pytest.approx((0.9 + 0.87 + 1.94) / 6)


def test_regression_metrics_equal_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    target = 1e6 + rng.normal(size=500)  # far from zero: R² must not cancel
    prediction = target + rng.normal(scale=0.5, size=500)
    weights = rng.poisson(1.0, size=500).astype(np.uint8)
    found = regression_values(regression_sums(target, prediction).of(weights[None, :]))
    w = weights.astype(float)
    assert found["mae"][0] == pytest.approx(
        sk.mean_absolute_error(target, prediction, sample_weight=w)
    )
    assert found["rmse"][0] == pytest.approx(
        math.sqrt(sk.mean_squared_error(target, prediction, sample_weight=w))
    )
    assert found["r2"][0] == pytest.approx(
        sk.r2_score(target, prediction, sample_weight=w), rel=1e-9
    )
    assert found["mape"][0] == pytest.approx(
        sk.mean_absolute_percentage_error(target, prediction, sample_weight=w)
    )


def test_poisson_weights_follow_poisson_one() -> None:
    drawn = np.concatenate([w.ravel() for w in bootstrap.weights(11, 50_000, 16)])
    counts = np.bincount(drawn, minlength=8)[:8] / len(drawn)
    expected = [math.exp(-1) / math.factorial(k) for k in range(8)]
    assert counts == pytest.approx(expected, abs=0.002)
    assert drawn.mean() == pytest.approx(1.0, abs=0.005)


def test_weights_depend_only_on_the_seed_and_are_cut_in_chunks() -> None:
    whole = np.vstack(list(bootstrap.weights(5, 1000, 20, chunk=20)))
    pieces = np.vstack(list(bootstrap.weights(5, 1000, 20, chunk=8)))
    assert whole.shape == (20, 1000)
    np.testing.assert_array_equal(whole, pieces)
    assert not np.array_equal(whole, np.vstack(list(bootstrap.weights(6, 1000, 20))))


def test_the_interval_ignores_undefined_resamples() -> None:
    values = np.array([np.nan, *np.linspace(0, 1, 101)])
    assert bootstrap.interval(values, 0.9) == pytest.approx((0.05, 0.95))
    assert all(math.isnan(x) for x in bootstrap.interval(np.array([np.nan]), 0.9))
