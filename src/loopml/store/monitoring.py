"""Repository functions of monitoring: the reference data stored with a model version, and
the windows a monitor judged with the time series of every value it measured in them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loopml.store.pages import Sort, ordered
from loopml.store.schema import loop_decisions, model_references, monitor_points, monitor_windows


@dataclass(frozen=True, slots=True)
class Point:
    """One value measured in a window: a metric, for a key (a feature, a percentile, a
    version; empty when the metric has one value), with its interval when it has one."""

    metric: str
    key: str = ""
    value: float | None = None
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, slots=True)
class WindowRecord:
    """One monitored window of an endpoint's traffic."""

    id: str
    endpoint: str
    start: float
    end: float
    at: float
    label: str | None
    versions: list[int]
    rows: int
    status: str
    message: str | None = None
    report_digest: str | None = None
    points: list[Point] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        found = {name: getattr(self, name) for name in self.__slots__ if name != "points"}
        return found


def set_reference(
    connection: Connection, model_id: str, version: int, digest: str, rows: int, now: float
) -> None:
    """Store (or replace) the reference data of a model version."""
    c = model_references.c
    connection.execute(
        model_references.delete().where(c.model_id == model_id, c.version == version)
    )
    connection.execute(
        model_references.insert().values(
            model_id=model_id, version=version, digest=digest, rows=rows, created_at=now
        )
    )


def reference(connection: Connection, model_id: str, version: int) -> tuple[str, int] | None:
    """The digest and row count of a version's reference data, if it has one."""
    c = model_references.c
    row = connection.execute(
        sa.select(c.digest, c.rows).where(c.model_id == model_id, c.version == version)
    ).first()
    return (row.digest, row.rows) if row else None


def add_window(connection: Connection, window: WindowRecord) -> None:
    """Record a window and its points in one transaction."""
    values = window.to_dict()
    values["versions"] = json.dumps(window.versions)
    connection.execute(monitor_windows.insert().values(**values))
    rows = [
        {
            "window_id": window.id,
            "endpoint": window.endpoint,
            "end": window.end,
            "metric": point.metric,
            "key": point.key,
            "value": point.value,
            "low": point.low,
            "high": point.high,
        }
        for point in window.points
    ]
    if rows:
        connection.execute(monitor_points.insert(), rows)


def windows(
    connection: Connection,
    endpoint: str,
    *,
    since: float | None = None,
    cursor: str | None = None,
    size: int | None = None,
) -> list[WindowRecord]:
    """An endpoint's monitored windows, oldest first (without their points): every one, or a
    page of size after the cursor (see pages)."""
    c = monitor_windows.c
    query = sa.select(monitor_windows).where(c.endpoint == endpoint)
    if since is not None:
        query = query.where(c.end > since)
    query = ordered(query, [Sort(c.end), Sort(c.at), Sort(c.id)], cursor, size)
    return [_window(row) for row in connection.execute(query)]


def latest_window(connection: Connection, endpoint: str) -> WindowRecord | None:
    """The endpoint's last monitored window, with its points."""
    c = monitor_windows.c
    row = connection.execute(
        sa.select(monitor_windows)
        .where(c.endpoint == endpoint)
        .order_by(c.end.desc(), c.at.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    p = monitor_points.c
    found = connection.execute(
        sa.select(p.metric, p.key, p.value, p.low, p.high)
        .where(p.window_id == row.id)
        .order_by(p.metric, p.key)
    )
    return _window(row, [Point(*point) for point in found])


def _window(row: Any, points: list[Point] | None = None) -> WindowRecord:
    values = {name: getattr(row, name) for name in WindowRecord.__slots__ if name != "points"}
    values["versions"] = json.loads(values["versions"])
    return WindowRecord(**values, points=points or [])


def points(
    connection: Connection,
    endpoint: str,
    *,
    metrics: Iterable[str] | None = None,
    since: float | None = None,
    window_ids: Iterable[str] | None = None,
) -> list[tuple[str, float, str, str, float | None, float | None, float | None]]:
    """An endpoint's points as (window id, end, metric, key, value, low, high), oldest first;
    of these windows only, when given."""
    c = monitor_points.c
    query = (
        sa.select(c.window_id, c.end, c.metric, c.key, c.value, c.low, c.high)
        .where(c.endpoint == endpoint)
        .order_by(c.end, c.metric, c.key)
    )
    if metrics is not None:
        query = query.where(c.metric.in_(list(metrics)))
    if since is not None:
        query = query.where(c.end > since)
    if window_ids is not None:
        query = query.where(c.window_id.in_(list(window_ids)))
    return [tuple(row) for row in connection.execute(query)]


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One decision of the retraining loop, with the evidence it was taken on."""

    id: str
    endpoint: str
    at: float
    as_of: float | None
    action: str
    version: int | None
    message: str
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def add_decision(connection: Connection, decision: DecisionRecord) -> None:
    """Record a decision of the loop."""
    values = decision.to_dict()
    values["evidence"] = json.dumps(decision.evidence, sort_keys=True, default=str)
    connection.execute(loop_decisions.insert().values(**values))


def decisions(
    connection: Connection, endpoint: str, cursor: str | None = None, size: int | None = None
) -> list[DecisionRecord]:
    """An endpoint's loop decisions, oldest first: every one, or a page of size after the
    cursor (see pages)."""
    c = loop_decisions.c
    query = sa.select(loop_decisions).where(c.endpoint == endpoint)
    query = ordered(query, [Sort(c.at), Sort(c.id)], cursor, size)
    return [
        DecisionRecord(
            row.id,
            row.endpoint,
            row.at,
            row.as_of,
            row.action,
            row.version,
            row.message,
            json.loads(row.evidence),
        )
        for row in connection.execute(query)
    ]
