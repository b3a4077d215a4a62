"""Datasets and snapshots: immutable, content-addressed versions of data, stored as Parquet.

``add`` reads a source once, as a stream: each batch is profiled, optionally checked
against a contract, and written to a Parquet file in a canonical form (plain strings, fixed
row groups, zstd), so the same content always gives the same bytes. The file's sha256 names
the snapshot: adding identical content again returns the existing snapshot.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopml.data import operations as ops
from loopml.data.contract import Contract, load_contract
from loopml.data.io import (
    BATCH_ROWS,
    ROW_GROUP_ROWS,
    canonical,
    canonical_type,
    open_stream,
    rebatch,
)
from loopml.data.operations import NAME as NAME
from loopml.data.operations import check_name, check_same_facts
from loopml.data.profile import Profile
from loopml.data.validate import ValidationReport, Validator
from loopml.errors import ColumnNotFoundError, DataError
from loopml.hashing import sha256_file
from loopml.store.pages import every
from loopml.store.records import DatasetRecord, SnapshotRecord
from loopml.tracking.context import active_run
from loopml.tracking.environment import current_user
from loopml.workspace import Workspace, current_workspace

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
        _linked(self)
        self._check_columns(columns)
        parquet = pq.ParquetFile(self.path())
        yield from parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns)

    def to_arrow(self, columns: list[str] | None = None) -> pa.Table:
        """All rows as an Arrow table."""
        _linked(self)
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
    parent_id = parent.id if parent else None
    existing = ops.find_content(workspace.metadata, name, digest)
    if existing is not None:
        check_same_facts(existing, time_column, parent_id)
        return _linked(Snapshot(existing, workspace, written.validation), "output")
    workspace.artifacts.put_file(written.path)  # bytes first: a record never names missing ones
    run = active_run()
    new = ops.NewSnapshot(
        digest=digest,
        rows=written.rows,
        size=written.path.stat().st_size,
        schema=[ops.Column(f.name, str(f.type)) for f in written.schema],
        profile_digest=workspace.artifacts.put_bytes(written.profile.to_json().encode()),
        source=source,
        created_by=current_user(),
        time_column=time_column,
        parent_id=parent_id,
        run_id=run.id if run is not None and run.workspace is workspace else None,
    )
    record = ops.add_snapshot(workspace.metadata, name, new)
    return _linked(Snapshot(record, workspace, written.validation), "output")


def get(ref: str | Snapshot, *, workspace: Workspace | None = None) -> Snapshot:
    """A snapshot by reference: 'name' (its newest), 'name@id' (any unique prefix), or
    'name@latest'."""
    if isinstance(ref, Snapshot):
        return ref
    workspace = workspace or current_workspace()
    name, _, snapshot = str(ref).partition("@")
    check_name(name)
    return Snapshot(ops.get_snapshot(workspace.metadata, name, snapshot or "latest"), workspace)


def list_datasets(*, workspace: Workspace | None = None) -> list[DatasetRecord]:
    """Every dataset with its number of snapshots and newest snapshot."""
    return list(every(ops.list_datasets, (workspace or current_workspace()).metadata))


def snapshots(name: str, *, workspace: Workspace | None = None) -> list[SnapshotRecord]:
    """Every snapshot of a dataset, newest first."""
    check_name(name)
    return list(every(ops.list_snapshots, (workspace or current_workspace()).metadata, name))


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


def _parent(workspace: Workspace, parent: str | Snapshot | None) -> SnapshotRecord | None:
    if parent is None:
        return None
    return get(parent, workspace=workspace).record


def _linked(snapshot: Snapshot, direction: str = "input") -> Snapshot:
    """The snapshot, recorded as an input or output of the active run of its workspace."""
    run = active_run()
    if run is not None and run.workspace is snapshot.workspace:
        record = snapshot.record
        link = run.link_output if direction == "output" else run.link_input
        link(record.ref, record.digest, "snapshot", record.size, f"snapshot {record.ref}")
    return snapshot
