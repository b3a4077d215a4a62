"""Repository functions for datasets and their snapshots."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loopml.errors import DatasetNotFoundError, SnapshotNotFoundError
from loopml.ids import looks_like_id_prefix, new_id
from loopml.store.metadata import insert_ignore
from loopml.store.pages import Sort, ordered
from loopml.store.records import DatasetRecord, SnapshotRecord
from loopml.store.schema import datasets, snapshots

NEWEST_FIRST = (Sort(snapshots.c.created_at, descending=True), Sort(snapshots.c.id))


def get_or_create(connection: Connection, name: str, now: float) -> str:
    """The id of the dataset called name, created if it does not exist."""
    insert_ignore(
        connection, datasets, [{"id": new_id(), "name": name, "created_at": now}], ["name"]
    )
    return connection.execute(sa.select(datasets.c.id).where(datasets.c.name == name)).scalar_one()


def require(connection: Connection, name: str) -> str:
    """The id of the dataset called name; a clear error listing the known ones if missing."""
    found = connection.execute(sa.select(datasets.c.id).where(datasets.c.name == name)).scalar()
    if found is not None:
        return found
    known = ", ".join(repr(d.name) for d in list_all(connection)[:20]) or "none yet"
    raise DatasetNotFoundError(
        f"No dataset is called {name!r}. Known datasets: {known}. "
        "Add one with 'loopml data add NAME FILE'."
    )


def list_all(
    connection: Connection, cursor: str | None = None, size: int | None = None
) -> list[DatasetRecord]:
    """Datasets with their number of snapshots and newest snapshot, by name: every one, or a
    page of size after the cursor (see pages)."""
    newest = (
        sa.select(
            snapshots.c.dataset_id,
            snapshots.c.id,
            snapshots.c.rows,
            snapshots.c.created_at,
            sa.func.count().over(partition_by=snapshots.c.dataset_id).label("count"),
            sa.func.row_number()
            .over(
                partition_by=snapshots.c.dataset_id,
                order_by=[sort.clause for sort in NEWEST_FIRST],
            )
            .label("rank"),
        )
    ).subquery()
    query = sa.select(
        datasets.c.id,
        datasets.c.name,
        datasets.c.created_at,
        sa.func.coalesce(newest.c["count"], 0),
        newest.c.id,
        newest.c.rows,
        newest.c.created_at,
    ).select_from(
        datasets.outerjoin(
            newest, sa.and_(newest.c.dataset_id == datasets.c.id, newest.c.rank == 1)
        )
    )
    query = ordered(query, [Sort(datasets.c.name)], cursor, size)
    return [DatasetRecord(*row) for row in connection.execute(query)]


def find_by_digest(connection: Connection, dataset_id: str, digest: str) -> SnapshotRecord | None:
    """The dataset's snapshot with this content, if it has one."""
    query = _select().where(snapshots.c.dataset_id == dataset_id, snapshots.c.digest == digest)
    row = connection.execute(query).mappings().first()
    return None if row is None else _record(row)


def insert(connection: Connection, row: Mapping[str, Any]) -> None:
    """Insert a snapshot row."""
    values = dict(row)
    values["schema"] = json.dumps(values["schema"])
    connection.execute(snapshots.insert(), [values])


def resolve(connection: Connection, name: str, snapshot: str | None) -> SnapshotRecord:
    """A snapshot by dataset name and id prefix; the newest one when snapshot is None or
    'latest'."""
    dataset_id = require(connection, name)
    query = _select().where(snapshots.c.dataset_id == dataset_id)
    if snapshot in (None, "latest"):
        row = (
            connection.execute(query.order_by(*(sort.clause for sort in NEWEST_FIRST)).limit(1))
            .mappings()
            .first()
        )
        if row is None:
            raise SnapshotNotFoundError(f"Dataset {name!r} has no snapshots yet.")
        return _record(row)
    prefix = snapshot.strip().lower()
    if not looks_like_id_prefix(prefix):
        raise SnapshotNotFoundError(
            f"{snapshot!r} is not a snapshot id: ids are up to 16 hex characters. "
            f"Run 'loopml data show {name}' to see its snapshots."
        )
    rows = (
        connection.execute(query.where(snapshots.c.id.startswith(prefix, autoescape=True)).limit(6))
        .mappings()
        .all()
    )
    if len(rows) == 1:
        return _record(rows[0])
    if not rows:
        known = ", ".join(s.id for s in for_dataset(connection, dataset_id)[:10]) or "none"
        raise SnapshotNotFoundError(
            f"Dataset {name!r} has no snapshot {snapshot!r}. Known snapshots: {known}. "
            f"Run 'loopml data show {name}' to see them."
        )
    raise SnapshotNotFoundError(
        f"The id prefix {snapshot!r} matches several snapshots of {name!r}; give more characters."
    )


def by_id(connection: Connection, snapshot_id: str) -> SnapshotRecord | None:
    """A snapshot by its full id."""
    row = connection.execute(_select().where(snapshots.c.id == snapshot_id)).mappings().first()
    return None if row is None else _record(row)


def for_dataset(
    connection: Connection, dataset_id: str, cursor: str | None = None, size: int | None = None
) -> list[SnapshotRecord]:
    """A dataset's snapshots, newest first: every one, or a page of size after the cursor."""
    query = ordered(
        _select().where(snapshots.c.dataset_id == dataset_id), NEWEST_FIRST, cursor, size
    )
    return [_record(row) for row in connection.execute(query).mappings()]


def children(connection: Connection, snapshot_id: str) -> list[SnapshotRecord]:
    """Snapshots derived from a snapshot."""
    query = _select().where(snapshots.c.parent_id == snapshot_id).order_by(snapshots.c.created_at)
    return [_record(row) for row in connection.execute(query).mappings()]


def _select() -> sa.Select[Any]:
    columns = [c for c in snapshots.c if c.name != "dataset_id"]
    return sa.select(*columns, datasets.c.name.label("dataset")).select_from(
        snapshots.join(datasets, snapshots.c.dataset_id == datasets.c.id)
    )


def _record(row: Mapping[str, Any]) -> SnapshotRecord:
    values = dict(row)
    values["schema"] = json.loads(values["schema"])
    return SnapshotRecord(**values)
