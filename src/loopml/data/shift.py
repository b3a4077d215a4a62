"""How far a column's distribution moved between two profiles, read from their sketches.

For numbers and times both profiles are cut into the same bins, the reference's deciles; for
categories the shares of each value are compared. Reported per column:

- PSI, the population stability index, sum of (q - p) * ln(q / p) over bins (shares smoothed
  by 1e-4); rule of thumb: < 0.1 stable, 0.1 to 0.25 moderate, > 0.25 large;
- the Jensen-Shannon distance (base 2, between 0 and 1);
- for numbers, the largest gap between the two cumulative distributions (a Kolmogorov-Smirnov
  statistic on the sketches, exact to their resolution);
- for categories, the values present in one profile and absent from the other.

Monitoring builds its statistical tests on these same binned counts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from loopml.data.profile import (
    CategoricalSummary,
    ColumnSummary,
    DatetimeSummary,
    NumericSummary,
)

EPSILON = 1e-4
BINS = 10


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index between two arrays of counts over the same bins."""
    p, q = _shares(reference), _shares(current)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2) between two arrays of counts over the same bins."""
    p = reference / max(reference.sum(), 1)
    q = current / max(current.sum(), 1)
    m = (p + q) / 2
    divergence = 0.5 * (_kl(p, m) + _kl(q, m))
    return float(math.sqrt(max(divergence, 0.0)))


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    present = p > 0
    return float(np.sum(p[present] * np.log2(p[present] / q[present])))


def _shares(counts: np.ndarray) -> np.ndarray:
    total = max(float(counts.sum()), 1.0)
    shares = counts / total + EPSILON
    return shares / shares.sum()


def binned_counts(summary: ColumnSummary, edges: np.ndarray) -> np.ndarray:
    """Counts of a numeric or time column's values in bins with the given inner edges
    (values below the first edge fall in bin 0, above the last in the final bin)."""
    values, counts = sketch_points(summary)
    index = np.searchsorted(edges, values, side="right")
    return np.bincount(index, weights=counts, minlength=len(edges) + 1).astype(np.float64)


def sketch_points(summary: ColumnSummary) -> tuple[np.ndarray, np.ndarray]:
    """(values, counts) of a numeric or time column's sketch."""
    if isinstance(summary, NumericSummary):
        return summary.histogram.representatives()
    if isinstance(summary, DatetimeSummary):
        histogram = summary.histogram
        return (histogram.keys + 0.5) * histogram.SECONDS, histogram.counts
    return np.zeros(0), np.zeros(0)


def reference_edges(summary: ColumnSummary, bins: int = BINS) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (duplicates removed)."""
    qs = np.linspace(0, 1, bins + 1)[1:-1]
    quantiles = summary.quantiles(qs)  # type: ignore[attr-defined]
    return np.unique(np.asarray(list(quantiles.values()), dtype=float))


def column_shift(reference: ColumnSummary, current: ColumnSummary) -> dict[str, Any]:
    """Shift measures of one column between a reference and a current summary."""
    found: dict[str, Any] = {
        "name": reference.name,
        "kind": reference.kind,
        "null_rate": [reference.null_rate, current.null_rate],
    }
    if reference.kind != current.kind:
        return {**found, "kind": f"{reference.kind} -> {current.kind}"}
    if not reference.count or not current.count:
        return found
    if isinstance(reference, NumericSummary | DatetimeSummary):
        return {**found, **_numeric_shift(reference, current)}
    if isinstance(reference, CategoricalSummary):
        return {**found, **_categorical_shift(reference, current)}
    return found


def _numeric_shift(reference: ColumnSummary, current: ColumnSummary) -> dict[str, Any]:
    edges = reference_edges(reference)
    p, q = binned_counts(reference, edges), binned_counts(current, edges)
    found = {"psi": psi(p, q), "js": js_distance(p, q), "ks": ks_statistic(reference, current)}
    if isinstance(reference, NumericSummary) and isinstance(current, NumericSummary):
        found["mean"] = [reference.mean, current.mean]
        found["std"] = [reference.std, current.std]
    return found


def ks_statistic(reference: ColumnSummary, current: ColumnSummary) -> float:
    """The largest gap between the two sketched cumulative distributions."""
    a_values, a_counts = sketch_points(reference)
    b_values, b_counts = sketch_points(current)
    grid = np.union1d(a_values, b_values)
    cdf_a = _cdf(a_values, a_counts, grid)
    cdf_b = _cdf(b_values, b_counts, grid)
    return float(np.max(np.abs(cdf_a - cdf_b))) if len(grid) else 0.0


def _cdf(values: np.ndarray, counts: np.ndarray, grid: np.ndarray) -> np.ndarray:
    cumulative = np.concatenate([[0.0], np.cumsum(counts, dtype=float)])
    return cumulative[np.searchsorted(values, grid, side="right")] / max(cumulative[-1], 1.0)


def _categorical_shift(
    reference: CategoricalSummary, current: CategoricalSummary
) -> dict[str, Any]:
    a, b = reference.categories.counts, current.categories.counts
    union = a.index.union(b.index)
    p = a.reindex(union, fill_value=0).to_numpy(dtype=float)
    q = b.reindex(union, fill_value=0).to_numpy(dtype=float)
    return {
        "psi": psi(p, q),
        "js": js_distance(p, q),
        "new_categories": [str(v) for v in b.index.difference(a.index)[:20]],
        "missing_categories": [str(v) for v in a.index.difference(b.index)[:20]],
    }
