"""Profiling, validation, contract inference and comparison of data, for any source.

Sources are what ``loopml.data.io.open_stream`` reads (a DataFrame, an Arrow table, a Parquet
or CSV path) or a stored snapshot (a ``Snapshot`` or a reference such as 'flights@3fa2').
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopml.data.contract import Contract, InferredBounds, infer_contract, load_contract
from loopml.data.io import Stream, canonical, canonical_type, open_stream
from loopml.data.profile import Profile
from loopml.data.shift import column_shift
from loopml.data.snapshots import NAME, Snapshot, get
from loopml.data.validate import REASON_COLUMN, ValidationReport, Validator
from loopml.errors import DataError, UsageError
from loopml.workspace import Workspace


def resolve(data: Any, workspace: Workspace | None = None) -> Any:
    """The source itself, or the Snapshot a text names: an existing path stays a path; other
    text ('flights', 'flights@3fa2') is a snapshot reference."""
    if isinstance(data, str) and not Path(data).exists():
        name = data.partition("@")[0]
        if NAME.fullmatch(name):
            return get(data, workspace=workspace)
        raise DataError(f"No such file or dataset: {data!r}. Check the path or the name.")
    return data


def stream_of(data: Any, workspace: Workspace | None = None) -> Stream:
    """Batches of any source, snapshots and snapshot references included."""
    data = resolve(data, workspace)
    if isinstance(data, Snapshot):
        return Stream(_schema_of(data), data.ref, data.batches(), data.record.rows)
    return open_stream(data)


def _schema_of(snapshot: Snapshot) -> pa.Schema:
    return pq.read_schema(snapshot.path())


def profile(data: Any, *, workspace: Workspace | None = None) -> Profile:
    """The profile of any source; a snapshot's stored profile is returned as is."""
    data = resolve(data, workspace)
    if isinstance(data, Snapshot):
        return data.profile()
    return Profile().fit(stream_of(data))


@dataclass
class ValidationResult:
    """A validation report, and in quarantine mode the rows kept and the rows set aside (the
    latter with a column of reasons)."""

    report: ValidationReport
    valid: pd.DataFrame | None = None
    quarantined: pd.DataFrame | None = None

    @property
    def passed(self) -> bool:
        return self.report.passed


def validate(
    data: Any,
    contract: str | Path | dict[str, Any] | Contract,
    *,
    mode: Literal["report", "quarantine"] = "report",
    workspace: Workspace | None = None,
) -> ValidationResult:
    """Check data against a contract and report every violation.

    mode='quarantine' also splits the rows into those that satisfy every row-level rule and
    those set aside, each with its reasons in the column '_loopml_reasons'.
    """
    rules = load_contract(contract)
    if mode not in ("report", "quarantine"):
        raise UsageError(f"mode must be 'report' or 'quarantine', not {mode!r}.")
    validator = Validator(rules, quarantine=mode == "quarantine")
    kept: list[pa.RecordBatch] = []
    aside: list[pa.RecordBatch] = []
    for batch in stream_of(data, workspace):
        bad = validator.check(batch)
        if bad is None:
            continue
        kept.append(batch.filter(pa.array(~bad)))
        if bad.any():
            rejected = batch.filter(pa.array(bad))
            aside.append(rejected.append_column(REASON_COLUMN, validator.last_reasons()))
    report = validator.finish()
    if mode == "report":
        return ValidationResult(report)
    return ValidationResult(report, _frame(kept), _frame(aside))


@dataclass
class CheckResult:
    """The profile of some data and its validation report, from one pass."""

    profile: Profile
    report: ValidationReport

    @property
    def passed(self) -> bool:
        return self.report.passed


def check(
    data: Any,
    contract: str | Path | dict[str, Any] | Contract,
    *,
    workspace: Workspace | None = None,
) -> CheckResult:
    """Profile data and validate it against a contract in one streaming pass."""
    validator = Validator(load_contract(contract))
    found = Profile()
    for batch in stream_of(data, workspace):
        found.partial_fit(batch)
        validator.check(batch, found)
    return CheckResult(found, validator.finish())


def quarantine_files(
    data: Any,
    contract: str | Path | dict[str, Any] | Contract,
    valid_path: str | Path,
    quarantined_path: str | Path,
    *,
    workspace: Workspace | None = None,
) -> ValidationReport:
    """Validate in quarantine mode, streaming the kept and the set-aside rows to two Parquet
    files (memory stays bounded); the set-aside rows carry the column '_loopml_reasons'."""
    validator = Validator(load_contract(contract), quarantine=True)
    stream = stream_of(data, workspace)
    writers: dict[str, pq.ParquetWriter] = {}
    schema = pa.schema([pa.field(f.name, canonical_type(f.type)) for f in stream.schema])
    rejected_schema = schema.append(pa.field(REASON_COLUMN, pa.string()))
    try:
        writers["valid"] = pq.ParquetWriter(valid_path, schema)
        writers["aside"] = pq.ParquetWriter(quarantined_path, rejected_schema)
        for batch in stream:
            bad = validator.check(batch)
            writers["valid"].write_batch(canonical(batch.filter(pa.array(~bad))))
            if bad.any():
                rejected = canonical(batch.filter(pa.array(bad)))
                writers["aside"].write_batch(
                    rejected.append_column(REASON_COLUMN, validator.last_reasons())
                )
    finally:
        for writer in writers.values():
            writer.close()
    return validator.finish()


def _frame(batches: list[pa.RecordBatch]) -> pd.DataFrame:
    if not batches:
        return pd.DataFrame()
    return pa.Table.from_batches(batches).to_pandas()


def contract_for(
    data: Any,
    *,
    widen: float | str = 0.0,
    quantiles: float | str | None = None,
    workspace: Workspace | None = None,
) -> Contract:
    """A contract inferred from the data's profile: by default the tightest one it
    satisfies. widen (0.1 or '10%') and quantiles (0.001) loosen its numeric bounds; see
    ``infer_contract``."""
    InferredBounds.of(widen, quantiles)  # bad settings fail before the data is read
    dataset = None
    data = resolve(data, workspace)
    if isinstance(data, Snapshot):
        dataset = data.record.dataset
    found = profile(data, workspace=workspace) if not isinstance(data, Profile) else data
    return infer_contract(found, dataset=dataset, widen=widen, quantiles=quantiles)


def diff(a: Any, b: Any, *, workspace: Workspace | None = None) -> dict[str, Any]:
    """How b differs from a: columns added, removed or retyped, row counts, and the shift of
    every shared column's distribution (largest first)."""
    left, right = profile(a, workspace=workspace), profile(b, workspace=workspace)
    left_types = {name: s.type for name, s in left.columns_.items()}
    right_types = {name: s.type for name, s in right.columns_.items()}
    shared = [name for name in left_types if name in right_types]
    shifts = [column_shift(left[name], right[name]) for name in shared]
    shifts.sort(key=lambda item: -(item.get("psi") or 0.0))
    return {
        "a": _label(a),
        "b": _label(b),
        "rows": {"a": left.rows_, "b": right.rows_, "change": right.rows_ - left.rows_},
        "schema": {
            "added": [n for n in right_types if n not in left_types],
            "removed": [n for n in left_types if n not in right_types],
            "retyped": [
                {"name": n, "a": left_types[n], "b": right_types[n]}
                for n in shared
                if left_types[n] != right_types[n]
            ],
        },
        "columns": shifts,
    }


def _label(data: Any) -> str:
    if isinstance(data, Snapshot):
        return data.ref
    if isinstance(data, str | Path):
        return str(data)
    return type(data).__name__
