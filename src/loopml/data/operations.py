"""The data operations of the metadata store: datasets and their snapshots, each one unit of
work (see loopml.store.operations).

Adding a snapshot takes two: the SDK asks whether the dataset already holds the content (so
identical data is not uploaded again), stores the bytes, then records the snapshot, which
creates the dataset on first use. What a snapshot records is checked here as the SDK checks
it, so a caller of the HTTP API cannot store what ``loopml.data.add`` would refuse.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field
from sqlalchemy.engine import Connection

from loopml.errors import DatasetNotFoundError, SnapshotNotFoundError, UsageError
from loopml.store import datasets as datasets_repo
from loopml.store import runs as runs_repo
from loopml.store.operations import current_actor, operation
from loopml.store.pages import PAGE, Cursor, Page, PageSize, page
from loopml.store.records import DatasetRecord, SnapshotRecord
from loopml.tracking.operations import Key, Name, RunId, Text

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
Digest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
SnapshotId = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
Count = Annotated[int, Field(ge=0, le=2**63 - 1)]


@dataclass(frozen=True)
class Column:
    """A column of a snapshot: its name and Arrow type."""

    name: Key
    type: Text


@dataclass(frozen=True)
class NewSnapshot:
    """What a snapshot records: its content (stored first), its columns in order, where it
    came from, and who added it."""

    digest: Digest
    rows: Annotated[int, Field(ge=1, le=2**63 - 1)]
    size: Count
    schema: Annotated[list[Column], Field(min_length=1)]
    profile_digest: Digest
    source: Text
    created_by: Name
    time_column: Key | None = None
    parent_id: SnapshotId | None = None
    run_id: RunId | None = None


@operation("GET /datasets")
def list_datasets(
    connection: Connection, page_size: PageSize = PAGE, cursor: Cursor | None = None
) -> Page[DatasetRecord]:
    """The datasets with their number of snapshots and newest snapshot, by name, a page at a
    time (see loopml.store.pages)."""
    found = datasets_repo.list_all(connection, cursor, page_size)
    return page(found, page_size, lambda d: (d.name,))


@operation("GET /datasets/{name}/snapshots")
def list_snapshots(
    connection: Connection, name: str, page_size: PageSize = PAGE, cursor: Cursor | None = None
) -> Page[SnapshotRecord]:
    """A dataset's snapshots, newest first, a page at a time."""
    dataset_id = datasets_repo.require(connection, name)
    found = datasets_repo.for_dataset(connection, dataset_id, cursor, page_size)
    return page(found, page_size, lambda s: (s.created_at, s.id))


@operation("GET /datasets/{name}/snapshots/{snapshot}")
def get_snapshot(connection: Connection, name: str, snapshot: str = "latest") -> SnapshotRecord:
    """A snapshot of a dataset by a unique prefix of its id, or its newest ('latest')."""
    return datasets_repo.resolve(connection, name, snapshot)


@operation("GET /datasets/{name}/digests/{digest}")
def find_content(connection: Connection, name: str, digest: str) -> SnapshotRecord | None:
    """The dataset's snapshot whose Parquet file has this sha256, or None (also when there is
    no such dataset yet)."""
    try:
        dataset_id = datasets_repo.require(connection, name)
    except DatasetNotFoundError:
        return None
    return datasets_repo.find_by_digest(connection, dataset_id, digest)


@operation("POST /datasets/{name}/snapshots")
def add_snapshot(connection: Connection, name: str, new: NewSnapshot) -> SnapshotRecord:
    """Record a snapshot of the dataset (created on first use) whose bytes are stored; the
    same content again returns the snapshot that holds it, whose facts cannot change."""
    check_name(name)
    _check(connection, new)
    dataset_id = datasets_repo.get_or_create(connection, name, time.time())
    existing = datasets_repo.find_by_digest(connection, dataset_id, new.digest)
    if existing is not None:
        check_same_facts(existing, new.time_column, new.parent_id)
        return existing
    snapshot_id = hashlib.sha256(f"{dataset_id}:{new.digest}".encode()).hexdigest()[:16]
    row = {**vars(new), "id": snapshot_id, "dataset_id": dataset_id, "created_at": time.time()}
    row["schema"] = [{"name": column.name, "type": column.type} for column in new.schema]
    row["created_by"] = current_actor(new.created_by)
    datasets_repo.insert(connection, row)
    return datasets_repo.by_id(connection, snapshot_id)  # type: ignore[return-value]


def check_name(name: str) -> None:
    """Dataset names: letters, digits, '_', '-' and '.', starting with a letter or digit."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UsageError(
            f"{name!r} is not a valid dataset name: use up to 128 letters, digits, '_', '-' "
            "or '.', starting with a letter or digit."
        )


def check_same_facts(record: SnapshotRecord, time_column: str | None, parent: str | None) -> None:
    """The snapshot that already holds some content keeps the facts recorded with it."""
    for what, given, stored in (
        ("time column", time_column, record.time_column),
        ("parent", parent, record.parent_id),
    ):
        if given is not None and given != stored:
            raise UsageError(
                f"{record.ref} already holds this content, with {what} {stored or 'none'}; "
                f"snapshots are immutable, so it cannot become {given}. Add the data under "
                "another dataset name to record different facts."
            )


def _check(connection: Connection, new: NewSnapshot) -> None:
    """The time column is a column, and the parent snapshot and the run exist."""
    columns = [column.name for column in new.schema]
    if new.time_column is not None and new.time_column not in columns:
        raise UsageError(
            f"The time column {new.time_column!r} is not a column of the snapshot: "
            f"{', '.join(map(repr, columns))}."
        )
    if new.parent_id is not None and datasets_repo.by_id(connection, new.parent_id) is None:
        raise SnapshotNotFoundError(f"No snapshot has the id {new.parent_id} to be a parent.")
    if new.run_id is not None:
        runs_repo.resolve_id(connection, new.run_id)
