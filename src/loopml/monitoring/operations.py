"""The monitoring operations of the metadata store: the windows a monitor judged with every
value measured in them, and the alerts their rules raise and resolve, each one unit of work
(see loopml.store.operations).

A window is stored whole (its record and its points in one transaction); a rule's verdict
looks for the rule's open alert and raises or resolves it in one transaction, so an alert is
raised once however many monitors judge the same rule. What a window records is checked as
the monitor makes it, so a caller of the HTTP API cannot store what ``monitor`` would not.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

import sqlalchemy.exc
from pydantic import Field, with_config
from sqlalchemy.engine import Connection

from loopml.errors import InvalidValueError, UsageError
from loopml.ids import new_id
from loopml.store import deployments as alerts_repo
from loopml.store import monitoring as repo
from loopml.store.deployments import AlertRecord
from loopml.store.monitoring import WindowRecord
from loopml.store.operations import JSON_CONFIG, operation
from loopml.store.pages import PAGE, Cursor, Page, PageSize, page
from loopml.tracking.operations import Key, Moment, Text
from loopml.tracking.validation import INT64, MAX_KEY_LENGTH

PREFIX = "rule:"  # the kind of a rule's alerts: rule:<name>
RuleName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")]
STATUSES = ("ok", "failed", "empty")
METRIC_LENGTH = 64
HEX = re.compile(r"^[0-9a-f]+$")
# One point as (window id, end, metric, key, value, low, high).
PointRow = tuple[str, float, str, str, float | None, float | None, float | None]


@with_config(JSON_CONFIG)  # keeps NaN and infinite values over HTTP
@dataclass(frozen=True)
class Series:
    """Stored points, oldest first, and the windows they were measured in."""

    points: list[PointRow]
    windows: list[WindowRecord]
    next_cursor: str | None = None


@dataclass(frozen=True)
class AlertChange:
    """What a verdict changed: the alert it raised (firing), or the open alert it resolved
    (resolved, with its resolved_at)."""

    status: Literal["firing", "resolved"]
    alert: AlertRecord


@operation("POST /monitoring/{endpoint}/windows")
def add_window(connection: Connection, endpoint: str, window: WindowRecord) -> None:
    """Record a monitored window of the endpoint with every value measured in it."""
    _check_window(endpoint, window)
    try:
        repo.add_window(connection, window)
    except sqlalchemy.exc.IntegrityError:
        raise UsageError(
            f"A window with the id {window.id} is stored already; give each window a new id."
        ) from None


@operation("GET /monitoring/{endpoint}/windows")
def list_windows(
    connection: Connection,
    endpoint: str,
    since: Moment | None = None,
    page_size: PageSize = PAGE,
    cursor: Cursor | None = None,
) -> Page[WindowRecord]:
    """The endpoint's monitored windows (without their points), oldest first, a page at a
    time (see loopml.store.pages); since: only those that ended after it."""
    return _windows(connection, endpoint, since, page_size, cursor)


@operation("GET /monitoring/{endpoint}/series")
def series(
    connection: Connection,
    endpoint: str,
    metrics: list[str] | None = None,
    since: Moment | None = None,
    page_size: PageSize = PAGE,
    cursor: Cursor | None = None,
) -> Series:
    """The stored points of the endpoint (or of some metrics), oldest first, with the
    windows they were measured in, a page of windows at a time; since: only windows that
    ended after it."""
    windows = _windows(connection, endpoint, since, page_size, cursor)
    ids = [window.id for window in windows.items]
    points = repo.points(connection, endpoint, metrics=metrics, window_ids=ids)
    return Series(points, windows.items, windows.next_cursor)


@operation("GET /monitoring/{endpoint}/rule-alerts")
def open_rule_alerts(connection: Connection, endpoint: str) -> list[AlertRecord]:
    """The endpoint's open alerts raised by alert rules, oldest first."""
    opened = alerts_repo.list_alerts(connection, endpoint, open_only=True)
    return [alert for alert in opened if alert.kind.startswith(PREFIX)]


