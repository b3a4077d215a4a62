"""Stored windows and series, on every metadata store (SQLite, PostgreSQL and a loopml
server): windows read back oldest first with their points as a series, filtered by metric and
time, infinite bounds kept; windows the monitor would not make are refused, nothing stored."""

from __future__ import annotations

import math

import pytest

from loopml.errors import InvalidValueError, UsageError
from loopml.ids import new_id
from loopml.monitoring import operations as ops
from loopml.monitoring.timeseries import COLUMNS, series, windows
from loopml.store.monitoring import Point, WindowRecord
from loopml.workspace import Workspace

T0 = 1_800_000_000.0
HOUR = 3_600.0


def stored(workspace: Workspace, hour: int, *points: Point, endpoint: str = "churn"):
    start = T0 + hour * HOUR
    record = WindowRecord(
        new_id(), endpoint, start, start + HOUR, start + HOUR, f"h{hour}", [2, 1], 500, "ok"
    )
    record.points.extend(points)
    ops.add_window(workspace.metadata, endpoint, record)
    return record


def test_windows_and_their_points_read_back_as_a_series(any_workspace: Workspace) -> None:
    first = stored(any_workspace, 0, Point("psi", "a", 0.1), Point("roc_auc", "", 0.8, 0.7, 0.9))
    second = stored(
        any_workspace, 1, Point("psi", "a", None), Point("roc_auc", "", 0.9, 0.5, math.inf)
    )
    stored(any_workspace, 0, Point("psi", "a", 9.0), endpoint="other")

    found = windows("churn")
    assert [(w.id, w.label, w.versions, w.rows) for w in found] == [
        (first.id, "h0", [2, 1], 500),
        (second.id, "h1", [2, 1], 500),
    ]
    assert found[0].points == []  # windows come without their points
    frame = series("churn")
    assert list(frame.columns) == ["window_id", "start", "end", "label", *COLUMNS[2:]]
    assert frame[["window_id", "metric", "key", "label"]].values.tolist() == [
        [first.id, "psi", "a", "h0"],
        [first.id, "roc_auc", "", "h0"],
        [second.id, "psi", "a", "h1"],
        [second.id, "roc_auc", "", "h1"],
    ]
    assert frame["start"].tolist() == [T0, T0, T0 + HOUR, T0 + HOUR]
    assert frame["high"].tolist()[-1] == math.inf  # kept over HTTP too
    assert frame["value"].isna().tolist() == [False, False, True, False]


def test_a_series_is_filtered_by_metric_and_time(any_workspace: Workspace) -> None:
    stored(any_workspace, 0, Point("psi", "a", 0.1), Point("js", "a", 0.2))
    later = stored(any_workspace, 1, Point("psi", "a", 0.3), Point("js", "a", 0.4))
    assert series("churn", {"js"})["value"].tolist() == [0.2, 0.4]
    assert series("churn", ["psi", "js"], since=T0 + HOUR)["window_id"].tolist() == [later.id] * 2
    assert [w.id for w in windows("churn", since=T0 + HOUR)] == [later.id]
    empty = series("churn", [])
    assert empty.empty and list(empty.columns) == list(series("churn").columns)
    assert series("nobody").empty and windows("nobody") == []


def test_a_window_the_monitor_would_not_make_is_refused(any_workspace: Workspace) -> None:
    kept = stored(any_workspace, 0, Point("psi", "a", 0.1))
    metadata = any_workspace.metadata
    with pytest.raises(UsageError, match=f"id {kept.id} is stored already"):
        ops.add_window(metadata, "churn", kept)
    wrong = WindowRecord(new_id(), "churn", T0, T0 - 1, T0, None, [1], -1, "great")
    wrong.points.extend([Point("psi", "a", 1.0), Point("psi", "a", 2.0)])
    with pytest.raises(InvalidValueError) as refused:
        ops.add_window(metadata, "other", wrong)
    for problem in ("endpoint is 'churn'", "end is", "rows is -1", "status is 'great'"):
        assert problem in str(refused.value)
    assert "psi['a'] is given twice" in str(refused.value)
    assert [w.id for w in windows("churn")] == [kept.id] and windows("other") == []
    assert series("churn")["value"].tolist() == [0.1]
