"""Repository functions of leases: a named piece of work held by one process at a time.

A lease is a row: its holder, a term that grows each time the lease changes hands (a fencing
number), and when it expires. The holder renews it before then; a holder that dies stops
renewing, and the lease passes to the next process that asks once it has expired.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loopml.store.metadata import dialect_insert
from loopml.store.schema import leases


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    name: str
    holder: str
    term: int
    acquired_at: float
    expires_at: float


def acquire(
    connection: Connection, name: str, holder: str, seconds: float, now: float
) -> LeaseRecord | None:
    """Take or renew the lease NAME for ``holder`` until ``now + seconds``; None while another
    holder's lease has not expired. Run in a write transaction."""
    c = leases.c
    connection.execute(
        dialect_insert(connection, leases)
        .values(name=name, holder=holder, term=1, acquired_at=now, expires_at=now + seconds)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    row = connection.execute(sa.select(leases).where(c.name == name).with_for_update()).one()
    if row.holder == holder and row.expires_at >= now:
        connection.execute(leases.update().where(c.name == name).values(expires_at=now + seconds))
        return LeaseRecord(name, holder, row.term, row.acquired_at, now + seconds)
    if row.expires_at >= now:
        return None
    term = row.term + 1
    connection.execute(
        leases.update()
        .where(c.name == name)
        .values(holder=holder, term=term, acquired_at=now, expires_at=now + seconds)
    )
    return LeaseRecord(name, holder, term, now, now + seconds)


def release(connection: Connection, name: str, holder: str) -> None:
    """Give the lease up at once, if ``holder`` holds it."""
    c = leases.c
    connection.execute(
        leases.update().where(c.name == name, c.holder == holder).values(expires_at=0.0)
    )


def holder(connection: Connection, name: str) -> LeaseRecord | None:
    """Who holds the lease NAME (expired or not), if anyone ever took it."""
    row = connection.execute(sa.select(leases).where(leases.c.name == name)).first()
    return LeaseRecord(*row) if row else None
