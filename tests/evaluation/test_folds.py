"""A candidate against a baseline over rolling-origin folds, one paired bootstrap pooled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.errors import UsageError
from loopml.evaluation.evaluate import evaluate
from loopml.evaluation.folds import Fold, evaluate_folds


def _fold(name: str, rows: int, skill: float, seed: int) -> Fold:
    """Labels, a candidate whose scores follow them with this skill, a noisy baseline."""
    rng = np.random.default_rng(seed)
    labels = rng.random(rows) < 0.4
    candidate = 1 / (1 + np.exp(-(skill * (labels - 0.5) + rng.normal(0, 1, rows))))
    baseline = 1 / (1 + np.exp(-(1.0 * (labels - 0.5) + rng.normal(0, 1, rows))))
    return Fold(name, pd.Series(labels), candidate, baseline)


def _triple(found) -> tuple[float, float, float]:
    return (found.value, found.low, found.high)


def test_one_fold_is_the_plain_paired_evaluation() -> None:
    fold = _fold("may", 600, 2.0, seed=1)
    pooled, folds = evaluate_folds(
        [fold], task="classification", against="champion", metric="roc_auc", resamples=200
    )
    frame = pd.DataFrame({"c": fold.candidate, "b": fold.baseline, "y": fold.labels})
    plain = evaluate(
        "c", frame, target="y", baselines={"champion": "b"}, metrics=["roc_auc"], resamples=200
    )
    same = plain.differences["champion"]["roc_auc"]
    assert _triple(pooled.differences["champion"]["roc_auc"]) == pytest.approx(_triple(same))
    assert _triple(pooled.metrics["roc_auc"]) == pytest.approx(_triple(plain.metrics["roc_auc"]))
    assert _triple(folds[0].difference) == pytest.approx(_triple(same))


def test_folds_pool_by_their_rows_and_each_is_reported() -> None:
    folds = [_fold("march", 300, 0.5, 2), _fold("april", 900, 3.0, 3), _fold("may", 600, 2.0, 4)]
    pooled, found = evaluate_folds(
        folds, task="classification", against="champion", metric="roc_auc", resamples=300
    )
    assert [f.name for f in found] == ["march", "april", "may"]
    assert [f.rows for f in found] == [300, 900, 600]
    weighted = sum(f.rows * f.difference.value for f in found) / 1800
    assert pooled.differences["champion"]["roc_auc"].value == pytest.approx(weighted)
    assert pooled.rows == 1800
    # one unlucky fold does not decide alone: it loses, the pool wins beyond the interval
    assert found[0].difference.value < 0 < pooled.differences["champion"]["roc_auc"].low
    widths = [f.difference.high - f.difference.low for f in found]
    difference = pooled.differences["champion"]["roc_auc"]
    assert difference.high - difference.low < min(widths)  # more rows, a narrower interval


def test_regression_folds_pool_the_error() -> None:
    rng = np.random.default_rng(5)
    folds = []
    for name, noise in (("a", 1.0), ("b", 2.0)):
        truth = rng.normal(0, 3, 400)
        folds.append(Fold(name, pd.Series(truth), truth + rng.normal(0, noise, 400), truth + 3.0))
    pooled, found = evaluate_folds(folds, task="regression", against="old", metric="mae")
    maes = [np.mean(np.abs(f.candidate - f.labels.to_numpy())) for f in folds]
    assert pooled.metrics["mae"].value == pytest.approx(np.mean(maes))
    assert pooled.baselines["old"]["mae"].value == pytest.approx(3.0)
    assert all(f.difference.high < 0 for f in found)  # a smaller error in every fold


def test_bad_folds_are_refused() -> None:
    with pytest.raises(UsageError, match="at least one fold"):
        evaluate_folds([], task="classification", against="champion")
    fold = _fold("may", 50, 1.0, 6)
    short = Fold("june", fold.labels, fold.candidate[:10], fold.baseline)
    with pytest.raises(UsageError, match="Fold june: 10 candidate scores for 50"):
        evaluate_folds([short], task="classification", against="champion")
