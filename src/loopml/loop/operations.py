"""The loop operations of the metadata store: the record of the loop's decisions, the leases
its schedulers work under, and where the schedule stands (see loopml.store.operations).

Taking a lease is one operation, judged by the store's transaction and the server's clock,
so of many schedulers that ask at once exactly one holds it.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from pydantic import Field
from sqlalchemy.engine import Connection

from loopml.ids import new_id
from loopml.registry.api import require_model
from loopml.store import leases as leases_repo
from loopml.store import monitoring as repo
from loopml.store.leases import LeaseRecord
from loopml.store.monitoring import DecisionRecord
from loopml.store.operations import operation
from loopml.store.pages import PAGE, Cursor, Page, PageSize, page
from loopml.tracking.operations import NO_NUL, Key, Moment, Name, Text

Action = Annotated[str, Field(min_length=1, max_length=32, pattern=NO_NUL)]
Version = Annotated[int, Field(ge=1, le=2**31 - 1)]
LeaseName = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^/\x00]+$")]
LeaseSeconds = Annotated[float, Field(gt=0, le=366 * 86400, allow_inf_nan=False)]


@operation("GET /loop/decisions/{name}")
def decisions(
    connection: Connection, name: Key, page_size: PageSize = PAGE, cursor: Cursor | None = None
) -> Page[DecisionRecord]:
    """The endpoint's loop decisions, oldest first, a page at a time."""
    found = repo.decisions(connection, name, cursor, page_size)
    return page(found, page_size, lambda d: (d.at, d.id))


@operation("POST /loop/decisions/{name}")
def record_decision(
    connection: Connection,
    name: Key,
    action: Action,
    message: Text,
    version: Version | None = None,
    as_of: Moment | None = None,
    evidence: dict[str, Any] | None = None,
) -> DecisionRecord:
    """Record one decision of the loop, now, with the evidence it was taken on."""
    found = DecisionRecord(
        new_id(), name, time.time(), as_of, action, version, message, evidence or {}
    )
    repo.add_decision(connection, found)
    return found


@operation("POST /loop/leases/{name}")
def acquire_lease(
    connection: Connection, name: LeaseName, holder: Name, seconds: LeaseSeconds
) -> LeaseRecord | None:
    """Take the lease NAME for holder, or renew it, for ``seconds`` from now; None while
    another holder's lease has not expired."""
    return leases_repo.acquire(connection, name, holder, seconds, time.time())


@operation("POST /loop/leases/{name}/release")
def release_lease(connection: Connection, name: LeaseName, holder: Name) -> None:
    """Give the lease NAME up at once, if holder holds it."""
    leases_repo.release(connection, name, holder)


@operation("GET /loop/schedule/{name}")
def last_window_end(connection: Connection, name: Key) -> float | None:
    """When the registered endpoint's last monitored window ended, or None before the first:
    the schedule carries on from there."""
    require_model(connection, name)
    last = repo.latest_window(connection, name)
    return last.end if last else None
