"""Mergeable summaries of a stream of values, each updated with NumPy over whole arrays.

- ``LogHistogram``: counts of numbers in log-spaced buckets taken straight from the bits of
  the float64 (sign, exponent and the top ``MANTISSA_BITS`` of the mantissa), so every bucket
  spans a relative width of 2**-6: a quantile read from it is within ±0.8% of a true value in
  relative terms (exact for integers below 64). Merging adds counts, so the histogram of two
  parts equals the histogram of the whole exactly.
- ``DistinctSketch``: a k-minimum-values sketch of 64-bit hashes. It counts exactly up to
  ``k`` distinct values and estimates beyond that with a relative standard error of about
  1/sqrt(k - 2) (1.6% for k = 4096). The sketch of two parts merged equals the sketch of the
  whole exactly.
- ``CategoryCounts``: exact counts per value up to ``capacity`` values; beyond that a
  Misra-Gries summary whose counts may be low by at most ``error`` (which it reports).
- ``TimeHistogram``: counts per hour of timestamps, merged by adding counts.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np
import pandas as pd

MANTISSA_BITS = 6
SHIFT = 52 - MANTISSA_BITS
KEY_OFFSET = 1 << (63 - SHIFT)  # keys are signed; offset makes them valid bincount indices
KEY_SPACE = 2 * KEY_OFFSET
RELATIVE_ACCURACY = 2.0 ** -(MANTISSA_BITS + 1)
DISTINCT_K = 4096
CATEGORY_CAPACITY = 10_000
HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
MIX_MULTIPLIERS = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))
EXACT_FLOAT_INTEGER = 1 << 53  # integers up to this size are exact as float64


def pack(array: np.ndarray) -> str:
    """A NumPy array as base64 of its little-endian bytes (for JSON)."""
    return base64.b64encode(
        np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
    ).decode("ascii")


def unpack(text: str, dtype: str) -> np.ndarray:
    """The inverse of pack."""
    return np.frombuffer(base64.b64decode(text), dtype=np.dtype(dtype).newbyteorder("<")).astype(
        dtype
    )


def float_bits(values: np.ndarray) -> np.ndarray:
    """The bits of float64 values as int64 (no copy)."""
    return np.asarray(values, dtype=np.float64).view(np.int64)


def hash_bits(bits: np.ndarray) -> np.ndarray:
    """64-bit hashes of int64 bit patterns (Fibonacci hashing: one multiplication, which
    spreads every input bit over the high bits that the distinct sketch compares)."""
    return bits.view(np.uint64) * HASH_MULTIPLIER


def integer_hashes(ints: np.ndarray, floats: np.ndarray | None = None) -> np.ndarray:
    """64-bit hashes of integers: those a float64 holds exactly hash as that float (so 3 and
    3.0 are one value), larger ones by their own bits (so 2**60 and 2**60 + 3 stay two).
    floats: the same values as float64, when already at hand."""
    floats = ints.astype(np.float64) if floats is None else floats
    low, high = (int(ints.min()), int(ints.max())) if len(ints) else (0, 0)
    if low >= -EXACT_FLOAT_INTEGER and high <= EXACT_FLOAT_INTEGER:
        return hash_bits(float_bits(floats))
    if ints.dtype.kind == "u":
        exact = ints <= EXACT_FLOAT_INTEGER
    else:
        exact = (ints >= -EXACT_FLOAT_INTEGER) & (ints <= EXACT_FLOAT_INTEGER)
    own = ints.view(np.int64) if ints.dtype.itemsize == 8 else ints.astype(np.int64)
    return hash_bits(np.where(exact, float_bits(floats), own))


def mix_hashes(hashes: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser of 64-bit hashes: each input bit flips about half the output
    bits, so hashes combined arithmetically (h1 * k + h2) collide only by chance."""
    mixed = hashes.astype(np.uint64, copy=True)
    mixed ^= mixed >> np.uint64(30)
    mixed *= MIX_MULTIPLIERS[0]
    mixed ^= mixed >> np.uint64(27)
    mixed *= MIX_MULTIPLIERS[1]
    mixed ^= mixed >> np.uint64(31)
    return mixed


