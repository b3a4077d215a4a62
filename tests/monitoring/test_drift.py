"""Drift tests validated statistically: on data without drift each test fires at about its
nominal rate over a seed sweep; known shifts are found; Benjamini-Hochberg keeps false alarms
across many features in check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import loopml
from loopml.errors import InvalidValueError
from loopml.monitoring import drift

SEEDS = 200
CARRIERS = np.array(["AA", "B6", "DL", "UA", "WN"])
SHARES = np.array([0.3, 0.25, 0.2, 0.15, 0.1])


def _profile(frame: pd.DataFrame) -> loopml.data.Profile:
    return loopml.data.profile(frame)


def _sample(
    rng: np.random.Generator,
    rows: int,
    mean: float = 0.0,
    sd: float = 1.0,
    shares: np.ndarray = SHARES,
    carriers: np.ndarray = CARRIERS,
) -> pd.DataFrame:
    return pd.DataFrame(
        {"x": rng.normal(mean, sd, rows), "carrier": rng.choice(carriers, rows, p=shares)}
    )


def _p_values(seed: int, **current) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    report = drift(_profile(_sample(rng, 2000)), _profile(_sample(rng, 1000, **current)))
    return {f.name: f.p_value for f in report.features}


def test_without_drift_each_test_fires_at_about_its_level() -> None:
    found = [_p_values(seed) for seed in range(SEEDS)]
    for name in ("x", "carrier"):
        rate = np.mean([p[name] < 0.05 for p in found])
        # 200 draws at 0.05: a standard deviation is 0.015; the binned KS may be a bit low
        assert 0.01 <= rate <= 0.09, (name, rate)


@pytest.mark.parametrize(
    "shift, feature",
    [
        ({"mean": 0.25}, "x"),
        ({"sd": 1.4}, "x"),
        ({"shares": np.array([0.2, 0.2, 0.2, 0.2, 0.2])}, "carrier"),
        (
            {
                "carriers": np.array(["AA", "B6", "DL", "UA", "XX"]),
                "shares": SHARES,
            },
            "carrier",
        ),
    ],
    ids=["mean", "variance", "shares", "new category"],
)
def test_known_shifts_are_found(shift, feature) -> None:
    found = [_p_values(seed, **shift)[feature] < 0.05 for seed in range(50)]
    assert np.mean(found) >= 0.9


def test_a_new_category_is_named() -> None:
    rng = np.random.default_rng(1)
    current = _sample(rng, 1000, carriers=np.array(["AA", "B6", "DL", "UA", "XX"]))
    report = drift(_profile(_sample(rng, 2000)), _profile(current))
    carrier = next(f for f in report.features if f.name == "carrier")
    assert carrier.new_categories == ["XX"] and carrier.drifted and carrier.psi > 0.25


def test_benjamini_hochberg_across_many_features() -> None:
    rng = np.random.default_rng(7)
    names = [f"f{i}" for i in range(30)]
    reference = pd.DataFrame({n: rng.normal(size=3000) for n in names})
    current = pd.DataFrame({n: rng.normal(size=1500) for n in names})
    current[["f0", "f1", "f2"]] += 0.5
    report = drift(_profile(reference), _profile(current), alpha=0.05)
    assert set(report.drifted) == {"f0", "f1", "f2"}
    assert report.drifted_share == pytest.approx(0.1)
    adjusted = {f.name: f.adjusted_p_value for f in report.features}
    raw = {f.name: f.p_value for f in report.features}
    assert all(adjusted[n] >= raw[n] for n in names)


def test_bad_input_is_explained() -> None:
    profile = _profile(_sample(np.random.default_rng(0), 100))
    with pytest.raises(InvalidValueError, match="alpha"):
        drift(profile, profile, alpha=1.5)
    with pytest.raises(InvalidValueError, match="missing"):
        drift(profile, profile, columns=["nope"])
