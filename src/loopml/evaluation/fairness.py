"""Fairness across sensitive groups: selection rate, true- and false-positive rates per group,
and the largest difference and smallest ratio between groups, each with its interval."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from loopml.evaluation import bootstrap

if TYPE_CHECKING:
    from loopml.evaluation.evaluate import Estimate

RATES = ("selection_rate", "tpr", "fpr")


@dataclass
class Fairness:
    """One sensitive column: each group's rates, and how far apart the groups are."""

    column: str
    groups: dict[str, dict[str, Estimate]]
    rows: dict[str, int]
    differences: dict[str, Estimate] = field(default_factory=dict)  # largest − smallest
    ratios: dict[str, Estimate] = field(default_factory=dict)  # smallest / largest

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "rows": self.rows,
            "groups": {
                group: {name: found.to_dict() for name, found in rates.items()}
                for group, rates in self.groups.items()
            },
            "differences": {name: found.to_dict() for name, found in self.differences.items()},
            "ratios": {name: found.to_dict() for name, found in self.ratios.items()},
        }


class GroupRates:
    """Computes the rates of every group of one column for a block of resamples at once."""

    def __init__(self, column: str, labels: list[str], codes: np.ndarray, truth: np.ndarray):
        self.column, self.labels = column, labels
        self.onehot = np.zeros((len(codes), len(labels)))
        self.onehot[np.arange(len(codes)), codes] = 1.0
        self.truth = truth.astype(np.float64)
        self.sizes = self.onehot.sum(axis=0).astype(int)
        self.columns: np.ndarray | None = None

    def prepare(self, chosen: np.ndarray) -> None:
        """Fix the model's decisions (score at or above the threshold) before resampling."""
        chose = chosen.astype(np.float64)
        self.columns = np.hstack(
            [
                self.onehot,
                self.onehot * chose[:, None],
                self.onehot * self.truth[:, None],
                self.onehot * (chose * self.truth)[:, None],
            ]
        )

    def values(self, weights: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        sums = weights.astype(np.float64) @ self.columns
        count = len(self.labels)
        rows, picked, positives, hits = (sums[:, i * count : (i + 1) * count] for i in range(4))
        with np.errstate(invalid="ignore", divide="ignore"):
            rates = {
                "selection_rate": picked / rows,
                "tpr": hits / positives,
                "fpr": (picked - hits) / (rows - positives),
            }
        return {f"fairness:{self.column}": rates}

    def report(self, point: dict[str, Any], boot: dict[str, Any], level: float) -> Fairness:
        from loopml.evaluation.evaluate import Estimate

        key = f"fairness:{self.column}"
        found = Fairness(self.column, {}, dict(zip(self.labels, map(int, self.sizes), strict=True)))
        for index, label in enumerate(self.labels):
            found.groups[label] = {
                rate: Estimate(
                    float(point[key][rate][0, index]),
                    *bootstrap.interval(boot[key][rate][:, index], level),
                )
                for rate in RATES
            }
        for rate in RATES:
            here, there = point[key][rate], boot[key][rate]
            found.differences[rate] = Estimate(
                float(_spread(here)[0]), *bootstrap.interval(_spread(there), level)
            )
            found.ratios[rate] = Estimate(
                float(_ratio(here)[0]), *bootstrap.interval(_ratio(there), level)
            )
        return found


def _spread(values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.nanmax(values, axis=1) - np.nanmin(values, axis=1)


def _ratio(values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nanmin(values, axis=1) / np.nanmax(values, axis=1)


def group_rates(frame: pd.DataFrame, column: str, truth: np.ndarray) -> GroupRates:
    """The groups of a sensitive column (missing values form a group of their own)."""
    from loopml.errors import ColumnNotFoundError

    if column not in frame.columns:
        raise ColumnNotFoundError(f"There is no sensitive column {column!r} in the data.")
    labels = frame[column].astype(str).where(frame[column].notna(), "missing")
    codes, uniques = pd.factorize(labels, sort=True)
    return GroupRates(column, [str(u) for u in uniques], codes, truth)
