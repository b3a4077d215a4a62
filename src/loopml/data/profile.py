"""Profiles: per-column statistics of a table, computed in one streaming pass and mergeable.

    profile = Profile().fit(table_or_batches)        # or partial_fit(batch) per batch
    whole = part_a.merge(part_b)                      # the profile of both parts

Per column: its Arrow type and kind (numeric, categorical, boolean, datetime, other), row and
null counts (NaN counts as null), distinct values (exact below 4,096, else a sketch with about
1.6% error), and by kind: min, max, mean and standard deviation, quantiles and histogram bins
(numbers, within ±0.8% relative; times, to the hour), and the most frequent values with their
counts (categories and booleans). The sketches are described in ``loopml.data.sketches``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loopml.data.io import canonical_type
from loopml.data.sketches import (
    CategoryCounts,
    DistinctSketch,
    LogHistogram,
    TimeHistogram,
    float_bits,
    hash_bits,
    hash_objects,
    integer_hashes,
)
from loopml.errors import DataError

FORMAT = "loopml.profile/1"
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
SMALL_INTEGER_SPAN = 1 << 20


def kind_of(arrow_type: pa.DataType) -> str:
    """The profile kind of an Arrow type."""
    if pa.types.is_dictionary(arrow_type):
        return kind_of(arrow_type.value_type)
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "numeric"
    if pa.types.is_decimal(arrow_type):
        return "numeric"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "categorical"
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return "datetime"
    return "other"


@dataclass(frozen=True)
class BatchStats:
    """What the last batch of a column held: missing values (nulls and NaN), its smallest and
    largest value (for times: whole microseconds, floored and ceiled) and, for categories, the
    distinct values present.
    Validation reads them to skip row-by-row checks that cannot fail."""

    missing: int
    low: float = math.inf
    high: float = -math.inf
    values: Any = None


class ColumnSummary:
    """Statistics of one column; subclasses add what their kind allows."""

    kind: ClassVar[str] = "other"

    def __init__(self, name: str, arrow_type: str) -> None:
        self.name = name
        self.type = arrow_type
        self.count = 0  # non-null values
        self.nulls = 0
        self.distinct_sketch = DistinctSketch()
        self.last_batch = BatchStats(0)

    @property
    def rows(self) -> int:
        return self.count + self.nulls

    @property
    def null_rate(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    @property
    def distinct(self) -> int:
        """Distinct non-null values (exact below the sketch's k)."""
        return round(self.distinct_sketch.estimate())

    @property
    def distinct_exact(self) -> bool:
        return self.distinct_sketch.exact

    def update(self, array: pa.Array) -> None:
        self.nulls += array.null_count
        self.count += len(array) - array.null_count
        self.last_batch = BatchStats(array.null_count)

    def merge(self, other: ColumnSummary) -> None:
        self.count += other.count
        self.nulls += other.nulls
        self.distinct_sketch.merge(other.distinct_sketch)

    def describe(self) -> dict[str, Any]:
        """Plain statistics for people and reports (no sketches)."""
        return {
            "name": self.name,
            "type": self.type,
            "kind": self.kind,
            "count": self.count,
            "nulls": self.nulls,
            "null_rate": self.null_rate,
            "distinct": self.distinct,
            "distinct_exact": self.distinct_exact,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "kind": self.kind,
            "count": self.count,
            "nulls": self.nulls,
            "distinct": self.distinct_sketch.to_dict(),
        }

    def _load(self, data: dict[str, Any]) -> None:
        self.count, self.nulls = int(data["count"]), int(data["nulls"])
        self.distinct_sketch = DistinctSketch.from_dict(data["distinct"])


class NumericSummary(ColumnSummary):
    """Integers, floats and decimals (as float64)."""

    kind = "numeric"

    def __init__(self, name: str, arrow_type: str) -> None:
        super().__init__(name, arrow_type)
        self.min = math.inf
        self.max = -math.inf
        self.mean = 0.0
        self.m2 = 0.0  # sum of squared deviations from the mean
        self.histogram = LogHistogram()

    def update(self, array: pa.Array) -> None:
        if pa.types.is_integer(array.type):
            self._update_integers(array)
        else:
            self._update_floats(array)

    def _update_floats(self, array: pa.Array) -> None:
        values = _as_float64(array)
        missing = np.isnan(values)
        if missing.any():
            values = values[~missing]
        self._count_missing(len(array) - len(values))
        if len(values):
            values = values + 0.0  # -0.0 becomes 0.0: one value, with one sign
            self._add_values(values, hash_bits(float_bits(values)))

    def _update_integers(self, array: pa.Array) -> None:
        """Integers within a span narrower than the batch (and 2**20) are counted each once
        with bincount; wider ones go value by value. Hashed as integers, not as floats."""
        valid = array.drop_null() if array.null_count else array
        ints = valid.to_numpy(zero_copy_only=False)
        self._count_missing(array.null_count)
        if not len(ints):
            return
        low, high = int(ints.min()), int(ints.max())
        if array.type != pa.uint64() and high - low < min(SMALL_INTEGER_SPAN, len(ints)):
            self._add_small_integers(ints.astype(np.int64, copy=False), low, high)
        else:
            values = ints.astype(np.float64)
            self._add_values(values, integer_hashes(ints, values))

    def _count_missing(self, missing: int) -> None:
        self.nulls += missing
        self.last_batch = BatchStats(missing)

    def _add_values(self, values: np.ndarray, hashes: np.ndarray) -> None:
        """Add non-missing values (no -0.0) with their hashes."""
        self._add_moments(values)
        bits = float_bits(values)
        self.histogram.update_bits(bits, span=(self.last_batch.low, self.last_batch.high))
        self.distinct_sketch.update(hashes)

    def _add_small_integers(self, ints: np.ndarray, low: int, high: int) -> None:
        """The few distinct values, weighted by their counts, feed the sketches; moments are
        taken on offsets from low, exact however far the values are from zero."""
        counts = np.bincount(ints - low)
        present = np.flatnonzero(counts)
        weights, n = counts[present], len(ints)
        offset_mean = float(present @ weights) / n
        deviations = present - offset_mean
        m2 = float((deviations * deviations) @ weights)
        self.last_batch = BatchStats(self.last_batch.missing, float(low), float(high))
        self._combine(n, low + offset_mean, m2, float(low), float(high))
        values = present + low
        bits = float_bits(values.astype(np.float64))
        self.histogram.update_bits(bits, weights, span=(float(low), float(high)))
        self.distinct_sketch.update(integer_hashes(values))

    def _add_moments(self, values: np.ndarray) -> None:
        """The batch's mean and sum of squared deviations, by the corrected two-pass
        algorithm (no cancellation for values far from zero, and a mean exact enough to
        merge on), combined with the running ones by Chan's formula."""
        n = len(values)
        with np.errstate(over="ignore", invalid="ignore"):  # |x| near 1e308: inf, as it is
            rough_mean = float(values.sum()) / n
            deviations = values - rough_mean
            correction = float(deviations.sum()) / n if math.isfinite(rough_mean) else 0.0
            batch_mean = rough_mean + correction
            # einsum, not dot: no BLAS threads competing with the reader for the cores
            squares = float(np.einsum("i,i->", deviations, deviations))
            batch_m2 = max(squares - n * correction * correction, 0.0)
        low, high = float(values.min()), float(values.max())
        self.last_batch = BatchStats(self.last_batch.missing, low, high)
        self._combine(n, batch_mean, batch_m2, low, high)

    def _combine(self, n: int, mean: float, m2: float, low: float, high: float) -> None:
        if not n:
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total
        self.min, self.max = min(self.min, low), max(self.max, high)

    def merge(self, other: ColumnSummary) -> None:
        other = cast(NumericSummary, other)
        self.nulls += other.nulls
        self.distinct_sketch.merge(other.distinct_sketch)
        self.histogram.merge(other.histogram)
        self._combine(other.count, other.mean, other.m2, other.min, other.max)

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count else math.nan

    @property
    def integral(self) -> bool:
        """True for integer columns: quantiles are whole numbers."""
        return self.type.startswith(("int", "uint"))

    def quantiles(self, qs: Iterable[float] = QUANTILES) -> dict[float, float]:
        qs = np.asarray(list(qs), dtype=float)
        found = self.histogram.quantiles(qs, self.min, self.max)
        if self.integral:
            found = np.round(found)
        return dict(zip(qs.tolist(), found.tolist(), strict=True))

    def bins(self, count: int = 20) -> tuple[list[float], list[int]]:
        edges, counts = self.histogram.histogram(count, self.min, self.max)
        return edges.tolist(), counts.tolist()

    def describe(self) -> dict[str, Any]:
        found = super().describe()
        if not self.count:
            return found
        edges, counts = self.bins()
        return {
            **found,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "std": self.std,
            "quantiles": {str(q): v for q, v in self.quantiles().items()},
            "histogram": {"edges": edges, "counts": counts},
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
            "mean": self.mean,
            "m2": self.m2,
            "histogram": self.histogram.to_dict(),
        }

    def _load(self, data: dict[str, Any]) -> None:
        super()._load(data)
        self.min = math.inf if data["min"] is None else float(data["min"])
        self.max = -math.inf if data["max"] is None else float(data["max"])
        self.mean, self.m2 = float(data["mean"]), float(data["m2"])
        self.histogram = LogHistogram.from_dict(data["histogram"])


class CategoricalSummary(ColumnSummary):
    """Strings (plain or dictionary-encoded) and booleans: counts per value."""

    kind = "categorical"

    def __init__(self, name: str, arrow_type: str) -> None:
        super().__init__(name, arrow_type)
        self.categories = CategoryCounts()

    def update(self, array: pa.Array) -> None:
        super().update(array)
        if array.null_count == len(array):
            return
        counts = _value_counts(array)
        self.last_batch = BatchStats(array.null_count, values=counts.index)
        self.categories.update(counts)
        self.distinct_sketch.update(hash_objects(counts.index.to_numpy()))

    def merge(self, other: ColumnSummary) -> None:
        other = cast(CategoricalSummary, other)
        super().merge(other)
        self.categories.merge(other.categories)

    def top(self, n: int = 20) -> list[tuple[Any, int]]:
        return self.categories.top(n)

    def describe(self) -> dict[str, Any]:
        top = self.top(20)
        return {
            **super().describe(),
            "top": [{"value": value, "count": count} for value, count in top],
            "top_share": top[0][1] / self.count if top and self.count else 0.0,
            "counts_exact": self.categories.exact,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "categories": self.categories.to_dict()}

    def _load(self, data: dict[str, Any]) -> None:
        super()._load(data)
        self.categories = CategoryCounts.from_dict(data["categories"])


class BooleanSummary(CategoricalSummary):
    """Booleans, counted as the categories 'true' and 'false'."""

    kind = "boolean"

    def update(self, array: pa.Array) -> None:
        text = pc.if_else(array, "true", "false")
        super().update(text)


class DatetimeSummary(ColumnSummary):
    """Timestamps and dates, as time since the epoch (UTC). The min and max are exact to the
    microsecond (``min_us``, ``max_us``); quantiles and bins are to the hour."""

    kind = "datetime"

    def __init__(self, name: str, arrow_type: str) -> None:
        super().__init__(name, arrow_type)
        self.min_us: int | None = None
        self.max_us: int | None = None
        self.histogram = TimeHistogram()

    @property
    def min(self) -> float:
        return math.inf if self.min_us is None else self.min_us / 1e6

    @property
    def max(self) -> float:
        return -math.inf if self.max_us is None else self.max_us / 1e6

    def update(self, array: pa.Array) -> None:
        super().update(array)
        ticks, per_second = _epoch_ticks(array)
        if not len(ticks):
            return
        low, high = int(ticks.min()), int(ticks.max())
        per_micro = per_second // 1_000_000 if per_second > 1_000_000 else 0
        if per_micro:  # nanoseconds: floor the min and ceil the max to microseconds
            low, high = low // per_micro, -(-high // per_micro)
        else:
            low, high = low * (1_000_000 // per_second), high * (1_000_000 // per_second)
        self._widen(low, high)
        self.last_batch = BatchStats(array.null_count, low, high)
        self.histogram.update_seconds(np.floor_divide(ticks, per_second))
        self.distinct_sketch.update(hash_bits(ticks))

    def _widen(self, low: int | None, high: int | None) -> None:
        if low is not None:
            self.min_us = low if self.min_us is None else min(self.min_us, low)
        if high is not None:
            self.max_us = high if self.max_us is None else max(self.max_us, high)

    def merge(self, other: ColumnSummary) -> None:
        other = cast(DatetimeSummary, other)
        super().merge(other)
        self._widen(other.min_us, other.max_us)
        self.histogram.merge(other.histogram)

    def quantiles(self, qs: Iterable[float] = QUANTILES) -> dict[float, float]:
        qs = np.asarray(list(qs), dtype=float)
        return dict(
            zip(qs.tolist(), self.histogram.quantiles(qs, self.min, self.max).tolist(), strict=True)
        )

    def describe(self) -> dict[str, Any]:
        found = super().describe()
        if not self.count:
            return found
        edges, counts = self.histogram.histogram(20, self.min, self.max)
        return {
            **found,
            "min": _iso(self.min),
            "max": _iso(self.max),
            "quantiles": {str(q): _iso(v) for q, v in self.quantiles().items()},
            "histogram": {"edges": [_iso(e) for e in edges], "counts": counts.tolist()},
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "min_us": self.min_us,
            "max_us": self.max_us,
            "histogram": self.histogram.to_dict(),
        }

    def _load(self, data: dict[str, Any]) -> None:
        super()._load(data)
        self.min_us, self.max_us = data["min_us"], data["max_us"]
        self.histogram = TimeHistogram.from_dict(data["histogram"])


SUMMARIES: dict[str, type[ColumnSummary]] = {
    cls.kind: cls
    for cls in (ColumnSummary, NumericSummary, CategoricalSummary, BooleanSummary, DatetimeSummary)
}


def summary_for(name: str, arrow_type: pa.DataType) -> ColumnSummary:
    """An empty summary of the right kind for a column (named by its stored type)."""
    return SUMMARIES[kind_of(arrow_type)](name, str(canonical_type(arrow_type)))


class Profile:
    """Per-column statistics of a table; see the module docstring.

    Follows scikit-learn's estimator contract: ``fit`` and ``partial_fit`` set ``rows_`` and
    ``columns_`` and return the profile.
    """

    def __init__(self) -> None:
        self.rows_ = 0
        self.columns_: dict[str, ColumnSummary] = {}

    def fit(self, data: Any) -> Profile:
        """Profile a pandas DataFrame, an Arrow table, or an iterable of record batches."""
        self.rows_, self.columns_ = 0, {}
        for batch in _batches(data):
            self.partial_fit(batch)
        return self

    def partial_fit(self, batch: pa.RecordBatch | pa.Table) -> Profile:
        """Add one batch of rows."""
        if not self.columns_ and not self.rows_:
            self.columns_ = {f.name: summary_for(f.name, f.type) for f in batch.schema}
        for field in batch.schema:
            summary = self.columns_.get(field.name)
            if summary is None:
                raise DataError(
                    f"Column {field.name!r} appeared in the middle of the data; every batch "
                    "must have the same columns."
                )
            column = batch.column(field.name)
            for chunk in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
                summary.update(_decoded(chunk))
        self.rows_ += batch.num_rows
        return self

    def merge(self, other: Profile) -> Profile:
        """A new profile of the rows of both profiles (columns must have the same kinds)."""
        merged = Profile.from_dict(self.to_dict())
        merged.rows_ += other.rows_
        for name, summary in other.columns_.items():
            mine = merged.columns_.get(name)
            if mine is not None and mine.kind != summary.kind and summary.type == "null":
                mine.nulls += summary.nulls  # a part where the column holds nulls alone
                continue
            if mine is None or (mine.kind != summary.kind and mine.type == "null"):
                nulls = self.rows_ if mine is None else mine.nulls
                mine = merged.columns_[name] = SUMMARIES[summary.kind](name, summary.type)
                mine.nulls = nulls
            elif mine.kind != summary.kind:
                raise DataError(
                    f"Cannot merge profiles: column {name!r} is {mine.kind} in one and "
                    f"{summary.kind} in the other."
                )
            mine.merge(summary)
        for name, mine in merged.columns_.items():
            if name not in other.columns_:
                mine.nulls += other.rows_
        return merged

    def __getitem__(self, name: str) -> ColumnSummary:
        return self.columns_[name]

    @property
    def columns(self) -> list[str]:
        return list(self.columns_)

    def describe(self) -> dict[str, Any]:
        """Plain statistics of every column, for people, reports and --json."""
        return {"rows": self.rows_, "columns": [s.describe() for s in self.columns_.values()]}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "rows": self.rows_,
            "columns": [summary.to_dict() for summary in self.columns_.values()],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        if data.get("format") != FORMAT:
            raise DataError(f"Not a loopml profile (format {data.get('format')!r}).")
        made = cls()
        made.rows_ = int(data["rows"])
        for item in data["columns"]:
            summary = SUMMARIES[item["kind"]](item["name"], item["type"])
            summary._load(item)
            made.columns_[item["name"]] = summary
        return made

    @classmethod
    def from_json(cls, text: str | bytes) -> Profile:
        return cls.from_dict(json.loads(text))


def _batches(data: Any) -> Iterable[pa.RecordBatch | pa.Table]:
    if isinstance(data, pd.DataFrame):
        return [pa.Table.from_pandas(data, preserve_index=False)]
    if isinstance(data, pa.Table | pa.RecordBatch):
        return [data]
    return data


def _decoded(array: pa.Array) -> pa.Array:
    """Dictionary arrays decoded, but for strings, whose dictionaries make counting cheap
    (pandas categoricals of booleans, times or numbers arrive as dictionaries)."""
    if pa.types.is_dictionary(array.type) and kind_of(array.type) != "categorical":
        return array.dictionary_decode()
    return array


def _as_float64(array: pa.Array) -> np.ndarray:
    """Values as float64 with nulls as NaN (no copy for float64 without nulls)."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if array.null_count or pa.types.is_decimal(array.type):
        array = array.cast(pa.float64()).fill_null(math.nan)
    values = array.to_numpy(zero_copy_only=False)
    return values if values.dtype == np.float64 else values.astype(np.float64)


def _value_counts(array: pa.Array) -> pd.Series:
    """Counts per non-null value of a string or dictionary array, as a Series."""
    if not pa.types.is_dictionary(array.type):
        array = array.dictionary_encode()
    indices = array.indices
    if indices.null_count:
        indices = indices.drop_null()
    counts = np.bincount(indices.to_numpy(zero_copy_only=False), minlength=len(array.dictionary))
    values = array.dictionary.to_numpy(zero_copy_only=False)
    present = counts > 0
    series = pd.Series(counts[present], index=pd.Index(values[present], dtype=object))
    return series.groupby(level=0, sort=False).sum()  # a dictionary may repeat a value


def _epoch_ticks(array: pa.Array) -> tuple[np.ndarray, int]:
    """Non-null timestamps or dates as int64 ticks since the epoch, and ticks per second."""
    valid = array.drop_null() if array.null_count else array
    if pa.types.is_date(valid.type):
        valid = valid.cast(pa.timestamp("s"))
    per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[valid.type.unit]
    ticks = valid.cast(pa.timestamp(valid.type.unit)).cast(pa.int64())
    return ticks.to_numpy(zero_copy_only=False), per_second


def _iso(seconds: float) -> str | None:
    if not math.isfinite(seconds):
        return None
    return pd.Timestamp(seconds, unit="s", tz="UTC").isoformat()