@operation("POST /monitoring/{endpoint}/verdicts")
def record_verdict(
    connection: Connection,
    endpoint: str,
    rule: RuleName,
    breaching: bool,
    message: Text,
    details: dict[Key, Any],
) -> AlertChange | None:
    """Record a rule's verdict on the endpoint's newest windows: a breach raises the rule's
    alert (with message and details) unless one is open; a rule that holds resolves its open
    alert. Returns what changed, or None."""
    _check_endpoint(endpoint)
    kind, now = PREFIX + rule, time.time()
    opened = alerts_repo.list_alerts(connection, endpoint, open_only=True)
    mine = [alert for alert in opened if alert.kind == kind]
    if breaching and not mine:
        raised = AlertRecord(new_id(), endpoint, kind, message, details, now, None)
        alerts_repo.add_alert(connection, raised)
        return AlertChange("firing", raised)
    if not breaching and mine:
        alerts_repo.resolve_alerts(connection, endpoint, kind, now)
        return AlertChange("resolved", replace(mine[0], resolved_at=now))
    return None


def _windows(
    connection: Connection, endpoint: str, since: float | None, size: int, cursor: str | None
) -> Page[WindowRecord]:
    found = repo.windows(connection, endpoint, since=since, cursor=cursor, size=size)
    return page(found, size, lambda w: (w.end, w.at, w.id))


def _check_endpoint(endpoint: str) -> None:
    if not 0 < len(endpoint) <= MAX_KEY_LENGTH or "\x00" in endpoint:
        raise InvalidValueError(
            f"An endpoint is named by 1 to {MAX_KEY_LENGTH} characters without NUL, "
            f"not {endpoint!r}."
        )


def _check_window(endpoint: str, window: WindowRecord) -> None:
    """Refuse a window the monitor would not make, saying everything that is wrong."""
    _check_endpoint(endpoint)
    problems = [
        f"{what} is {value!r}"
        for what, value, fine in (
            ("its endpoint", window.endpoint, window.endpoint == endpoint),
            ("its id", window.id, len(window.id) == 16 and HEX.match(window.id)),
            ("its start", window.start, math.isfinite(window.start)),
            ("its end", window.end, math.isfinite(window.end) and window.end >= window.start),
            ("its time", window.at, math.isfinite(window.at)),
            ("its label", window.label, window.label is None or _text(window.label)),
            ("its rows", window.rows, 0 <= window.rows <= INT64[1]),
            ("its status", window.status, window.status in STATUSES),
            ("its message", window.message, window.message is None or "\x00" not in window.message),
            ("its report", window.report_digest, _digest(window.report_digest)),
            ("a version", window.versions, all(0 <= v <= INT64[1] for v in window.versions)),
        )
        if not fine
    ]
    seen = set()
    for point in window.points:
        if not (0 < len(point.metric) <= METRIC_LENGTH and "\x00" not in point.metric):
            problems.append(f"a point's metric is {point.metric!r}")
        if not _text(point.key, empty=True):
            problems.append(f"a point's key is {point.key!r}")
        if (point.metric, point.key) in seen:
            problems.append(f"{point.metric}[{point.key!r}] is given twice")
        seen.add((point.metric, point.key))
    if problems:
        raise InvalidValueError(
            f"Window {window.id!r} of {endpoint!r} cannot be stored: {'; '.join(problems)}. "
            f"A window has a 16-hex-digit id, finite times (end not before start), a status "
            f"of {', '.join(STATUSES)} and one point per metric and key."
        )


def _text(value: str, empty: bool = False) -> bool:
    return (empty or bool(value)) and len(value) <= MAX_KEY_LENGTH and "\x00" not in value


def _digest(value: str | None) -> bool:
    return value is None or (len(value) == 64 and bool(HEX.match(value)))
