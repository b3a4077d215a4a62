"""Reading data as a stream of Arrow record batches, whatever it comes as.

Sources: a pandas DataFrame, an Arrow table or record batch reader, an iterable of record
batches, or a path to a Parquet or CSV file (``.csv``, ``.tsv``, optionally ``.gz``, ``.bz2``
or ``.zip``). Files are streamed: memory stays bounded however large they are. Batches hold
up to ``BATCH_ROWS`` rows (131,072; Parquet row groups are split into pieces of about that
size, read from the file a megabyte at a time, and small batches are joined), with string
columns dictionary-encoded where the file allows it, which makes counting categories cheap.
Snapshots are written in row groups of exactly ``ROW_GROUP_ROWS`` (``rebatch``), so the same
content always gives the same bytes.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from loopml.errors import DataError

BATCH_ROWS = 1 << 17
READ_BUFFER = 1 << 20  # bytes read from a Parquet file at a time, not whole column chunks
ROW_GROUP_ROWS = 1 << 20
CSV_BLOCK_BYTES = 16 << 20  # CSV column types are inferred from the first block
CSV_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": ","}
COMPRESSED = {".gz", ".bz2", ".zip"}
PARQUET_SUFFIXES = {".parquet", ".pq", ".parq"}


Progress = Callable[[int, "int | None"], None]
_progress: ContextVar[Progress | None] = ContextVar("loopml_data_progress", default=None)


@contextmanager
def reporting_progress(callback: Progress) -> Iterator[None]:
    """Call callback(rows_so_far, total_rows_or_None) after each batch any stream yields
    inside the with block (in this context)."""
    token = _progress.set(callback)
    try:
        yield
    finally:
        _progress.reset(token)


@dataclass
class Stream:
    """A schema, a description of where the rows come from, and the batches themselves."""

    schema: pa.Schema
    description: str
    batches: Iterator[pa.RecordBatch]
    total_rows: int | None = None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        callback, rows = _progress.get(), 0
        for batch in self.batches:
            yield batch
            rows += batch.num_rows
            if callback is not None:
                callback(rows, self.total_rows)


def open_stream(source: Any, *, batch_rows: int = BATCH_ROWS) -> Stream:
    """A stream of record batches of about batch_rows rows from any supported source."""
    if isinstance(source, str | Path):
        return _open_path(Path(source).expanduser(), batch_rows)
    if isinstance(source, pd.DataFrame):
        table = _table_from_pandas(source)
        return Stream(
            table.schema, "a pandas DataFrame", iter(table.to_batches(batch_rows)), table.num_rows
        )
    if isinstance(source, pa.Table):
        table = _checked(source.replace_schema_metadata(None), "an Arrow table")
        return Stream(
            table.schema, "an Arrow table", iter(table.to_batches(batch_rows)), table.num_rows
        )
    if isinstance(source, pa.RecordBatch):
        return open_stream(pa.Table.from_batches([source]), batch_rows=batch_rows)
    if isinstance(source, pa.RecordBatchReader):
        return Stream(source.schema, "an Arrow stream", coalesce(source, batch_rows))
    if isinstance(source, Iterable):
        return _open_iterable(source, batch_rows)
    raise DataError(
        f"Cannot read data from a {type(source).__name__}: give a pandas DataFrame, an Arrow "
        "table, or the path of a Parquet or CSV file."
    )


def _table_from_pandas(frame: pd.DataFrame) -> pa.Table:
    names = list(frame.columns)
    if any(not isinstance(name, str) for name in names):
        bad = [name for name in names if not isinstance(name, str)][:5]
        raise DataError(f"Column names must be strings; these are not: {bad}. Rename them.")
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise DataError(f"The DataFrame has duplicate column names: {duplicated}. Rename them.")
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise DataError(
            f"Cannot convert the DataFrame to Arrow: {error}. Give every column one type "
            "(for example cast mixed object columns to str)."
        ) from None
    return _checked(table.replace_schema_metadata(None), "the DataFrame")


def _checked(table: pa.Table, what: str) -> pa.Table:
    names = table.schema.names
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise DataError(f"{what} has duplicate column names: {duplicated}. Rename them.")
    if not names:
        raise DataError(f"{what} has no columns.")
    return table


def _open_iterable(source: Iterable[Any], batch_rows: int) -> Stream:
    iterator = iter(source)
    first = next(iterator, None)
    if first is None:
        raise DataError("The data has no batches, so no columns and no rows.")
    if not isinstance(first, pa.RecordBatch):
        raise DataError(
            f"An iterable source must yield Arrow record batches, not {type(first).__name__}."
        )

    def chained() -> Iterator[pa.RecordBatch]:
        yield first
        yield from iterator

    return Stream(first.schema, "Arrow record batches", coalesce(chained(), batch_rows))


def _open_path(path: Path, batch_rows: int) -> Stream:
    if not path.exists():
        raise DataError(f"No such file: {path}. Check the path.")
    if path.is_dir():
        raise DataError(f"{path} is a folder; give the path of one Parquet or CSV file.")
    suffixes = [s.lower() for s in path.suffixes]
    kind = suffixes[-1] if suffixes else ""
    if kind in COMPRESSED and len(suffixes) > 1:
        kind = suffixes[-2]
    if kind in PARQUET_SUFFIXES:
        return _open_parquet(path, batch_rows)
    if kind in CSV_SUFFIXES:
        return _open_csv(path, CSV_SUFFIXES[kind], batch_rows)
    raise DataError(
        f"Cannot read {path.name}: unsupported file type {''.join(path.suffixes) or '(none)'}. "
        "loopml reads Parquet (.parquet, .pq) and CSV (.csv, .tsv, optionally .gz, .bz2 or "
        ".zip)."
    )


def _open_parquet(path: Path, batch_rows: int) -> Stream:
    try:
        schema = pq.read_schema(path)
        strings = [
            f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
        ]
        # pre_buffer=False: pyarrow would otherwise keep every row group it read in memory
        parquet = pq.ParquetFile(
            path, read_dictionary=strings, pre_buffer=False, buffer_size=READ_BUFFER
        )
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(f"Cannot read {path} as Parquet: {error}.") from None
    size = _batch_size(parquet.metadata, batch_rows)
    batches = _translated(parquet.iter_batches(batch_size=size), path, "Parquet")
    return Stream(
        parquet.schema_arrow,
        str(path.resolve()),
        coalesce(batches, batch_rows),
        parquet.metadata.num_rows,
    )


def _batch_size(metadata: pq.FileMetaData, batch_rows: int) -> int:
    """Row groups up to batch_rows come whole; bigger ones in pieces of batch_rows."""
    if not metadata.num_row_groups:
        return batch_rows
    largest = max(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))
    return min(max(largest, batch_rows // 4), batch_rows)


def _open_csv(path: Path, delimiter: str, batch_rows: int) -> Stream:
    """A CSV file as a stream. A column with no value in the first block (16 MiB) of a file
    that goes on is read as text, so that a value further on does not fail the read."""
    reader = _csv_reader(path, delimiter)
    empty = {f.name: pa.string() for f in reader.schema if pa.types.is_null(f.type)}
    if empty and not _within_first_block(path):
        reader.close()
        reader = _csv_reader(path, delimiter, empty)
    batches = _translated(reader, path, "CSV")
    return Stream(reader.schema, str(path.resolve()), coalesce(batches, batch_rows))


def _csv_reader(
    path: Path, delimiter: str, column_types: dict[str, pa.DataType] | None = None
) -> pa_csv.CSVStreamingReader:
    try:
        return pa_csv.open_csv(
            _csv_handle(path),
            read_options=pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES),
            parse_options=pa_csv.ParseOptions(delimiter=delimiter),
            convert_options=pa_csv.ConvertOptions(
                column_types=column_types,
                strings_can_be_null=True,
                timestamp_parsers=[pa_csv.ISO8601],
            ),
        )
    except (pa.ArrowInvalid, OSError, zipfile.BadZipFile, UnicodeDecodeError) as error:
        raise DataError(f"Cannot read {path} as CSV: {error}.") from None


def _within_first_block(path: Path) -> bool:
    """True when the first block read holds the whole file (only known uncompressed): a
    column without a value there has none at all and keeps the type null."""
    compressed = path.suffix.lower() in COMPRESSED
    return not compressed and path.stat().st_size <= CSV_BLOCK_BYTES


def _csv_handle(path: Path) -> Any:
    if path.suffix.lower() != ".zip":
        return pa.input_stream(str(path), compression="detect")
    archive = zipfile.ZipFile(path)
    members = [m for m in archive.namelist() if not m.endswith("/")]
    if len(members) != 1:
        raise DataError(f"{path} holds {len(members)} files; a zipped CSV must hold exactly one.")
    return io.BufferedReader(archive.open(members[0]))


def _translated(
    batches: Iterable[pa.RecordBatch], path: Path, kind: str
) -> Iterator[pa.RecordBatch]:
    """The batches, with a read error in the middle of the file reported as a DataError.
    (pyarrow decodes with its own threads; a read-ahead thread here only added memory.)"""
    iterator = iter(batches)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError) as error:
            raise DataError(f"Cannot read {path} as {kind}: {error}.") from None
        yield batch


def coalesce(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Batches of at least rows/2 rows (but the last): small ones are joined, big ones pass
    through untouched, so work per batch stays efficient without copying large batches."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if batch.num_rows >= rows // 2:
            if pending:
                yield from _contiguous(pa.Table.from_batches(pending), rows)
                pending, count = [], 0
            yield batch
            continue
        pending.append(batch)
        count += batch.num_rows
        if count >= rows // 2:
            yield from _contiguous(pa.Table.from_batches(pending), rows)
            pending, count = [], 0
    if pending:
        yield from _contiguous(pa.Table.from_batches(pending), rows)


def rebatch(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """The same rows in batches of exactly `rows` rows (the last may be shorter)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if batch.num_rows == rows and not pending:
            yield batch
            continue
        pending.append(batch)
        count += batch.num_rows
        if count < rows:
            continue
        table = pa.Table.from_batches(pending)
        full = (count // rows) * rows
        yield from _contiguous(table.slice(0, full), rows)
        rest = table.slice(full)
        pending = rest.to_batches() if rest.num_rows else []
        count = rest.num_rows
    if count:
        yield from _contiguous(pa.Table.from_batches(pending), rows)


def _contiguous(table: pa.Table, rows: int) -> Iterator[pa.RecordBatch]:
    table = _unify_dictionaries(table).combine_chunks()
    yield from table.to_batches(max_chunksize=rows)


def _unify_dictionaries(table: pa.Table) -> pa.Table:
    if any(pa.types.is_dictionary(f.type) for f in table.schema):
        return table.unify_dictionaries()
    return table


def canonical(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The form snapshots are stored in: plain strings (not dictionaries), no large types."""
    arrays, fields = [], []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        target = canonical_type(field.type)
        if target != field.type:
            column = column.cast(target)
        arrays.append(column)
        fields.append(pa.field(field.name, target))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def canonical_type(arrow_type: pa.DataType) -> pa.DataType:
    """The stored type for an Arrow type."""
    if pa.types.is_dictionary(arrow_type):
        return canonical_type(arrow_type.value_type)
    if pa.types.is_large_string(arrow_type):
        return pa.string()
    if pa.types.is_large_binary(arrow_type):
        return pa.binary()
    return arrow_type
