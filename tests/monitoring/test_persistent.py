"""Alerts that never resolve: an open drift alert is persistent once it has stayed open over
three judged windows and, judged against the training reference, across a new serving
version; judged against a rolling reference, the windows alone tell. Other rules, resolved
alerts and windows with nothing to judge are left out."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.errors import InvalidValueError
from loopml.ids import new_id
from loopml.monitoring import operations as ops
from loopml.monitoring.persistent import PERSISTENT_WINDOWS, persistent_alerts
from loopml.monitoring.rules import judge
from loopml.serving.deployments import raise_alert
from loopml.store.monitoring import Point, WindowRecord

T0 = 1_800_000_000.0
HOUR = 3_600.0
REFERENCE = "rules:\n  - {name: drift, metric: psi, above: 0.25}\n"
PREVIOUS = "rules:\n  - {name: step, metric: psi, against: previous window, above: 0.25}\n"
ERRORS = "rules:\n  - {name: errors, metric: error_rate, above: 0.05}\n"


class Quiet:
    def send(self, alert) -> bool:
        return True


@pytest.fixture
def window(any_workspace) -> Callable[..., WindowRecord]:
    """On every metadata store, store churn's next hourly window (served by version) with
    these points, and judge the rules on it."""
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(50, 2)), columns=["a", "b"])
    loopml.models.register("churn", LogisticRegression().fit(frame, frame["a"] > 0), card=False)
    clock = [T0]

    def add(rules: str, version: int, *points: Point) -> WindowRecord:
        start, clock[0] = clock[0], clock[0] + HOUR
        rows = 500 if points else 0
        record = WindowRecord(
            new_id(), "churn", start, clock[0], clock[0], None, [version], rows, "ok"
        )
        record.points.extend(points)
        ops.add_window(any_workspace.metadata, record.endpoint, record)
        judge("churn", rules, [Quiet()])
        return record

    return add


def _psi(value: float, metric: str = "psi") -> Point:
    return Point(metric, "a", value)


def test_a_reference_alert_open_under_one_version_is_a_trigger_not_a_mistake(window) -> None:
    for _ in range(5):
        window(REFERENCE, 1, _psi(0.4))
    assert persistent_alerts("churn") == []  # a retrained champion may still resolve it


def test_a_reference_alert_a_new_champion_left_open_never_resolves(window) -> None:
    first = window(REFERENCE, 1, _psi(0.4))
    window(REFERENCE, 1, _psi(0.5))
    assert persistent_alerts("churn") == []
    window(REFERENCE, 2, _psi(0.45))
    (found,) = persistent_alerts("churn")
    assert (found.rule, found.metric, found.against) == ("drift", "psi", "reference")
    assert (found.windows, found.versions, found.window) == (PERSISTENT_WINDOWS, (1, 2), first.id)
    assert "against: previous window" in found.hint
    assert persistent_alerts("churn", windows=4) == []
    with pytest.raises(InvalidValueError, match="windows is a whole number"):
        persistent_alerts("churn", windows=0)


def test_windows_with_nothing_to_judge_do_not_count(window) -> None:
    window(REFERENCE, 1, _psi(0.4))
    window(REFERENCE, 2)  # no traffic: the alert stays open, judged on nothing
    window(REFERENCE, 2)
    assert persistent_alerts("churn") == []
    window(REFERENCE, 2, _psi(0.4))
    assert persistent_alerts("churn") == []  # judged twice: when it fired, and now
    window(REFERENCE, 2, _psi(0.4))
    assert [p.windows for p in persistent_alerts("churn")] == [3]


def test_a_rolling_alert_open_over_three_windows_never_resolves(window) -> None:
    for value in (0.4, 0.3):
        window(PREVIOUS, 1, _psi(value, "psi_previous"), _psi(0.01))
    assert persistent_alerts("churn") == []
    window(PREVIOUS, 1, _psi(0.35, "psi_previous"), _psi(0.01))
    (found,) = persistent_alerts("churn")
    assert (found.metric, found.against, found.windows) == ("psi_previous", "previous window", 3)
    assert "last N windows" in found.hint


def test_a_resolved_alert_and_other_rules_are_left_out(window, any_workspace) -> None:
    for version in (1, 1, 2, 2):
        window(ERRORS, version, Point("error_rate", "", 0.2))
    assert persistent_alerts("churn") == []  # a lasting problem, not a mistake in the rule
    raise_alert("churn", "guardrail", "canary rolled back")  # not a rule's alert
    for version in (2, 3, 3):
        window(REFERENCE, version, _psi(0.4))
    assert [p.rule for p in persistent_alerts("churn")] == ["drift"]
    opened = ops.open_rule_alerts(any_workspace.metadata, "churn")
    assert sorted(a.kind for a in opened) == ["rule:drift", "rule:errors"]
    window(REFERENCE, 3, _psi(0.1))  # resolves
    assert persistent_alerts("churn") == []
