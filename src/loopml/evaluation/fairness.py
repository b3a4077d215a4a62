"""Fairness across sensitive groups, per group with the largest difference and the smallest
ratio between groups, each with its interval:

- classification: selection rate, true- and false-positive rates;
- regression: mean absolute error, mean prediction and mean target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from loopml.evaluation import bootstrap

if TYPE_CHECKING:
    from loopml.evaluation.evaluate import Estimate

RATES = {
    "classification": ("selection_rate", "tpr", "fpr"),
    "regression": ("mae", "mean_prediction", "mean_target"),
}


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

    def __init__(
        self,
        column: str,
        labels: list[str],
        codes: np.ndarray,
        truth: np.ndarray,
        task: str = "classification",
    ):
        self.column, self.labels, self.task = column, labels, task
        self.rates = RATES[task]
        self.onehot = np.zeros((len(codes), len(labels)))
        self.onehot[np.arange(len(codes)), codes] = 1.0
        self.truth = truth.astype(np.float64)
        self.sizes = self.onehot.sum(axis=0).astype(int)
        self.columns: np.ndarray | None = None

    def prepare(self, score: np.ndarray, threshold: float) -> None:
        """Fix the model's scores (and a classifier's decisions) before resampling."""
        if self.task == "regression":
            parts = [np.abs(score - self.truth), score, self.truth]
        else:
            chose = (score >= threshold).astype(np.float64)
            parts = [chose, self.truth, chose * self.truth]
        self.columns = np.hstack([self.onehot, *(self.onehot * p[:, None] for p in parts)])

    def values(self, weights: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        sums = weights.astype(np.float64) @ self.columns
        count = len(self.labels)
        rows, first, second, third = (sums[:, i * count : (i + 1) * count] for i in range(4))
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.task == "regression":
                rates = {"mae": first / rows, "mean_prediction": second / rows}
                rates["mean_target"] = third / rows
            else:
                rates = {"selection_rate": first / rows, "tpr": third / second}
                rates["fpr"] = (first - third) / (rows - second)
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
                for rate in self.rates
            }
        for rate in self.rates:
            here, there = point[key][rate], boot[key][rate]
            found.differences[rate] = Estimate(
                float(_spread(here)[0]), *bootstrap.interval(_spread(there), level)
            )
            if self.task == "classification":  # a ratio of errors or of means says little
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


def group_rates(
    frame: pd.DataFrame, column: str, truth: np.ndarray, task: str = "classification"
) -> GroupRates:
    """The groups of a sensitive column (missing values form a group of their own)."""
    from loopml.errors import ColumnNotFoundError

    if column not in frame.columns:
        raise ColumnNotFoundError(f"There is no sensitive column {column!r} in the data.")
    labels = frame[column].astype(str).where(frame[column].notna(), "missing")
    codes, uniques = pd.factorize(labels, sort=True)
    return GroupRates(column, [str(u) for u in uniques], codes, truth, task)
