"""The checks that look beyond one feature: correlation changes and exact tests on samples,
validated by seed sweeps like the drift tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from loopml.data.profile import Profile
from loopml.monitoring.checks import _exact_tests, correlation_changes
from loopml.monitoring.drift import drift

FEATURES = ["a", "b", "c", "d", "e"]


def _correlated(rng: np.random.Generator, rows: int, rho_ab: float) -> pd.DataFrame:
    """Five standard normal features; a and b correlated by rho_ab, the others by 0.3."""
    cov = np.full((5, 5), 0.3)
    np.fill_diagonal(cov, 1.0)
    cov[0, 1] = cov[1, 0] = rho_ab
    return pd.DataFrame(rng.multivariate_normal(np.zeros(5), cov, size=rows), columns=FEATURES)


def test_correlation_check_rarely_fires_without_a_change() -> None:
    fired = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        pairs = correlation_changes(_correlated(rng, 2000, 0.6), _correlated(rng, 1000, 0.6), 0.05)
        fired += any(p["changed"] for p in pairs)
    # Benjamini-Hochberg with every pair null bounds the chance of any alarm by alpha
    assert 0 <= fired / 200 <= 0.08


def test_a_changed_correlation_is_found_where_each_feature_looks_the_same() -> None:
    found, shares, marginal = 0, [], 0
    for seed in range(100):
        rng = np.random.default_rng(1000 + seed)
        reference, current = _correlated(rng, 2000, 0.6), _correlated(rng, 1000, 0.2)
        pairs = correlation_changes(reference, current, 0.05)
        changed = [tuple(p["pair"]) for p in pairs if p["changed"]]
        found += ("a", "b") in changed
        wrong = [pair for pair in changed if pair != ("a", "b")]
        shares.append(len(wrong) / max(len(changed), 1))
        report = drift(Profile().fit(reference), Profile().fit(current))
        marginal += bool(report.drifted)
    assert found >= 90  # 90% power at n = 2,000 against 1,000
    assert np.mean(shares) <= 0.1  # the false discovery rate stays near alpha (0.05)
    assert marginal <= 10  # the features' own distributions did not move


def test_exact_tests_hold_their_level_and_find_a_shift() -> None:
    null, shifted = 0, 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        reference = pd.DataFrame({"x": rng.normal(size=500), "k": rng.choice(list("abc"), 500)})
        current = pd.DataFrame({"x": rng.normal(size=300), "k": rng.choice(list("abc"), 300)})
        null += any(
            f["drifted"] for f in _exact_tests(reference, current, ["x", "k"], 0.05).values()
        )
        current["x"] += 0.4
        shifted += _exact_tests(reference, current, ["x", "k"], 0.05)["x"]["drifted"]
    assert 0 < null / 100 <= 0.1
    assert shifted >= 90
