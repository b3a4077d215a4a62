"""Slices: the rows of each category of a column, or of each quantile bin of a numeric one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from loopml.evaluation.evaluate import Estimate

DEFAULT_BINS = 4
MAX_CATEGORIES = 200


@dataclass(frozen=True)
class SliceSpec:
    """A column to slice by; numeric columns are cut into ``bins`` quantile bins."""

    column: str
    bins: int | None = None


@dataclass
class Slice:
    """The model's metrics on one slice. small: too few rows (or of one class) to trust;
    worse: the primary metric is worse than overall beyond the slice's interval."""

    column: str
    value: str
    rows: int
    positives: int | None
    metrics: dict[str, Estimate]
    small: bool
    worse: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "value": self.value,
            "rows": self.rows,
            "positives": self.positives,
            "small": self.small,
            "worse": self.worse,
            "metrics": {name: found.to_dict() for name, found in self.metrics.items()},
        }


def slice_rows(frame: pd.DataFrame, spec: SliceSpec) -> Iterator[tuple[str, np.ndarray]]:
    """(label, row indices) of each slice; missing values make a slice of their own."""
    values = frame[spec.column]
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and (spec.bins is not None or values.nunique() > MAX_CATEGORIES):
        labels = pd.qcut(values, spec.bins or DEFAULT_BINS, duplicates="drop").astype(str)
        labels = labels.where(values.notna(), "missing")
    else:
        labels = values.astype(str).where(values.notna(), "missing")
    codes, uniques = pd.factorize(labels, sort=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    for index, label in enumerate(uniques):
        yield str(label), np.sort(order[bounds[index] : bounds[index + 1]])
