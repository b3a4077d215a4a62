"""Batch scoring: a registered version over a Parquet or CSV file, in chunks, with bounded
memory.

Each chunk is checked against the model's contract; rows that break a row-level rule go to a
quarantine file with their reasons, the rest are scored. The output holds the input's columns
plus ``prediction_id``, ``score`` and ``label``. Every scored row is logged to the prediction
log, in the same layout as the server's (role and dialect ``batch``), written straight into
Parquet partitions. With an executor (``process:N``, ``dask``), row groups of a Parquet input
are scored in parallel, each into a part file, and the parts are joined in order.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loopml.data.io import open_stream
from loopml.data.validate import REASON_COLUMN, Validator
from loopml.errors import DataError, UsageError
from loopml.events.log import write_partition
from loopml.ids import new_event_id, new_id
from loopml.serving.model import ServedModel, load_served
from loopml.workspace import Workspace, current_workspace

CHUNK_ROWS = 1 << 18
OUTPUT_COLUMNS = ("prediction_id", "score", "label")


@dataclass
class BatchResult:
    """What a batch scoring job did."""

    ref: str
    job: str
    rows: int
    scored: int
    quarantined: int
    output: str
    quarantine: str | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class _Job:
    """What every chunk of a job shares; pickled to executor workers."""

    id: str
    ref: str
    source: str
    chunk_rows: int
    log: bool
    workspace: Workspace


def predict_batch(
    ref: str,
    source: str | Path,
    destination: str | Path,
    *,
    chunk_rows: int = CHUNK_ROWS,
    quarantine: str | Path | None = None,
    executor: Any = None,
    log: bool = True,
    overwrite: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
    workspace: Workspace | None = None,
) -> BatchResult:
    """Score a file with a registered version (NAME@ALIAS, NAME@N) into a Parquet file.

    quarantine: where rows that break the contract go (default: beside the output, as
    ``<output>.quarantine.parquet``, written only when there are such rows). executor: None
    scores in this process; 'process:N' or 'dask[://address]' scores row groups in parallel.
    progress(rows_done, total_rows) is called after each chunk.
    """
    workspace = workspace or current_workspace()
    started = time.perf_counter()
    if chunk_rows < 1:
        raise UsageError(f"chunk_rows must be at least 1, not {chunk_rows}.")
    destination = Path(destination)
    aside = Path(quarantine) if quarantine else destination.with_suffix(".quarantine.parquet")
    _check_outputs(Path(source), destination, aside, overwrite)
    served = load_served(ref, workspace)
    job = _Job(new_id(), served.record.ref, str(source), chunk_rows, log, workspace)
    writers = _Writers(destination, aside)
    if executor is None or executor == "inline":
        stream = open_stream(source, batch_rows=chunk_rows)
        rows, quarantined = _score(served, job, stream, 0, writers, progress, stream.total_rows)
    else:
        rows, quarantined = _score_parallel(job, writers, executor, progress)
    if rows == 0:
        raise DataError(f"{source} holds no rows to score.")
    return BatchResult(
        served.record.ref,
        job.id,
        rows,
        rows - quarantined,
        quarantined,
        str(destination),
        str(aside) if quarantined else None,
        time.perf_counter() - started,
    )


def _check_outputs(source: Path, destination: Path, aside: Path, overwrite: bool) -> None:
    if destination.resolve() == source.resolve():
        raise UsageError("The output would overwrite the input; give another output path.")
    for path in (destination, aside):
        if path.exists() and not overwrite:
            raise UsageError(f"{path} exists already; remove it or pass --force to replace it.")
    if not destination.parent.exists():
        raise UsageError(f"The output's folder {destination.parent} does not exist.")


class _Scorer:
    """Scores chunks of one file: validate, predict, log."""

    def __init__(self, served: ServedModel, job: _Job) -> None:
        self.served, self.job = served, job
        contract = served.contract
        self.validator = Validator(contract, quarantine=True) if contract else None
        self.features = served.features
        self.timing = (0.0, 0.0, 0.0)  # the last chunk's (wall, CPU) seconds and its time

    def score(self, batch: pa.RecordBatch, first: int) -> tuple[pa.Table | None, pa.Table | None]:
        """(scored rows with their predictions, rows set aside with their reasons)."""
        started, cpu = time.perf_counter(), time.process_time()
        aside = None
        if self.validator is not None:
            bad = self.validator.check(batch)
            if bad is not None and bad.any():
                rejected = batch.filter(pa.array(bad))
                aside = pa.Table.from_batches(
                    [rejected.append_column(REASON_COLUMN, self.validator.last_reasons())]
                )
                batch = batch.filter(pa.array(~bad))
        if batch.num_rows == 0:
            return None, aside
        scores, labels = self.served.predict(batch)
        moment = time.time()
        ids = _ids(new_event_id(moment), first, batch.num_rows)
        table = pa.table(
            {
                name: _plain_column(column)
                for name, column in zip(batch.schema.names, batch.columns, strict=True)
            }
        )
        table = table.append_column("prediction_id", ids)
        table = table.append_column("score", pa.array(scores, pa.float64()))
        table = table.append_column("label", pa.array(labels))
        self.timing = (time.perf_counter() - started, time.process_time() - cpu, moment)
        return table, aside

    def log(self, table: pa.Table, first: int, timing: tuple[float, float, float]) -> None:
        """Write the chunk's predictions into the log's partition; timing is the chunk's
        (wall, CPU) seconds and the time it was scored at, which its ids carry."""
        (seconds, cpu, now), rows = timing, table.num_rows
        record = self.served.record
        names = self.features or [n for n in table.column_names if n not in OUTPUT_COLUMNS]
        columns = {
            "id": table.column("prediction_id"),
            "request_id": _constant(self.job.id, rows),
            "time": _constant(now, rows),
            "version": _constant(record.version, rows),
            "role": _constant("batch", rows),
            "dialect": _constant("batch", rows),
            **{f"input.{name}": table.column(name) for name in names},
            "output.score": table.column("score"),
            "output.label": table.column("label"),
            "latency_ms": _constant(seconds * 1000 / rows, rows),
            "cpu_ms": _constant(cpu * 1000 / rows, rows),
            "status": _constant("ok", rows),
        }
        name = f"batch.{self.job.id}.{first:012d}"
        table = pa.table(columns)
        write_partition("predictions", record.name, now, table, name, self.job.workspace)


def _constant(value: Any, rows: int) -> pa.Array:
    """A column holding one value: text dictionary-encoded (one entry), numbers filled."""
    if isinstance(value, str):
        indices = pa.array(np.zeros(rows, dtype=np.int8))
        return pa.DictionaryArray.from_arrays(indices, pa.array([value]))
    return pa.array(np.full(rows, value))


def _ids(job: str, first: int, rows: int) -> pa.Array:
    numbers = pc.cast(pa.array(np.arange(first, first + rows, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(f"{job}-", numbers, "")


def _plain_column(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Dictionary-encoded text decoded (the reader encodes it), so outputs and log
    partitions hold the input's plain types."""
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def _score(
    served: ServedModel,
    job: _Job,
    batches: Any,
    first: int,
    writers: _Writers,
    progress: Callable[[int, int | None], None] | None = None,
    total: int | None = None,
) -> tuple[int, int]:
    """Score batches (rows numbered from ``first``) into the writers, which it closes;
    returns (rows read, rows quarantined)."""
    scorer = _Scorer(served, job)
    rows = quarantined = 0
    pending: Future | None = None
    with ThreadPoolExecutor(1, thread_name_prefix="loopml-batch-writer") as background:
        try:
            for batch in batches:
                scored, rejected = scorer.score(batch, first + rows)
                if pending is not None:
                    pending.result()  # one chunk waits to be written at most: memory stays flat
                pending = background.submit(
                    _write, scorer, writers, scored, rejected, first + rows, scorer.timing
                )
                rows += batch.num_rows
                quarantined += rejected.num_rows if rejected is not None else 0
                if progress is not None:
                    progress(rows, total)
            if pending is not None:
                pending.result()
        finally:
            background.shutdown(wait=True)
            writers.close()
    return rows, quarantined


