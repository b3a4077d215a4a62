"""A candidate against a baseline over several folds (a rolling-origin backtest), with one
paired bootstrap pooled across them.

Each fold has its own rows, its own candidate (trained on what came before the fold) and its
own baseline. A resample draws Poisson weights for every row of every fold at once; each
metric is measured fold by fold and pooled as the row-weighted mean of the folds' values, for
the candidate and the baseline alike, so the pooled difference is paired within each fold
and one lucky or unlucky fold weighs only its share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from loopml.errors import UsageError
from loopml.evaluation import bootstrap
from loopml.evaluation.evaluate import (
    PRIMARY,
    Estimate,
    Evaluation,
    _estimates,
    _metric_names,
    _Subject,
)
from loopml.evaluation.metrics import check_scores
from loopml.evaluation.scoring import binary_target


@dataclass(frozen=True)
class Fold:
    """One fold's rows: their labels and the candidate's and the baseline's scores."""

    name: str
    labels: pd.Series
    candidate: np.ndarray
    baseline: np.ndarray


@dataclass(frozen=True)
class FoldResult:
    """One fold's share of a pooled backtest: its rows and its three estimates."""

    name: str
    rows: int
    candidate: Estimate
    baseline: Estimate
    difference: Estimate

    def to_dict(self) -> dict[str, object]:
        return {
            "fold": self.name,
            "rows": self.rows,
            "candidate": self.candidate.to_dict(),
            "baseline": self.baseline.to_dict(),
            "difference": self.difference.to_dict(),
        }


def evaluate_folds(
    folds: Sequence[Fold],
    *,
    task: str,
    against: str,
    metric: str | None = None,
    threshold: float = 0.5,
    positive: object = None,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[Evaluation, list[FoldResult]]:
    """The pooled evaluation (the candidate's metric, the baseline's as ``against`` and their
    paired difference, with intervals) and each fold's own figures from the same resamples."""
    if not folds:
        raise UsageError("A backtest needs at least one fold.")
    names = _metric_names(task, [metric] if metric else None)
    subjects = [_subjects(fold, task, threshold, positive, names) for fold in folds]
    sizes = np.array([len(fold.labels) for fold in folds], dtype=np.float64)
    point, boot = _measured(subjects, sizes, names, resamples, seed)
    pooled_point = _pooled(point, sizes, names)
    pooled_boot = _pooled(boot, sizes, names)
    evaluation = Evaluation(
        task=task,
        rows=int(sizes.sum()),
        level=level,
        resamples=resamples,
        seed=seed,
        threshold=threshold,
        primary=PRIMARY[task] if PRIMARY[task] in names else names[0],
        metrics=_estimates(pooled_point["candidate"], pooled_boot["candidate"], names, level),
        baselines={
            against: _estimates(pooled_point["baseline"], pooled_boot["baseline"], names, level)
        },
        differences={against: _difference(pooled_point, pooled_boot, names, level)},
    )
    primary = evaluation.primary
    results = [
        FoldResult(
            fold.name,
            len(fold.labels),
            _estimates(point[i]["candidate"], boot[i]["candidate"], [primary], level)[primary],
            _estimates(point[i]["baseline"], boot[i]["baseline"], [primary], level)[primary],
            _difference(point[i], boot[i], [primary], level)[primary],
        )
        for i, fold in enumerate(folds)
    ]
    return evaluation, results


Measured = list[dict[str, dict[str, np.ndarray]]]  # per fold: role -> metric -> values


def _measured(
    subjects: list[list[tuple[str, _Subject]]],
    sizes: np.ndarray,
    names: Sequence[str],
    resamples: int,
    seed: int,
) -> tuple[Measured, Measured]:
    """Every fold's metrics for both roles on the data itself and on each resample, one
    weight stream over all the folds' rows."""
    starts = np.concatenate([[0], np.cumsum(sizes).astype(int)])
    total = int(starts[-1])

    def measure(weights: np.ndarray) -> Measured:
        return [
            {role: subject.values(weights[:, starts[i] : starts[i + 1]]) for role, subject in pair}
            for i, pair in enumerate(subjects)
        ]

    point = measure(np.ones((1, total), dtype=np.uint8))
    parts = [
        measure(bootstrap.block(seed, total, start, min(bootstrap.CHUNK, resamples - start)))
        for start in range(0, resamples, bootstrap.CHUNK)
    ]
    boot = [
        {
            role: {n: np.concatenate([p[i][role][n] for p in parts]) for n in names}
            for role in ("candidate", "baseline")
        }
        for i in range(len(subjects))
    ]
    return point, boot


def _subjects(
    fold: Fold, task: str, threshold: float, positive: object, names: tuple[str, ...]
) -> list[tuple[str, _Subject]]:
    if task == "classification":
        truth = binary_target(fold.labels, positive)
    else:
        truth = fold.labels.to_numpy(dtype=np.float64)
    found = []
    for role, score in (("candidate", fold.candidate), ("baseline", fold.baseline)):
        score = np.asarray(score, dtype=np.float64)
        if len(score) != len(truth):
            raise UsageError(
                f"Fold {fold.name}: {len(score)} {role} scores for {len(truth)} labelled rows."
            )
        if task == "classification":
            check_scores(score, f"the {role} of fold {fold.name}")
        found.append((role, _Subject(task, truth, score, threshold, names)))
    return found


def _pooled(
    found: list[dict[str, dict[str, np.ndarray]]], sizes: np.ndarray, names: Sequence[str]
) -> dict[str, dict[str, np.ndarray]]:
    """Each role's metrics as the row-weighted mean of the folds' (a fold whose metric is
    undefined in a resample, such as AUC on one class, drops out of that resample)."""
    pooled: dict[str, dict[str, np.ndarray]] = {}
    for role in ("candidate", "baseline"):
        pooled[role] = {}
        for name in names:
            values = np.stack([fold[role][name] for fold in found])  # folds x resamples
            weights = np.where(np.isfinite(values), sizes[:, None], 0.0)
            total = weights.sum(axis=0)
            summed = np.nansum(values * weights, axis=0)
            pooled[role][name] = np.where(total > 0, summed / np.where(total > 0, total, 1), np.nan)
    return pooled


def _difference(
    point: dict[str, dict[str, np.ndarray]],
    boot: dict[str, dict[str, np.ndarray]],
    names: Sequence[str],
    level: float,
) -> dict[str, Estimate]:
    """Candidate minus baseline, resample by resample."""
    return {
        name: Estimate(
            float(point["candidate"][name][0] - point["baseline"][name][0]),
            *bootstrap.interval(boot["candidate"][name] - boot["baseline"][name], level),
        )
        for name in names
    }
