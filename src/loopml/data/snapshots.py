"""Datasets and snapshots: immutable, content-addressed versions of data, stored as Parquet.

``add`` reads a source once, as a stream: each batch is profiled, optionally checked
against a contract, and written to a Parquet file in a canonical form (plain strings, fixed
row groups, zstd), so the same content always gives the same bytes. The file's sha256 names
the snapshot: adding identical content again returns the existing snapshot.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopml.data.contract import Contract, load_contract
from loopml.data.io import (
    BATCH_ROWS,
    ROW_GROUP_ROWS,
    canonical,
    canonical_type,
    open_stream,
    rebatch,
)
from loopml.data.profile import Profile
from loopml.data.validate import ValidationReport, Validator
from loopml.errors import ColumnNotFoundError, DataError, UsageError
from loopml.hashing import sha256_file
from loopml.store import datasets as datasets_repo
from loopml.store.records import DatasetRecord, SnapshotRecord
from loopml.tracking.context import active_run
from loopml.tracking.environment import current_user
from loopml.workspace import Workspace, current_workspace

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "write_statistics": True}


@dataclass(frozen=True)
class Snapshot:
    """A stored snapshot, with ways to read it back (every read verifies its hash)."""

    record: SnapshotRecord
    workspace: Workspace
    validation: ValidationReport | None = None

    def __getattr__(self, name: str) -> Any:  # id, dataset, rows, digest, schema, ...
        if name.startswith("__") or name == "record":  # pickle probes before fields exist
            raise AttributeError(name)
        return getattr(self.record, name)

    def __repr__(self) -> str:
        return f"Snapshot({self.record.ref!r}, rows={self.record.rows})"

    @property
    def ref(self) -> str:
        return self.record.ref

    def path(self) -> Path:
        """A local, verified Parquet file with the snapshot's rows."""
        return local_copy(self.workspace, self.record.digest)

    def batches(self, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        """The rows as record batches, streamed (memory stays bounded)."""
        _link_input(self)
        self._check_columns(columns)
        parquet = pq.ParquetFile(self.path())
        yield from parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns)

    def to_arrow(self, columns: list[str] | None = None) -> pa.Table:
        """All rows as an Arrow table."""
        _link_input(self)
        self._check_columns(columns)
        return pq.read_table(self.path(), columns=columns)

    def to_pandas(self, columns: list[str] | None = None) -> pd.DataFrame:
        """All rows as a pandas DataFrame."""
        return self.to_arrow(columns).to_pandas()

    def profile(self) -> Profile:
        """The profile computed when the snapshot was added."""
        return Profile.from_json(self.workspace.artifacts.get_bytes(self.record.profile_digest))

    def _check_columns(self, columns: list[str] | None) -> None:
        missing = [c for c in columns or [] if c not in self.record.columns]
        if missing:
            raise ColumnNotFoundError(
                f"{self.ref} has no column {missing[0]!r}. Its columns: "
                f"{', '.join(self.record.columns)}."
            )


def add(
    name: str,
    source: Any,
    *,
    time_column: str | None = None,
    parent: str | Snapshot | None = None,
    contract: str | Path | Contract | None = None,
    description: str | None = None,
    workspace: Workspace | None = None,
) -> Snapshot:
    """Store data as a snapshot of the dataset `name` (created on first use).

    source: a DataFrame, an Arrow table, or a Parquet or CSV path. Identical content returns
    the existing snapshot. With a contract the data is validated in the same pass; the report
    is in ``snapshot.validation`` (the snapshot is stored either way). description: where the
    rows come from, recorded as the snapshot's source (the path or the kind of object by
    default).
    """
    workspace = workspace or current_workspace()
    check_name(name)
    parent_record = _parent(workspace, parent)
    rules = load_contract(contract) if contract is not None else None
    stream = open_stream(source)
    if time_column is not None:
        _check_time_column(time_column, stream.schema)
    with tempfile.TemporaryDirectory(prefix="loopml-add-") as scratch:
        written = _write(stream, Path(scratch) / "data.parquet", rules)
        source_text = description or stream.description
        return _commit(workspace, name, written, source_text, time_column, parent_record)


def _check_time_column(column: str, schema: pa.Schema) -> None:
    """The time column is in the data and holds timestamps or dates; checked before storing."""
    if column not in schema.names:
        raise ColumnNotFoundError(
            f"The time column {column!r} is not in the data. Its columns: "
            f"{', '.join(schema.names)}."
        )
    kind = schema.field(column).type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        fix = (
            f"parse it to a timestamp first, e.g. pandas.to_datetime(frame[{column!r}], "
            f"unit='s') for seconds since 1970, or pandas.to_datetime(frame[{column!r}]"
            ".astype(str), format='%Y%m%d') for numbers like 20240131"
        )
    elif pa.types.is_null(kind):
        fix = "it has no values; fill it in"
    else:
        fix = (
            "parse it to a timestamp first with pandas.to_datetime (in a CSV file, ISO dates "
            "and times such as 2024-01-31 or 2024-01-31T05:00:00Z are read as timestamps)"
        )
    raise DataError(
        f"The time column {column!r} holds {canonical_type(kind)}, not timestamps or dates: "
        f"{fix}; or add "
        "the data without a time column."
    )


@dataclass
class _Written:
    path: Path
    rows: int
    schema: pa.Schema
    profile: Profile
    validation: ValidationReport | None