def _write(
    scorer: _Scorer,
    writers: _Writers,
    scored: pa.Table | None,
    rejected: pa.Table | None,
    first: int,
    timing: tuple[float, float, float],
) -> None:
    """Write a chunk (on the writer thread, while the next one is scored): the output, the
    quarantine, the log."""
    writers.write(scored, rejected)
    if scored is not None and scorer.job.log:
        scorer.log(scored, first, timing)


class _Writers:
    """The output file and, once a row is set aside, the quarantine file."""

    def __init__(self, destination: Path, aside: Path) -> None:
        self.paths = {"out": destination, "aside": aside}
        self.open: dict[str, pq.ParquetWriter] = {}

    def write(self, scored: pa.Table | None, rejected: pa.Table | None) -> None:
        for key, table in (("out", scored), ("aside", rejected)):
            if table is None or table.num_rows == 0:
                continue
            if key not in self.open:
                self.open[key] = pq.ParquetWriter(self.paths[key], table.schema)
            self.open[key].write_table(table.cast(self.open[key].schema))

    def close(self) -> None:
        for writer in self.open.values():
            writer.close()

    @classmethod
    def part(cls, folder: Path, index: int) -> _Writers:
        return cls(folder / f"out.{index}.parquet", folder / f"aside.{index}.parquet")

    def join(self, parts: list[_Writers]) -> None:
        """Copy the part files, in order, into these files, a row group at a time."""
        try:
            for part in parts:
                for key, path in part.paths.items():
                    if path.exists():
                        self._copy(key, pq.ParquetFile(path))
        finally:
            self.close()

    def _copy(self, key: str, source: pq.ParquetFile) -> None:
        for group in range(source.num_row_groups):
            table = source.read_row_group(group)
            if key == "out":
                self.write(table, None)
            else:
                self.write(None, table)


