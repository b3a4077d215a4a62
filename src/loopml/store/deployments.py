"""Repository functions of deployments (what serves each endpoint, revised in place) and of
alerts (what went wrong while serving, and when it was resolved)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loopml.store.pages import Sort, ordered
from loopml.store.schema import alerts, deployments, refusals


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    """One endpoint's current deployment: its spec, at a revision that grows with each change."""

    endpoint: str
    revision: int
    spec: dict[str, Any]
    updated_by: str
    updated_at: float


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One alert raised for an endpoint."""

    id: str
    endpoint: str
    kind: str
    message: str
    details: dict[str, Any]
    at: float
    resolved_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "kind": self.kind,
            "message": self.message,
            "details": self.details,
            "at": self.at,
            "resolved_at": self.resolved_at,
        }


@dataclass(frozen=True, slots=True)
class RefusalRecord:
    """A version a server of the endpoint failed to load (in ``role``): no server of the
    endpoint serves it until ``retry_at``; they serve ``instead`` (the version the failing
    server kept) meanwhile."""

    endpoint: str
    version: int
    role: str
    instead: int | None
    failures: int
    retry_at: float
    reason: str
    at: float


def deployment(connection: Connection, endpoint: str) -> DeploymentRecord | None:
    """The endpoint's deployment, if one was ever set."""
    c = deployments.c
    row = connection.execute(
        sa.select(c.endpoint, c.revision, c.spec, c.updated_by, c.updated_at).where(
            c.endpoint == endpoint
        )
    ).first()
    if row is None:
        return None
    return DeploymentRecord(row.endpoint, row.revision, json.loads(row.spec), *row[3:])


def save_deployment(
    connection: Connection,
    endpoint: str,
    model: str,
    spec: Mapping[str, Any],
    actor: str,
    now: float,
    expected: int | None = None,
) -> int | None:
    """Store a new revision of the endpoint's spec; returns it, or None when ``expected`` is
    given and the stored revision moved on since (someone else changed it first)."""
    c = deployments.c
    current = connection.execute(
        sa.select(c.revision).where(c.endpoint == endpoint).with_for_update()
    ).scalar()
    if expected is not None and (current or 0) != expected:  # 0: never deployed
        return None
    values = {"spec": json.dumps(dict(spec), sort_keys=True), "updated_by": actor}
    if current is None:
        connection.execute(
            deployments.insert().values(
                endpoint=endpoint, model_id=model, revision=1, updated_at=now, **values
            )
        )
        return 1
    connection.execute(
        deployments.update()
        .where(c.endpoint == endpoint)
        .values(revision=current + 1, updated_at=now, **values)
    )
    return current + 1


def add_alert(connection: Connection, alert: AlertRecord) -> None:
    """Record an alert."""
    values = alert.to_dict()
    values["details"] = json.dumps(values["details"], sort_keys=True, default=str)
    connection.execute(alerts.insert().values(**values))


def list_alerts(
    connection: Connection,
    endpoint: str,
    *,
    open_only: bool = False,
    cursor: str | None = None,
    size: int | None = None,
) -> list[AlertRecord]:
    """An endpoint's alerts, oldest first: every one, or a page of size after the cursor."""
    c = alerts.c
    query = sa.select(alerts).where(c.endpoint == endpoint)
    if open_only:
        query = query.where(c.resolved_at.is_(None))
    query = ordered(query, [Sort(c.at), Sort(c.id)], cursor, size)
    return [
        AlertRecord(
            row.id,
            row.endpoint,
            row.kind,
            row.message,
            json.loads(row.details),
            row.at,
            row.resolved_at,
        )
        for row in connection.execute(query)
    ]


def resolve_alerts(connection: Connection, endpoint: str, kind: str, now: float) -> int:
    """Mark an endpoint's open alerts of one kind resolved; returns how many."""
    c = alerts.c
    done = connection.execute(
        alerts.update()
        .where(c.endpoint == endpoint, c.kind == kind, c.resolved_at.is_(None))
        .values(resolved_at=now)
    )
    return done.rowcount


def refused(connection: Connection, endpoint: str) -> dict[int, RefusalRecord]:
    """The endpoint's refused versions, by version."""
    rows = connection.execute(sa.select(refusals).where(refusals.c.endpoint == endpoint))
    return {row.version: RefusalRecord(*row) for row in rows}


def refuse(
    connection: Connection,
    endpoint: str,
    version: int,
    role: str,
    instead: int | None,
    reason: str,
    now: float,
    wait: Callable[[int], float],
) -> RefusalRecord:
    """Record one more failure to load ``version``; the next try waits ``wait(failures)``
    seconds. Run in a write transaction that holds the model's lock."""
    c = refusals.c
    where = (c.endpoint == endpoint) & (c.version == version)
    failures = (connection.execute(sa.select(c.failures).where(where)).scalar() or 0) + 1
    record = RefusalRecord(
        endpoint, version, role, instead, failures, now + wait(failures), reason, now
    )
    connection.execute(refusals.delete().where(where))
    connection.execute(
        refusals.insert().values(**{k: getattr(record, k) for k in record.__slots__})
    )
    return record


def clear_refusal(connection: Connection, endpoint: str, version: int) -> None:
    """A refused version loaded again: every server may serve it."""
    c = refusals.c
    connection.execute(refusals.delete().where(c.endpoint == endpoint, c.version == version))
