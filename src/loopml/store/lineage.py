"""Repository functions for the artifacts runs wrote and read, linked by content hash."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loopml.store.pages import Sort, ordered
from loopml.store.records import ArtifactRecord
from loopml.store.schema import run_artifacts


def find(connection: Connection, run_id: str, direction: str, name: str) -> ArtifactRecord | None:
    """The artifact a run linked under a name, or None."""
    c = run_artifacts.c
    query = sa.select(run_artifacts).where(
        c.run_id == run_id, c.direction == direction, c.name == name
    )
    row = connection.execute(query).first()
    return None if row is None else ArtifactRecord(*row)


def link(connection: Connection, row: Mapping[str, Any]) -> None:
    """Record that a run wrote or read an artifact."""
    connection.execute(run_artifacts.insert(), [dict(row)])


def for_run(
    connection: Connection, run_id: str, cursor: str | None = None, size: int | None = None
) -> list[ArtifactRecord]:
    """What a run wrote or read, outputs first, then inputs, by name: every artifact, or a
    page of size after the cursor (see pages)."""
    c = run_artifacts.c
    order = [Sort(c.direction, descending=True), Sort(c.name)]
    query = ordered(sa.select(run_artifacts).where(c.run_id == run_id), order, cursor, size)
    return [ArtifactRecord(*row) for row in connection.execute(query)]


def by_digest(connection: Connection, digest: str, direction: str) -> list[ArtifactRecord]:
    """Every run that wrote (direction 'output') or read ('input') content with this hash."""
    c = run_artifacts.c
    query = (
        sa.select(run_artifacts)
        .where(c.digest == digest, c.direction == direction)
        .order_by(c.created_at)
    )
    return [ArtifactRecord(*row) for row in connection.execute(query)]
