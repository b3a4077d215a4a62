"""Reading back what monitors stored: the windows of an endpoint, the time series of every
value measured in them, and each window's full report."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pandas as pd

from loopml.monitoring import operations as ops
from loopml.store.monitoring import WindowRecord
from loopml.store.pages import MAX_PAGE, every
from loopml.workspace import Workspace, current_workspace

COLUMNS = ["window_id", "end", "metric", "key", "value", "low", "high"]


def windows(
    name: str, *, since: float | None = None, workspace: Workspace | None = None
) -> list[WindowRecord]:
    """The endpoint's monitored windows, oldest first."""
    return list(every(ops.list_windows, (workspace or current_workspace()).metadata, name, since))


def series(
    name: str,
    metrics: Iterable[str] | None = None,
    *,
    since: float | None = None,
    workspace: Workspace | None = None,
) -> pd.DataFrame:
    """Every stored point of the endpoint (or of some metrics), oldest first, with the
    window's start and label: columns window_id, start, end, label, metric, key, value, low,
    high."""
    workspace = workspace or current_workspace()
    chosen = None if metrics is None else sorted(set(metrics))
    if chosen == []:  # none asked for: an empty list would not travel as a query
        return _frame(ops.Series([], []))
    return _frame(_every_point(workspace, name, chosen, since))


def _every_point(
    workspace: Workspace, name: str, metrics: list[str] | None, since: float | None
) -> ops.Series:
    """The points of every page of windows, as one series."""
    points, windows, cursor = [], [], None
    while True:
        found = ops.series(workspace.metadata, name, metrics, since, MAX_PAGE, cursor)
        points.extend(found.points)
        windows.extend(found.windows)
        if found.next_cursor is None:
            return ops.Series(points, windows)
        cursor = found.next_cursor


def _frame(found: ops.Series) -> pd.DataFrame:
    """The points as a frame, each with the start and label of its window."""
    frame = pd.DataFrame(found.points, columns=COLUMNS).astype({"window_id": object})
    about = pd.DataFrame(
        {
            "window_id": pd.Series([w.id for w in found.windows], dtype=object),
            "start": pd.Series([w.start for w in found.windows], dtype="float64"),
            "label": pd.Series([w.label for w in found.windows], dtype=object),
        }
    )
    frame = frame.merge(about, on="window_id", how="left")
    return frame[["window_id", "start", "end", "label", "metric", "key", "value", "low", "high"]]


def window_report(window: WindowRecord, *, workspace: Workspace | None = None) -> dict[str, Any]:
    """The full report stored with a window: every check's status, message and details."""
    workspace = workspace or current_workspace()
    if window.report_digest is None:
        return {"checks": []}
    return json.loads(workspace.artifacts.get_bytes(window.report_digest))
