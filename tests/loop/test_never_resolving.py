"""A drift alert that never resolves (a new champion left it open) is a mistake in the alert
rules, not a reason to retrain: the loop records it once and does not retrain on it."""

from __future__ import annotations

import pandas as pd

from loopml.ids import new_id
from loopml.loop import decisions, run_loop
from loopml.monitoring.rules import judge
from loopml.store import monitoring as repo
from loopml.store.monitoring import Point, WindowRecord
from loopml.workspace import current_workspace

JULY = pd.Timestamp("2013-07-01", tz="UTC").timestamp()
RULES = "rules:\n  - {name: drift, metric: psi, above: 0.25}\nnotifiers: []\n"


def _windows(versions: list[int]) -> None:
    """Hourly windows of the tiny endpoint, served by these versions, each drifting."""
    clock = 1_800_000_000.0
    for version in versions:
        start, clock = clock, clock + 3600.0
        record = WindowRecord(new_id(), "tiny", start, clock, clock, None, [version], 500, "ok")
        record.points.append(Point("psi", "a", 0.4))
        with current_workspace().metadata.write() as connection:
            repo.add_window(connection, record)
        judge("tiny", RULES)


def test_an_alert_a_new_champion_left_open_triggers_no_retrain(endpoint, policy) -> None:
    _windows([1, 1, 2])
    first = run_loop(endpoint, policy(), as_of=JULY)
    assert first.state == "idle" and first.message == "no trigger holds; nothing to do"
    (ignored,) = [d for d in decisions(endpoint) if d.action == "trigger_ignored"]
    assert "open for 3 windows" in ignored.message and "previous window" in ignored.message
    assert not [d for d in decisions(endpoint) if d.action == "retrain"]
    run_loop(endpoint, policy(), as_of=JULY + 86400)
    assert [d.action for d in decisions(endpoint)].count("trigger_ignored") == 1  # said once


def test_an_alert_still_open_under_one_version_is_a_trigger(endpoint, policy) -> None:
    _windows([1, 1, 1])
    step = run_loop(endpoint, policy(), as_of=JULY)
    assert any(d.action == "retrain" for d in step.decisions)