def _write(stream: Any, path: Path, contract: Contract | None) -> _Written:
    schema = pa.schema([pa.field(f.name, canonical_type(f.type)) for f in stream.schema])
    profile = Profile()
    validator = Validator(contract) if contract is not None else None
    rows = 0
    with pq.ParquetWriter(path, schema, **PARQUET_OPTIONS) as writer:
        for batch in rebatch(stream, ROW_GROUP_ROWS):  # fixed row groups: same content, bytes
            profile.partial_fit(batch)
            if validator is not None:
                validator.check(batch, profile)
            writer.write_batch(canonical(batch), row_group_size=ROW_GROUP_ROWS)
            rows += batch.num_rows
    if not rows:
        raise DataError(f"{stream.description} has no rows; a snapshot needs at least one.")
    report = validator.finish() if validator is not None else None
    return _Written(path, rows, schema, profile, report)


def _commit(
    workspace: Workspace,
    name: str,
    written: _Written,
    source: str,
    time_column: str | None,
    parent: SnapshotRecord | None,
) -> Snapshot:
    digest = sha256_file(written.path)
    with workspace.metadata.write() as connection:
        dataset_id = datasets_repo.get_or_create(connection, name, time.time())
        existing = datasets_repo.find_by_digest(connection, dataset_id, digest)
    if existing is not None:
        return _existing(workspace, existing, written, time_column, parent)
    workspace.artifacts.put_file(written.path)
    profile_digest = workspace.artifacts.put_bytes(written.profile.to_json().encode())
    run = active_run()
    record_id = hashlib.sha256(f"{dataset_id}:{digest}".encode()).hexdigest()[:16]
    row = {
        "id": record_id,
        "dataset_id": dataset_id,
        "digest": digest,
        "rows": written.rows,
        "size": written.path.stat().st_size,
        "schema": [{"name": f.name, "type": str(f.type)} for f in written.schema],
        "profile_digest": profile_digest,
        "time_column": time_column,
        "source": source,
        "parent_id": parent.id if parent else None,
        "run_id": run.id if run is not None and run.workspace is workspace else None,
        "created_by": current_user(),
        "created_at": time.time(),
    }
    with workspace.metadata.write() as connection:
        found = datasets_repo.find_by_digest(connection, dataset_id, digest)
        if found is None:
            datasets_repo.insert(connection, row)
            found = datasets_repo.by_id(connection, record_id)
    snapshot = Snapshot(found, workspace, written.validation)  # type: ignore[arg-type]
    if row["run_id"] is not None and run is not None:
        run.link_output(snapshot.ref, digest, "snapshot", row["size"], f"snapshot {snapshot.ref}")
    return snapshot


def _existing(
    workspace: Workspace,
    record: SnapshotRecord,
    written: _Written,
    time_column: str | None,
    parent: SnapshotRecord | None,
) -> Snapshot:
    """The snapshot that already holds this content; its recorded facts cannot change."""
    for what, given, stored in (
        ("time column", time_column, record.time_column),
        ("parent", parent.id if parent else None, record.parent_id),
    ):
        if given is not None and given != stored:
            raise UsageError(
                f"{record.ref} already holds this content, with {what} {stored or 'none'}; "
                f"snapshots are immutable, so it cannot become {given}. Add the data under "
                "another dataset name to record different facts."
            )
    snapshot = Snapshot(record, workspace, written.validation)
    run = active_run()
    if run is not None and run.workspace is workspace:
        run.link_output(
            record.ref, record.digest, "snapshot", record.size, f"snapshot {record.ref}"
        )
    return snapshot


def get(ref: str | Snapshot, *, workspace: Workspace | None = None) -> Snapshot:
    """A snapshot by reference: 'name' (its newest), 'name@id' (any unique prefix), or
    'name@latest'."""
    if isinstance(ref, Snapshot):
        return ref
    workspace = workspace or current_workspace()
    name, _, snapshot = str(ref).partition("@")
    with workspace.metadata.read() as connection:
        return Snapshot(datasets_repo.resolve(connection, name, snapshot or None), workspace)


def list_datasets(*, workspace: Workspace | None = None) -> list[DatasetRecord]:
    """Every dataset with its number of snapshots and newest snapshot."""
    workspace = workspace or current_workspace()
    with workspace.metadata.read() as connection:
        return datasets_repo.list_all(connection)


def snapshots(name: str, *, workspace: Workspace | None = None) -> list[SnapshotRecord]:
    """Every snapshot of a dataset, newest first."""
    workspace = workspace or current_workspace()
    with workspace.metadata.read() as connection:
        return datasets_repo.for_dataset(connection, datasets_repo.require(connection, name))


def load(
    ref: str | Snapshot, columns: list[str] | None = None, *, workspace: Workspace | None = None
) -> pd.DataFrame:
    """A snapshot's rows as a pandas DataFrame (the active run records that it read it)."""
    return get(ref, workspace=workspace).to_pandas(columns)


def local_copy(workspace: Workspace, digest: str) -> Path:
    """A verified local copy of a stored object, cached in the workspace home."""
    cache = workspace.home / "cache" / "objects"
    target = cache / digest
    if target.exists():
        if sha256_file(target) == digest:
            return target
        target.unlink()
    return workspace.artifacts.get_file(digest, target)


def check_name(name: str) -> None:
    """Dataset names: letters, digits, '_', '-' and '.', starting with a letter or digit."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UsageError(
            f"{name!r} is not a valid dataset name: use up to 128 letters, digits, '_', '-' "
            "or '.', starting with a letter or digit."
        )


def _parent(workspace: Workspace, parent: str | Snapshot | None) -> SnapshotRecord | None:
    if parent is None:
        return None
    return get(parent, workspace=workspace).record


def _link_input(snapshot: Snapshot) -> None:
    run = active_run()
    if run is not None and run.workspace is snapshot.workspace:
        record = snapshot.record
        run.link_input(record.ref, record.digest, "snapshot", record.size, f"snapshot {record.ref}")
