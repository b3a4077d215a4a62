"""Data drift between a reference profile (the training data's) and a current one (a window
of traffic), one test per feature, the false-alarm rate controlled across features.

Both sides are Profiles, so a window of any size is profiled in streaming chunks and merged;
no raw rows are kept. Per feature:

- numbers: the Kolmogorov-Smirnov statistic of the two sketched distributions, its p-value
  from the KS distribution with the effective sample size n·m/(n+m); PSI and the
  Jensen-Shannon distance on the reference's deciles; the Wasserstein distance of the sketches;
- categories: the chi-square test of homogeneity on the counts of every value seen on either
  side; PSI and Jensen-Shannon on the same counts; the values new in the current window.

Testing many features at once raises the chance that one drifts by accident: the p-values
are adjusted with Benjamini-Hochberg, so among the features flagged the expected share of
false alarms is at most ``alpha``. A feature drifts when its adjusted p-value is below alpha.
The sketches bin values to within 0.8%, which can only shrink the KS statistic: the test
errs towards fewer alarms, never more.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from loopml.data.profile import CategoricalSummary, ColumnSummary, NumericSummary, Profile
from loopml.data.shift import (
    binned_counts,
    js_distance,
    ks_statistic,
    psi,
    reference_edges,
    sketch_points,
)
from loopml.errors import InvalidValueError


@dataclass
class FeatureDrift:
    """One feature's test."""

    name: str
    kind: str
    test: str
    statistic: float
    p_value: float
    reference_rows: int
    current_rows: int
    psi: float
    js: float
    wasserstein: float | None = None
    new_categories: list[str] = field(default_factory=list)
    adjusted_p_value: float = math.nan
    drifted: bool = False


@dataclass
class DriftReport:
    """Every feature's test, adjusted together."""

    alpha: float
    features: list[FeatureDrift]

    @property
    def drifted(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    @property
    def drifted_share(self) -> float:
        return len(self.drifted) / len(self.features) if self.features else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "drifted": self.drifted,
            "drifted_share": self.drifted_share,
            "features": [asdict(f) for f in self.features],
        }


def drift(
    reference: Profile,
    current: Profile,
    *,
    alpha: float = 0.05,
    columns: list[str] | None = None,
) -> DriftReport:
    """Test every column both profiles share (or ``columns``) for drift."""
    if not 0 < alpha < 1:
        raise InvalidValueError(f"alpha is a probability between 0 and 1, not {alpha}.")
    names = columns or [n for n in reference.columns_ if n in current.columns_]
    missing = [n for n in names if n not in reference.columns_ or n not in current.columns_]
    if missing:
        raise InvalidValueError(f"Both profiles must have the columns tested; missing: {missing}.")
    found = [
        tested
        for name in names
        if (tested := _test(reference.columns_[name], current.columns_[name])) is not None
    ]
    if found:
        adjusted = stats.false_discovery_control([f.p_value for f in found], method="bh")
        for feature, value in zip(found, adjusted, strict=True):
            feature.adjusted_p_value = float(value)
            feature.drifted = bool(value < alpha)
    return DriftReport(alpha, found)


def _test(reference: ColumnSummary, current: ColumnSummary) -> FeatureDrift | None:
    if not reference.count or not current.count:
        return None
    if isinstance(reference, NumericSummary) and isinstance(current, NumericSummary):
        return _numeric(reference, current)
    if isinstance(reference, CategoricalSummary) and isinstance(current, CategoricalSummary):
        return _categorical(reference, current)
    return None


def _numeric(reference: NumericSummary, current: NumericSummary) -> FeatureDrift:
    n, m = reference.count, current.count
    statistic = ks_statistic(reference, current)
    effective = n * m / (n + m)
    p_value = float(stats.kstwobign.sf(statistic * math.sqrt(effective)))
    edges = reference_edges(reference)
    p, q = binned_counts(reference, edges), binned_counts(current, edges)
    (a_values, a_counts), (b_values, b_counts) = sketch_points(reference), sketch_points(current)
    distance = stats.wasserstein_distance(a_values, b_values, a_counts, b_counts)
    return FeatureDrift(
        reference.name,
        "numeric",
        "ks",
        statistic,
        p_value,
        n,
        m,
        psi(p, q),
        js_distance(p, q),
        wasserstein=float(distance),
    )


def _categorical(reference: CategoricalSummary, current: CategoricalSummary) -> FeatureDrift:
    a, b = reference.categories.counts, current.categories.counts
    union = a.index.union(b.index)
    p = a.reindex(union, fill_value=0).to_numpy(dtype=float)
    q = b.reindex(union, fill_value=0).to_numpy(dtype=float)
    if len(union) < 2:
        statistic, p_value = 0.0, 1.0
    else:
        table = np.vstack([p, q])
        statistic, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    return FeatureDrift(
        reference.name,
        "categorical",
        "chi-square",
        float(statistic),
        float(p_value),
        reference.count,
        current.count,
        psi(p, q),
        js_distance(p, q),
        new_categories=[str(v) for v in b.index.difference(a.index)[:20]],
    )
