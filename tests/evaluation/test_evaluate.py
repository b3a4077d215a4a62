"""evaluate(): intervals that cover the truth as often as they claim, paired differences,
slices, fairness, and clear errors for bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom, norm
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import roc_auc_score

import loopml
from loopml.errors import ColumnNotFoundError, InvalidValueError, UsageError
from loopml.evaluation import evaluate


def binormal(
    rng: np.random.Generator, n: int, separation: float, rate: float = 0.4
) -> pd.DataFrame:
    """Scores of positives ~ N(separation, 1), of negatives ~ N(0, 1), squashed to (0, 1):
    the true AUC is Φ(separation / √2)."""
    positive = rng.random(n) < rate
    raw = rng.normal(size=n) + separation * positive
    return pd.DataFrame({"score": 1 / (1 + np.exp(-raw)), "y": positive})


def coverage_bounds(trials: int, level: float) -> tuple[int, int]:
    """How many of `trials` intervals may cover the truth: a 99.9% binomial band around level."""
    return int(binom.ppf(0.0005, trials, level)), int(binom.ppf(0.9995, trials, level))


def test_auc_intervals_cover_the_true_auc_about_95_percent_of_the_time() -> None:
    trials, separation = 300, 1.0
    truth = norm.cdf(separation / math.sqrt(2))
    covered = 0
    for seed in range(trials):
        frame = binormal(np.random.default_rng(seed), 400, separation)
        found = evaluate("score", frame, target="y", resamples=200, seed=seed)
        auc = found.metrics["roc_auc"]
        covered += auc.low <= truth <= auc.high
    low, high = coverage_bounds(trials, 0.95)
    assert low <= covered <= high, f"{covered} of {trials} intervals covered the true AUC"


def test_accuracy_intervals_cover_the_true_accuracy() -> None:
    trials, truth = 300, 0.8
    covered = 0
    for seed in range(trials):
        rng = np.random.default_rng(10_000 + seed)
        y = rng.random(300) < 0.5
        right = rng.random(300) < truth
        score = np.where(right == y, 0.9, 0.1)  # chosen (score ≥ 0.5) equals y where right
        frame = pd.DataFrame({"score": score, "y": y})
        found = evaluate("score", frame, target="y", resamples=200, seed=seed)
        accuracy = found.metrics["accuracy"]
        covered += accuracy.low <= truth <= accuracy.high
    low, high = coverage_bounds(trials, 0.95)
    assert low <= covered <= high, f"{covered} of {trials} intervals covered the true accuracy"


def test_paired_differences_see_what_separate_intervals_miss() -> None:
    rng = np.random.default_rng(1)
    frame = binormal(rng, 3000, 1.0)
    noise = rng.normal(scale=0.05, size=len(frame))
    frame["close"] = np.clip(frame["score"] - 0.02 + noise, 0, 1)  # a little worse, same rows
    found = evaluate("score", frame, target="y", baselines={"close": "close"}, seed=3)
    model, close = found.metrics["roc_auc"], found.baselines["close"]["roc_auc"]
    assert close.high > model.low  # the two intervals overlap...
    difference = found.differences["close"]["roc_auc"]
    assert difference.value == pytest.approx(model.value - close.value)
    assert difference.low > 0  # ...yet the paired difference is clearly positive


def test_a_model_a_rule_and_a_column_are_all_scored(sqlite_workspace) -> None:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"x": rng.normal(size=2000), "group": rng.choice(["a", "b"], 2000)})
    frame["y"] = frame["x"] + rng.normal(size=2000) > 0
    model = LogisticRegression().fit(frame[["x"]], frame["y"])
    found = evaluate(
        model,
        frame[["x", "y", "group"]].assign(prior=frame["y"].mean()),
        target="y",
        baselines={"prior": "prior", "rule": lambda rows: (rows["x"] > 0).astype(float)},
        resamples=100,
    )
    expected = roc_auc_score(frame["y"], model.predict_proba(frame[["x"]])[:, 1])
    assert found.metrics["roc_auc"].value == pytest.approx(expected)
    assert found.baselines["prior"]["roc_auc"].value == 0.5
    assert found.differences["prior"]["roc_auc"].low > 0.2
    assert found.to_dict()["metrics"]["roc_auc"]["value"] == pytest.approx(expected)


def test_slices_flag_the_weak_and_the_small() -> None:
    rng = np.random.default_rng(4)
    frame = binormal(rng, 6000, 1.5)
    frame["carrier"] = rng.choice(["AA", "B6", "UA"], len(frame))
    weak = frame["carrier"] == "UA"
    frame.loc[weak, "score"] = rng.random(int(weak.sum()))  # no signal for UA
    frame.loc[:19, "carrier"] = "XX"  # a slice of 20 rows
    found = evaluate("score", frame, target="y", slices=["carrier"], resamples=200, seed=1)
    by_value = {s.value: s for s in found.slices}
    assert by_value["UA"].worse and not by_value["AA"].worse
    assert by_value["XX"].small and not by_value["XX"].worse
    assert found.slices[0].value == "UA"  # worst first, small slices last
    assert found.slices[-1].value == "XX"


def test_numeric_slices_are_quantile_bins() -> None:
    rng = np.random.default_rng(5)
    frame = binormal(rng, 2000, 1.0).assign(distance=rng.uniform(0, 3000, 2000))
    found = evaluate("score", frame, target="y", slices={"distance": 4}, resamples=50)
    assert len(found.slices) == 4 and {s.rows for s in found.slices} == {500}


def test_fairness_rates_differences_and_ratios() -> None:
    rng = np.random.default_rng(6)
    n = 8000
    group = rng.choice(["north", "south"], n)
    y = rng.random(n) < 0.5
    chosen_rate = np.where(group == "north", 0.6, 0.3)
    score = np.where(rng.random(n) < chosen_rate, 0.8, 0.2)
    frame = pd.DataFrame({"score": score, "y": y, "region": group})
    found = evaluate("score", frame, target="y", sensitive=["region"], resamples=200)
    fairness = found.fairness[0]
    north, south = fairness.groups["north"], fairness.groups["south"]
    assert north["selection_rate"].value == pytest.approx(0.6, abs=0.03)
    assert south["selection_rate"].value == pytest.approx(0.3, abs=0.03)
    ratio = fairness.ratios["selection_rate"]
    assert ratio.value == pytest.approx(0.5, abs=0.05) and ratio.high < 0.8
    assert fairness.differences["tpr"].low > 0.2
    assert fairness.rows == {
        "north": int((group == "north").sum()),
        "south": int((group == "south").sum()),
    }


def test_regression() -> None:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"x": rng.normal(size=1000)})
    frame["y"] = 3 * frame["x"] + rng.normal(size=1000)
    model = LinearRegression().fit(frame[["x"]], frame["y"])
    found = evaluate(
        model,
        frame,
        target="y",
        task="regression",
        baselines={"mean": lambda rows: np.full(len(rows), frame["y"].mean())},
        resamples=100,
    )
    assert found.primary == "rmse"
    assert found.metrics["rmse"].value == pytest.approx(1.0, abs=0.1)
    assert found.differences["mean"]["rmse"].high < 0  # lower is better: the model wins
    assert found.metrics["r2"].low > 0.85


def test_the_same_seed_gives_the_same_intervals() -> None:
    frame = binormal(np.random.default_rng(8), 500, 1.0)
    first = evaluate("score", frame, target="y", resamples=100, seed=9).to_dict()
    assert first == evaluate("score", frame, target="y", resamples=100, seed=9).to_dict()
    assert first != evaluate("score", frame, target="y", resamples=100, seed=10).to_dict()


def test_a_snapshot_reference_is_data(sqlite_workspace) -> None:
    frame = binormal(np.random.default_rng(9), 300, 1.0)
    loopml.data.add("scored", frame)
    found = evaluate("score", "scored", target="y", resamples=50)
    assert found.rows == 300


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"target": "nope"}, ColumnNotFoundError, "no target column 'nope'"),
        ({"target": "y", "task": "ranking"}, UsageError, "task must be one of"),
        ({"target": "y", "resamples": 3}, UsageError, "at least 10"),
        ({"target": "y", "level": 1.5}, UsageError, "level must be"),
        ({"target": "y", "threshold": 0}, UsageError, "threshold must be between"),
        ({"target": "y", "slices": ["nope"]}, ColumnNotFoundError, "no column 'nope' to slice by"),
        ({"target": "y", "sensitive": ["nope"]}, ColumnNotFoundError, "sensitive column 'nope'"),
        ({"target": "y", "baselines": {"bad": 3}}, UsageError, "must be a fitted model"),
        (
            {"target": "y", "baselines": {"bad": lambda rows: rows.zzz}},
            InvalidValueError,
            "rule failed",
        ),
        (
            {"target": "y", "baselines": {"short": lambda rows: [0.5]}},
            InvalidValueError,
            "gave 1 scores",
        ),
    ],
)
def test_bad_input_is_explained(kwargs, error, fragment) -> None:
    frame = binormal(np.random.default_rng(0), 100, 1.0)
    with pytest.raises(error, match=fragment):
        evaluate("score", frame, **{"resamples": 20, **kwargs})


def test_scores_outside_zero_and_one_are_refused() -> None:
    frame = binormal(np.random.default_rng(0), 100, 1.0).assign(logit=lambda f: f.score * 5 - 2)
    with pytest.raises(InvalidValueError, match="must be probabilities"):
        evaluate("logit", frame, target="y", resamples=20)


def test_a_target_with_missing_values_or_many_classes_is_refused() -> None:
    frame = binormal(np.random.default_rng(0), 100, 1.0)
    with pytest.raises(InvalidValueError, match="1 missing values"):
        evaluate("score", frame.assign(y=frame.y.astype(object).where(frame.index > 0)), target="y")
    with pytest.raises(InvalidValueError, match="has 3 classes"):
        evaluate("score", frame.assign(y=np.arange(100) % 3), target="y")


def test_a_chosen_subset_of_metrics() -> None:
    frame = binormal(np.random.default_rng(1), 500, 1.0)
    found = evaluate("score", frame, target="y", metrics=["roc_auc"], resamples=20)
    assert list(found.metrics) == ["roc_auc"] and found.primary == "roc_auc"
    found = evaluate("score", frame, target="y", metrics=["brier", "accuracy"], resamples=20)
    assert list(found.metrics) == ["brier", "accuracy"] and found.primary == "brier"
    with pytest.raises(UsageError, match="Unknown classification metrics: 'rmse'"):
        evaluate("score", frame, target="y", metrics=["rmse"])


def test_slices_mix_category_columns_and_binned_numbers() -> None:
    rng = np.random.default_rng(11)
    frame = binormal(rng, 2000, 1.0).assign(c=rng.choice(["a", "b"], 2000), x=rng.normal(size=2000))
    found = evaluate("score", frame, target="y", slices=["c", {"x": 4}], resamples=20)
    assert {(s.column) for s in found.slices} == {"c", "x"}
    assert sum(s.column == "x" for s in found.slices) == 4
    same = evaluate("score", frame, target="y", slices={"c": None, "x": 4}, resamples=20)
    assert [s.value for s in same.slices] == [s.value for s in found.slices]
    with pytest.raises(UsageError, match="a whole number of at least 2"):
        evaluate("score", frame, target="y", slices=[{"x": 1.5}], resamples=20)


def test_the_task_is_inferred_from_a_numeric_target() -> None:
    rng = np.random.default_rng(12)
    frame = pd.DataFrame({"x": rng.normal(size=500)})
    frame["y"] = 200 + 30 * frame["x"] + rng.normal(size=500)
    frame["y"] = frame["y"].round()  # whole numbers, but hundreds of them
    model = LinearRegression().fit(frame[["x"]], frame["y"])
    found = evaluate(model, frame, target="y", resamples=20)
    assert found.task == "regression" and found.primary == "rmse"
    with pytest.raises(InvalidValueError, match="task='regression'"):
        evaluate(model, frame, target="y", task="classification", resamples=20)


def test_fairness_for_regression_compares_errors_and_mean_predictions() -> None:
    rng = np.random.default_rng(13)
    n = 6000
    region = rng.choice(["east", "west"], n)
    y = rng.normal(50, 10, n)
    noise = np.where(region == "east", 2.0, 8.0)
    frame = pd.DataFrame({"y": y, "score": y + rng.normal(0, 1, n) * noise, "region": region})
    found = evaluate("score", frame, target="y", sensitive=["region"], resamples=200)
    fairness = found.fairness[0]
    east, west = fairness.groups["east"], fairness.groups["west"]
    assert east["mae"].value == pytest.approx(2.0 * math.sqrt(2 / math.pi), rel=0.1)
    assert west["mae"].value == pytest.approx(8.0 * math.sqrt(2 / math.pi), rel=0.1)
    assert west["mean_prediction"].value == pytest.approx(50, abs=1)
    gap = fairness.differences["mae"]
    assert gap.low > 3 and gap.value == pytest.approx(west["mae"].value - east["mae"].value)
    assert fairness.ratios == {}  # ratios of errors say little; gaps are reported