def hash_objects(values: np.ndarray) -> np.ndarray:
    """Stable 64-bit hashes of Python objects (strings), equal across processes."""
    return pd.util.hash_array(np.asarray(values, dtype=object), categorize=False)


class LogHistogram:
    """Counts of float64 values in log-spaced buckets; see the module docstring.

    While values stream in, counts live in a dense array over every possible bucket (2 MiB);
    ``compact`` turns them into sorted (key, count) pairs, as stored and merged.
    """

    def __init__(self) -> None:
        self._dense: np.ndarray | None = None
        self._keys = np.zeros(0, dtype=np.int64)
        self._counts = np.zeros(0, dtype=np.int64)

    def update_bits(
        self,
        bits: np.ndarray,
        weights: np.ndarray | None = None,
        span: tuple[float, float] | None = None,
    ) -> None:
        """Count values given as float bits (see float_bits), each once or `weights` times;
        NaN must be removed first. span: the values' (min, max), when known; with one sign
        they occupy a narrow range of buckets, counted without touching the rest."""
        first, last = _key_range(span)
        keys = bits >> SHIFT
        keys -= first
        counts = np.bincount(keys, weights=weights, minlength=last - first + 1)
        if weights is not None:
            counts = counts.astype(np.int64)
        if self._dense is None:
            self._dense = np.zeros(KEY_SPACE, dtype=np.int64)
            self._dense[self._keys + KEY_OFFSET] += self._counts
            self._keys, self._counts = np.zeros(0, np.int64), np.zeros(0, np.int64)
        self._dense[first + KEY_OFFSET : first + KEY_OFFSET + len(counts)] += counts

    def compact(self) -> None:
        """Move streamed counts into the sorted (key, count) form and free the dense array."""
        if self._dense is not None:
            nonzero = np.flatnonzero(self._dense)
            self._keys, self._counts = nonzero - KEY_OFFSET, self._dense[nonzero]
            self._dense = None

    @property
    def keys(self) -> np.ndarray:
        self.compact()
        return self._keys

    @property
    def counts(self) -> np.ndarray:
        self.compact()
        return self._counts

    def merge(self, other: LogHistogram) -> None:
        """Add another histogram's counts."""
        keys = np.concatenate([self.keys, other.keys])
        counts = np.concatenate([self.counts, other.counts])
        self._keys, inverse = np.unique(keys, return_inverse=True)
        self._counts = np.bincount(inverse, weights=counts).astype(np.int64)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def representatives(self) -> tuple[np.ndarray, np.ndarray]:
        """(value, count) per bucket in increasing value order; a value is its bucket's
        midpoint."""
        low = (self.keys << SHIFT).view(np.float64)
        high = ((self.keys << SHIFT) + ((1 << SHIFT) - 1)).view(np.float64)
        middle = np.where(np.isfinite(high), (low + high) / 2, low)
        order = np.argsort(middle, kind="stable")
        return middle[order], self.counts[order]

    def quantiles(self, qs: np.ndarray, low: float, high: float) -> np.ndarray:
        """Quantiles (q in [0, 1]) read from the buckets, clipped to the true min and max."""
        values, counts = self.representatives()
        if not len(values):
            return np.full(len(qs), np.nan)
        cumulative = np.cumsum(counts)
        ranks = np.clip(np.ceil(np.asarray(qs) * cumulative[-1]), 1, cumulative[-1])
        found = values[np.searchsorted(cumulative, ranks)]
        found = np.clip(found, low, high)
        found[np.asarray(qs) <= 0] = low
        found[np.asarray(qs) >= 1] = high
        return found

    def histogram(self, bins: int, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
        """(edges, counts) over bins equal-width bins from low to high."""
        values, counts = self.representatives()
        if not np.isfinite(low) or not np.isfinite(high) or high <= low:
            return np.array([low, high]), np.array([counts.sum()], dtype=np.int64)
        edges = np.linspace(low, high, bins + 1)
        index = np.clip(
            np.searchsorted(edges, np.clip(values, low, high), side="right") - 1, 0, bins - 1
        )
        return edges, np.bincount(index, weights=counts, minlength=bins).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {"keys": pack(self.keys.astype(np.int32)), "counts": pack(self.counts)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogHistogram:
        made = cls()
        made._keys = unpack(data["keys"], "int32").astype(np.int64)
        made._counts = unpack(data["counts"], "int64")
        return made


def _key_range(span: tuple[float, float] | None) -> tuple[int, int]:
    """The first and last bucket keys values between span's ends can have."""
    full = (-KEY_OFFSET, KEY_OFFSET - 1)
    if span is None:
        return full
    low, high = span
    ends = float_bits(np.array([low, high])) >> SHIFT
    if low >= 0 and not math.copysign(1.0, low) < 0:  # all positive (and not -0.0)
        return int(ends[0]), int(ends[1])
    if high < 0:  # all negative: keys grow with the magnitude
        return int(ends[1]), int(ends[0])
    return full


class DistinctSketch:
    """A k-minimum-values sketch of 64-bit hashes; see the module docstring."""

    def __init__(self, k: int = DISTINCT_K) -> None:
        self.k = k
        self.hashes = np.zeros(0, dtype=np.uint64)

    def update(self, hashes: np.ndarray) -> None:
        """Add hashes (duplicates welcome)."""
        if len(self.hashes) == self.k:
            hashes = hashes[hashes < self.hashes[-1]]
        if not len(hashes):
            return
        if len(hashes) > 2 * self.k:
            hashes = self._smallest_distinct(hashes)
        merged = np.concatenate([self.hashes, hashes])
        merged.sort()
        fresh = np.empty(len(merged), dtype=bool)
        fresh[0] = True
        np.not_equal(merged[1:], merged[:-1], out=fresh[1:])
        self.hashes = merged[fresh][: self.k]

    def _smallest_distinct(self, hashes: np.ndarray) -> np.ndarray:
        """At least the k smallest distinct values of a large array, cheaply when values
        are mostly distinct, exactly (by hashing, O(n)) when repeats crowd the smallest."""
        cut = np.partition(hashes, 2 * self.k)[2 * self.k]
        small = pd.unique(hashes[hashes <= cut])
        if len(small) < self.k and cut < hashes.max():
            small = pd.unique(hashes)
        return small

    def merge(self, other: DistinctSketch) -> None:
        """Combine with another sketch of the same k."""
        self.update(other.hashes)

    @property
    def exact(self) -> bool:
        """True while fewer than k distinct hashes were seen: the count is exact."""
        return len(self.hashes) < self.k

    def estimate(self) -> float:
        """The number of distinct values (exact below k)."""
        if self.exact:
            return float(len(self.hashes))
        fraction = (float(self.hashes[-1]) + 1.0) / 2.0**64
        return (self.k - 1) / fraction

    def to_dict(self) -> dict[str, Any]:
        return {"k": self.k, "hashes": pack(self.hashes)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistinctSketch:
        made = cls(int(data["k"]))
        made.hashes = unpack(data["hashes"], "uint64")
        return made


class CategoryCounts:
    """Counts per value, exact up to a capacity, then a Misra-Gries summary."""

    def __init__(self, capacity: int = CATEGORY_CAPACITY) -> None:
        self.capacity = capacity
        self.counts = pd.Series(dtype="int64")
        self.error = 0

    def update(self, values: pd.Series) -> None:
        """Add counts given as a Series indexed by value."""
        if self.counts.empty:
            merged = values.astype("int64")
        else:
            merged = self.counts.add(values, fill_value=0).astype("int64")
        self.counts = self._prune(merged)

    def merge(self, other: CategoryCounts) -> None:
        self.update(other.counts)
        self.error += other.error

    def _prune(self, counts: pd.Series) -> pd.Series:
        if len(counts) <= self.capacity:
            return counts
        cut = int(
            np.partition(counts.to_numpy(), len(counts) - self.capacity - 1)[
                len(counts) - self.capacity - 1
            ]
        )
        self.error += cut
        reduced = counts - cut
        return reduced[reduced > 0]

    @property
    def exact(self) -> bool:
        """True while no counts were dropped."""
        return self.error == 0

    def ordered(self) -> pd.Series:
        """Counts, most frequent first; ties in the order of their values as text."""
        by_value = self.counts.iloc[np.argsort(self.counts.index.astype(str), kind="stable")]
        return by_value.sort_values(ascending=False, kind="stable")

    def top(self, n: int) -> list[tuple[Any, int]]:
        """The n most frequent values with their counts, most frequent first."""
        return [(value, int(count)) for value, count in self.ordered().head(n).items()]

    def to_dict(self) -> dict[str, Any]:
        ordered = self.ordered()
        return {
            "capacity": self.capacity,
            "error": self.error,
            "values": ordered.index.tolist(),
            "counts": ordered.to_numpy().tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CategoryCounts:
        made = cls(int(data["capacity"]))
        made.counts = pd.Series(data["counts"], index=data["values"], dtype="int64")
        made.error = int(data["error"])
        return made


class TimeHistogram:
    """Counts of timestamps per hour (keys are hours since the epoch)."""

    SECONDS = 3600

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=np.int64)
        self.counts = np.zeros(0, dtype=np.int64)

    def update_seconds(self, seconds: np.ndarray) -> None:
        """Count timestamps given as whole seconds since the epoch."""
        hours = np.floor_divide(seconds, self.SECONDS)
        low = int(hours.min())
        span = int(hours.max()) - low + 1
        if span <= 4 * len(hours) + 1024:
            dense = np.bincount(hours - low)
            nonzero = np.flatnonzero(dense)
            self._merge(nonzero + low, dense[nonzero])
        else:
            keys, counts = np.unique(hours, return_counts=True)
            self._merge(keys, counts)

    def merge(self, other: TimeHistogram) -> None:
        self._merge(other.keys, other.counts)

    def _merge(self, keys: np.ndarray, counts: np.ndarray) -> None:
        all_keys = np.concatenate([self.keys, keys])
        all_counts = np.concatenate([self.counts, counts])
        self.keys, inverse = np.unique(all_keys, return_inverse=True)
        self.counts = np.bincount(inverse, weights=all_counts).astype(np.int64)

    def quantiles(self, qs: np.ndarray, low: float, high: float) -> np.ndarray:
        """Quantiles in seconds since the epoch, to the hour, clipped to the true range."""
        if not len(self.keys):
            return np.full(len(qs), np.nan)
        cumulative = np.cumsum(self.counts)
        ranks = np.clip(np.ceil(np.asarray(qs) * cumulative[-1]), 1, cumulative[-1])
        found = (self.keys[np.searchsorted(cumulative, ranks)] + 0.5) * self.SECONDS
        found = np.clip(found.astype(np.float64), low, high)
        found[np.asarray(qs) <= 0] = low
        found[np.asarray(qs) >= 1] = high
        return found

    def histogram(self, bins: int, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
        """(edges in seconds, counts) over equal-width bins from low to high."""
        values = (self.keys + 0.5) * self.SECONDS
        if high <= low:
            return np.array([low, high]), np.array([self.counts.sum()], dtype=np.int64)
        edges = np.linspace(low, high, bins + 1)
        index = np.clip(
            np.searchsorted(edges, np.clip(values, low, high), side="right") - 1, 0, bins - 1
        )
        return edges, np.bincount(index, weights=self.counts, minlength=bins).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {"keys": pack(self.keys), "counts": pack(self.counts)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TimeHistogram:
        made = cls()
        made.keys = unpack(data["keys"], "int64")
        made.counts = unpack(data["counts"], "int64")
        return made