def _score_parallel(
    job: _Job,
    writers: _Writers,
    executor: Any,
    progress: Callable[[int, int | None], None] | None,
) -> tuple[int, int]:
    from loopml.pipeline.executors import executor_from

    parts = _parts(Path(job.source), job.chunk_rows)
    running, owned = executor_from(executor)
    folder = Path(tempfile.mkdtemp(prefix=".loopml-batch-", dir=writers.paths["out"].parent))
    total = sum(rows for _, _, rows in parts)
    try:
        futures = [
            running.submit(_score_part, job, groups, first, _Writers.part(folder, i))
            for i, (groups, first, _) in enumerate(parts)
        ]
        done = quarantined = 0
        for future, (_, _, rows) in zip(futures, parts, strict=True):
            quarantined += future.result()
            done += rows
            if progress is not None:
                progress(done, total)
        writers.join([_Writers.part(folder, i) for i in range(len(parts))])
    finally:
        if owned:
            running.shutdown()
        shutil.rmtree(folder, ignore_errors=True)
    return total, quarantined


def _parts(source: Path, chunk_rows: int) -> list[tuple[list[int], int, int]]:
    """Row groups of a Parquet file gathered into parts of about chunk_rows rows:
    (row groups, first row, rows)."""
    if source.suffix.lower() not in (".parquet", ".pq", ".parq"):
        raise UsageError("Scoring on an executor reads Parquet; convert the input, or drop it.")
    metadata = pq.ParquetFile(source).metadata
    parts, groups, first, rows = [], [], 0, 0
    for index in range(metadata.num_row_groups):
        groups.append(index)
        rows += metadata.row_group(index).num_rows
        if rows >= chunk_rows:
            parts.append((groups, first, rows))
            groups, first, rows = [], first + rows, 0
    if groups:
        parts.append((groups, first, rows))
    if not parts:
        raise DataError(f"{source} holds no rows to score.")
    return parts


def _score_part(job: _Job, groups: list[int], first: int, writers: _Writers) -> int:
    """Score some row groups into part files; returns the rows quarantined."""
    served = load_served(job.ref, job.workspace)
    table = pq.ParquetFile(job.source).read_row_groups(groups)
    return _score(served, job, table.to_batches(CHUNK_ROWS), first, writers)[1]
