"""Checking data against a contract, batch by batch, with every violation reported.

A report lists each broken rule once per column, with how many rows break it, up to five
example values and the first five row numbers (0-based positions in the data). Rules:
``missing_column``, ``unexpected_column``, ``type``, ``not_null``, ``min``, ``max``,
``categories``, ``unique`` (a column or a key of several columns), ``rows_min`` and
``rows_max``. In quarantine mode the rows that break a row-level rule are set aside with
their reasons instead of failing the whole batch.

Checks are vectorised: a batch whose min, max, nulls and categories are all in bounds costs
a few array reductions; only a batch that breaks a rule is searched row by row.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.data.contract import ColumnRule, Contract, type_of_arrow
from loopml.data.io import canonical_type
from loopml.data.profile import BatchStats, Profile
from loopml.data.sketches import (
    float_bits,
    hash_bits,
    hash_objects,
    integer_hashes,
    mix_hashes,
)

EXAMPLES = 5
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
REASON_COLUMN = "_loopml_reasons"
MISSING_HASH = np.uint64(0x6D697373696E6721)  # stands for a missing value in a row's hash
COMPATIBLE = {
    "integer": {
        "integer",
        "float",
    },  # floats pass when whole (pandas turns ints with NaN into floats)
    "float": {"float", "integer"},
    "string": {"string"},
    "boolean": {"boolean"},
    "timestamp": {"timestamp"},
    "date": {"date"},
}


@dataclass
class Violation:
    """One rule broken by some rows (or by the data as a whole)."""

    column: str | None
    rule: str
    count: int
    message: str
    examples: list[Any] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ValidationReport:
    """Every violation found, and how many rows were checked and set aside."""

    rows: int
    violations: list[Violation]
    quarantined: int = 0

    @property
    def passed(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "rows": self.rows,
            "quarantined": self.quarantined,
            "violations": [v.to_dict() for v in self.violations],
        }

    def summary(self) -> str:
        """One line per violation, for people."""
        if self.passed:
            return f"All {self.rows:,} rows satisfy the contract."
        lines = [f"{len(self.violations)} rule(s) broken in {self.rows:,} rows:"]
        lines += [f"- {v.message}" for v in self.violations]
        return "\n".join(lines)


class Validator:
    """Checks record batches against a contract; call check() per batch, then finish()."""

    def __init__(self, contract: Contract, *, quarantine: bool = False) -> None:
        self.contract = contract
        self.quarantine = quarantine
        self.rows = 0
        self.quarantined = 0
        self._found: dict[tuple[str | None, str], Violation] = {}
        self._schema_checked = False
        self._skip: set[str] = set()
        self._keys = [_KeyTracker(list(key)) for key in contract.unique]
        self._keys += [
            _KeyTracker([name])
            for name in contract.columns_with(unique=True)
            if [name] not in contract.unique
        ]
        self._batch_masks: list[tuple[str, np.ndarray]] = []
        self._bad = np.zeros(0, dtype=bool)

    # --- per batch -----------------------------------------------------------------------

    def check(self, batch: pa.RecordBatch, profile: Profile | None = None) -> np.ndarray | None:
        """Check one batch; in quarantine mode return the mask of rows to set aside (their
        reasons are then in last_reasons()).

        profile: a Profile that has just been given this same batch; its per-batch summaries
        let rules that cannot fail skip their row-by-row checks.
        """
        if not self._schema_checked:
            self._check_schema(batch.schema)
        offset, self.rows = self.rows, self.rows + batch.num_rows
        self._batch_masks: list[tuple[str, np.ndarray]] = []
        for name, rule in self.contract.columns.items():
            if name in self._skip:
                if not rule.nullable or name in batch.schema.names:
                    self._batch_masks.append(
                        (f"{self._skip_rule(name)} {name}", np.ones(batch.num_rows, bool))
                    )
                continue
            summary = profile.columns_.get(name) if profile is not None else None
            if summary is not None and _cannot_fail(rule, batch.column(name), summary.last_batch):
                continue
            for rule_name, mask, message in _column_problems(batch.column(name), rule):
                self._record(name, rule_name, mask, batch.column(name), offset, message)
                self._batch_masks.append((f"{rule_name} {name}", mask))
        for tracker in self._keys:
            if all(column in batch.schema.names for column in tracker.columns):
                mask = tracker.duplicates(batch)
                if mask.any():
                    self._record_key(tracker, batch, mask, offset)
                    self._batch_masks.append((f"unique {'+'.join(tracker.columns)}", mask))
        if not self.quarantine:
            return None
        bad = np.zeros(batch.num_rows, dtype=bool)
        for _, mask in self._batch_masks:
            bad |= mask
        self._bad = bad
        self.quarantined += int(bad.sum())
        return bad

    def last_reasons(self) -> pa.Array:
        """Why each row set aside by the last check() was set aside: its broken rules, as
        'rule column' separated by '; '."""
        rows = np.flatnonzero(self._bad)
        parts: list[list[str]] = [[] for _ in rows]
        for label, mask in self._batch_masks:
            for position in np.flatnonzero(mask[rows]):
                parts[position].append(label)
        return pa.array(["; ".join(found) for found in parts], type=pa.string())

    def _skip_rule(self, name: str) -> str:
        return (
            self._found[(name, "missing_column")].rule
            if (name, "missing_column") in self._found
            else "type"
        )

    # --- whole data -----------------------------------------------------------------------

    def finish(self) -> ValidationReport:
        """The report, after the row-count rules."""
        bounds = self.contract.rows
        if bounds is not None and bounds.min is not None and self.rows < bounds.min:
            self._add(
                None,
                "rows_min",
                self.rows,
                f"{self.rows:,} rows, fewer than the contract's minimum {bounds.min:,}",
            )
        if bounds is not None and bounds.max is not None and self.rows > bounds.max:
            self._add(
                None,
                "rows_max",
                self.rows,
                f"{self.rows:,} rows, more than the contract's maximum {bounds.max:,}",
            )
        return ValidationReport(self.rows, list(self._found.values()), self.quarantined)

    def _check_schema(self, schema: pa.Schema) -> None:
        self._schema_checked = True
        names = set(schema.names)
        for name, rule in self.contract.columns.items():
            if name not in names:
                self._skip.add(name)
                self._add(name, "missing_column", 0, f"{name}: the column is missing")
                continue
            stored = str(canonical_type(schema.field(name).type))
            found = type_of_arrow(stored)
            if found != "null" and found not in COMPATIBLE[rule.type]:
                self._skip.add(name)
                self._add(
                    name,
                    "type",
                    0,
                    f"{name}: expected {rule.type}, found {stored}",
                    examples=[stored],
                )
        if self.contract.extra_columns == "forbid":
            for name in schema.names:
                if name not in self.contract.columns:
                    self._add(
                        name, "unexpected_column", 0, f"{name}: a column the contract does not list"
                    )

    def _record(
        self, column: str, rule: str, mask: np.ndarray, values: pa.Array, offset: int, message: str
    ) -> None:
        rows = np.flatnonzero(mask)
        found = self._found.get((column, rule))
        if found is None:
            found = self._found[(column, rule)] = Violation(column, rule, 0, "")
        found.count += len(rows)
        if len(found.rows) < EXAMPLES:
            found.rows += (rows[: EXAMPLES - len(found.rows)] + offset).tolist()
        if len(found.examples) < EXAMPLES and rule != "not_null":
            for value in values.take(pa.array(rows[: EXAMPLES * 4])).to_pylist():
                value = _plain(value)
                if value not in found.examples and len(found.examples) < EXAMPLES:
                    found.examples.append(value)
        found.message = f"{column}: {found.count:,} {message}"

    def _record_key(
        self, tracker: _KeyTracker, batch: pa.RecordBatch, mask: np.ndarray, offset: int
    ) -> None:
        label = "+".join(tracker.columns)
        key_values = (
            pa.StructArray.from_arrays(
                [batch.column(c) for c in tracker.columns], names=tracker.columns
            )
            if len(tracker.columns) > 1
            else batch.column(tracker.columns[0])
        )
        self._record(
            label,
            "unique",
            mask,
            key_values,
            offset,
            "rows repeat a value seen earlier"
            if len(tracker.columns) == 1
            else "rows repeat a key seen earlier",
        )

    def _add(
        self,
        column: str | None,
        rule: str,
        count: int,
        message: str,
        examples: list[Any] | None = None,
    ) -> None:
        self._found[(column, rule)] = Violation(column, rule, count, message, examples or [])


def _cannot_fail(rule: ColumnRule, values: pa.Array, stats: BatchStats) -> bool:
    """True when a batch's summary proves it satisfies the column's row-level rules."""
    if not rule.nullable and stats.missing:
        return False
    if rule.type == "integer" and type_of_arrow(str(values.type)) == "float":
        return False  # float data in an integer column: its fractions need checking
    if rule.min is not None and stats.low < _scalar(rule.min):
        return False
    if rule.max is not None and stats.high > _scalar(rule.max):
        return False
    if rule.categories is not None:
        if stats.values is None:
            return False
        allowed = {str(c) for c in rule.categories}
        return all(str(value) in allowed for value in stats.values)
    return True


def _scalar(bound: Any) -> float:
    """A bound on the scale of BatchStats: numbers as they are, times in microseconds."""
    if isinstance(bound, datetime | date):
        return _micros(bound)
    return float(bound)


def _column_problems(values: pa.Array, rule: ColumnRule) -> Iterator[tuple[str, np.ndarray, str]]:
    """(rule, row mask, message) for every rule the column breaks in this batch."""
    missing = _missing(values)
    if not rule.nullable and missing.any():
        yield "not_null", missing, "missing values where none are allowed"
    if rule.type == "integer" and type_of_arrow(str(values.type)) == "float":
        numbers = _floats(values)
        fractional = ~missing & (numbers != np.floor(numbers))
        if fractional.any():
            yield "type", fractional, "values that are not whole numbers in an integer column"
    if rule.min is not None or rule.max is not None:
        yield from _range_problems(values, rule, missing)
    if rule.categories is not None:
        unknown = _unknown_categories(values, rule.categories) & ~missing
        if unknown.any():
            shown = ", ".join(map(str, rule.categories[:10]))
            more = ", ..." if len(rule.categories) > 10 else ""
            yield "categories", unknown, f"values outside the categories [{shown}{more}]"


def _range_problems(
    values: pa.Array, rule: ColumnRule, missing: np.ndarray
) -> Iterator[tuple[str, np.ndarray, str]]:
    numbers, low, high = _comparable(values, rule)
    if rule.min is not None:
        below = ~missing & (numbers < low)
        if below.any():
            yield "min", below, f"values below min {_shown(rule.min)}"
    if rule.max is not None:
        above = ~missing & (numbers > high)
        if above.any():
            yield "max", above, f"values above max {_shown(rule.max)}"


def _comparable(values: pa.Array, rule: ColumnRule) -> tuple[np.ndarray, Any, Any]:
    """Values and bounds on one scale: floats for numbers; for times exact integers, in
    nanoseconds for nanosecond data and in microseconds otherwise. A column of nulls only
    (no value to type it) compares as zeros: its rows are all missing, so none is checked."""
    if pa.types.is_null(values.type):
        return np.zeros(len(values)), -math.inf, math.inf
    if rule.type not in ("timestamp", "date"):
        low = -math.inf if rule.min is None else float(rule.min)
        high = math.inf if rule.max is None else float(rule.max)
        return _floats(values), low, high
    if pa.types.is_date(values.type):
        values = values.cast(pa.timestamp("s"))
    unit = values.type.unit
    ticks = values.cast(pa.timestamp(unit)).cast(pa.int64()).fill_null(0)
    numbers = ticks.to_numpy(zero_copy_only=False)
    if unit == "ns":
        scale = 1_000
    else:
        numbers = numbers * {"s": 1_000_000, "ms": 1_000, "us": 1}[unit]
        scale = 1
    low = None if rule.min is None else _micros(rule.min) * scale
    high = None if rule.max is None else _micros(rule.max) * scale
    return numbers, low, high


def _micros(bound: Any) -> int:
    """A time bound as whole microseconds since the epoch (naive times are UTC)."""
    if not isinstance(bound, datetime):
        bound = datetime(bound.year, bound.month, bound.day)
    moment = bound if bound.tzinfo else bound.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1)


def _floats(values: pa.Array) -> np.ndarray:
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if values.null_count or not pa.types.is_floating(values.type):
        values = values.cast(pa.float64()).fill_null(math.nan)
    return values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _missing(values: pa.Array) -> np.ndarray:
    """Nulls, and NaN in float columns."""
    mask = (
        values.is_null().to_numpy(zero_copy_only=False)
        if values.null_count
        else np.zeros(len(values), dtype=bool)
    )
    if pa.types.is_floating(values.type):
        mask = mask | np.isnan(values.fill_null(0).to_numpy(zero_copy_only=False))
    return mask


def _unknown_categories(values: pa.Array, categories: list[Any]) -> np.ndarray:
    allowed = pa.array([str(c) for c in categories] if _is_textual(values) else categories)
    if pa.types.is_dictionary(values.type):
        known = pc.is_in(values.dictionary, value_set=allowed).to_numpy(zero_copy_only=False)
        indices = values.indices.fill_null(0).to_numpy(zero_copy_only=False)
        return ~known[indices] if len(known) else np.zeros(len(values), dtype=bool)
    if pa.types.is_boolean(values.type):
        allowed = pa.array([c for c in categories if isinstance(c, bool)], type=pa.bool_())
    elif not _is_textual(values):
        allowed = pa.array([c for c in categories if not isinstance(c, str)]).cast(values.type)
    return ~pc.fill_null(pc.is_in(values, value_set=allowed), True).to_numpy(zero_copy_only=False)


def _is_textual(values: pa.Array) -> bool:
    kind = values.type.value_type if pa.types.is_dictionary(values.type) else values.type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _shown(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return f"{value:g}" if isinstance(value, float) else str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


class _KeyTracker:
    """Finds rows whose key (one or more columns) repeats a key seen earlier.

    nulls_match: a missing value is a value like any other (the audit's duplicate rows);
    otherwise rows with a missing key part are never duplicates (a contract's unique rule).
    """

    def __init__(self, columns: list[str], *, nulls_match: bool = False) -> None:
        self.columns = columns
        self.nulls_match = nulls_match
        self.seen = np.zeros(0, dtype=np.uint64)

    def duplicates(self, batch: pa.RecordBatch) -> np.ndarray:
        hashes, complete = self._hashes(batch)
        order = np.argsort(hashes, kind="stable")
        ordered = hashes[order]
        repeat = np.zeros(len(hashes), dtype=bool)
        repeat[order[1:][ordered[1:] == ordered[:-1]]] = True
        if len(self.seen):
            position = np.minimum(np.searchsorted(self.seen, hashes), len(self.seen) - 1)
            repeat |= self.seen[position] == hashes
        repeat &= complete
        new = np.unique(hashes[complete & ~repeat])
        self.seen = np.sort(np.concatenate([self.seen, new]), kind="stable")  # merges two runs
        return repeat

    def _hashes(self, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
        """One hash per row: each column's hashes mixed first (so that combining them
        linearly makes two different keys collide only by chance), then combined."""
        combined = np.zeros(batch.num_rows, dtype=np.uint64)
        complete = np.ones(batch.num_rows, dtype=bool)
        for name in self.columns:
            column = batch.column(name)
            missing = _missing(column)
            hashes = mix_hashes(_row_hashes(column))
            if self.nulls_match:
                hashes[missing] = MISSING_HASH
            else:
                complete &= ~missing
            combined = combined * np.uint64(1_000_003) + hashes
        return combined, complete


def _row_hashes(values: pa.Array) -> np.ndarray:
    """A 64-bit hash per value (anything for missing values; callers set them aside)."""
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    kind = type_of_arrow(str(values.type))
    if kind == "null":
        return np.zeros(len(values), dtype=np.uint64)
    if kind == "integer":
        return integer_hashes(values.fill_null(0).to_numpy(zero_copy_only=False))
    if kind in ("float", "boolean"):
        numbers = _floats(values.cast(pa.float64()) if kind == "boolean" else values)
        return hash_bits(float_bits(numbers + 0.0))  # + 0.0: -0.0 and 0.0 are one value
    if kind in ("timestamp", "date"):
        return hash_bits(
            values.cast(pa.int64() if kind == "timestamp" else pa.int32())
            .cast(pa.int64())
            .fill_null(0)
            .to_numpy(zero_copy_only=False)
        )
    return hash_objects(values.fill_null("").to_numpy(zero_copy_only=False))
