"""Backtested gates: the recipe judged on rolling-origin folds (each trained on the window
before it, against the version that was champion when it began), pooled in one paired
bootstrap, every fold in the record.

On the tiny endpoint at July 2013 with a window of two months: the candidate is trained on
May and judged on June; the fold before trains on April and is judged on May, the one before
that trains on March and is judged on April, where y turned round and March's model fails.
"""

from __future__ import annotations

import pandas as pd

from loopml.loop import decisions, run_loop
from loopml.serving.deployments import raise_alert

MARCH = pd.Timestamp("2013-03-01", tz="UTC").timestamp()
JULY = pd.Timestamp("2013-07-01", tz="UTC").timestamp()


def _gated(endpoint: str, rules: dict, started: float = MARCH):
    """The gate's decision at July, the loop's first step (which dates the champion's data,
    registered after the loop's clock) taken at ``started``."""
    rules["triggers"]["every"] = "1000d"
    run_loop(endpoint, rules, as_of=started)  # records only that the schedule starts
    raise_alert(endpoint, "rule:drift", "psi breached")
    run_loop(endpoint, rules, as_of=JULY)
    return next(d for d in decisions(endpoint) if d.action.startswith("gate_"))


def test_the_gate_pools_the_folds_and_records_each(endpoint, policy) -> None:
    gate = _gated(endpoint, policy(backtest={"folds": 3}))
    folds = gate.evidence["folds"]
    assert [f["fold"] for f in folds] == [
        "2013-06-01..2013-07-01",
        "2013-05-01..2013-06-01",
        "2013-04-01..2013-05-01",
    ]
    assert [f["baseline"] for f in folds] == [1, 1, 1]  # no promotion yet: version 1 served
    assert all(f["rows"] > 100 for f in folds) and "run" in folds[1] and "run" in folds[2]
    april = folds[2]["difference"]
    assert april["value"] < 0.1  # trained on March, before y turned round
    # the pooled improvement is the folds' row-weighted mean, and the gate judged it
    rows = sum(f["rows"] for f in folds)
    pooled = sum(f["rows"] * f["difference"]["value"] for f in folds) / rows
    detail = next(c["detail"] for c in gate.evidence["checks"] if "improvement" in c["check"])
    assert f"improves by {pooled:.4f}" in detail


def test_one_fold_is_the_gate_on_the_newest_window_alone(endpoint, policy, tiny) -> None:
    gate = _gated(endpoint, policy())
    assert "folds" not in gate.evidence
    newest = tiny.rows()
    assert gate.evidence["rows"] == int((newest["time"].dt.month == 6).sum())


def test_a_backtest_longer_than_the_data_uses_the_folds_it_has(endpoint, policy) -> None:
    gate = _gated(endpoint, policy(backtest={"folds": 12}))
    folds = gate.evidence["folds"]
    judged = [f for f in folds if "fold" in f]
    # June back to March; the champion was trained before the loop's first step (March)
    assert [f["fold"][:7] for f in judged] == ["2013-06", "2013-05", "2013-04", "2013-03"]
    left = [f["left_out"] for f in folds if "left_out" in f]
    assert len(left) == 8
    assert left[0] == (
        "2013-02-01..2013-03-01: version 1, champion then, was trained on data up to 2013-03-01"
    )
    assert gate.action in ("gate_passed", "gate_failed")  # decided, not crashed


def test_a_fold_the_champion_then_had_trained_on_is_left_out(endpoint, policy) -> None:
    gate = _gated(endpoint, policy(backtest={"folds": 3}), started=JULY)
    judged = [f["fold"] for f in gate.evidence["folds"] if "fold" in f]
    assert judged == ["2013-06-01..2013-07-01"]  # nothing says version 1 did not see May
    assert len([f for f in gate.evidence["folds"] if "left_out" in f]) == 2
