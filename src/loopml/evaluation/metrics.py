"""Metrics as functions of weighted rows, so a bootstrap resample is just another weighting.

Every metric here is computed for a whole block of resamples at once: ``weights`` is a
``(resamples, rows)`` array (Poisson counts, or ones for the point estimate). ROC AUC sorts the
scores once and then needs two cumulative sums per resample, in integers, so it is exact; the
other metrics are ratios of weighted sums, taken with one matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loopml.errors import InvalidValueError

EPS = np.finfo(np.float64).eps
CALIBRATION_BINS = 10


class RankedScores:
    """Scores sorted once, so the AUC of any weighting takes one cumulative sum.

    For each positive row it keeps how many negatives score strictly below it (``low``) and
    at most as high (``high``); for a weighting, with C the running total of the negatives'
    weights in score order, AUC = Σ w_pos (C[low] + C[high]) / (2 W_pos W_neg): ties count
    half, and every sum is an exact integer.
    """

    def __init__(self, positive: np.ndarray, scores: np.ndarray) -> None:
        negatives = np.flatnonzero(~positive)
        self.negatives = negatives[np.argsort(scores[negatives], kind="stable")]
        self.positives = np.flatnonzero(positive)
        ordered = scores[self.negatives]
        wanted = scores[self.positives]
        self.low = np.searchsorted(ordered, wanted, side="left")
        self.high = np.searchsorted(ordered, wanted, side="right")
        self.ties = bool(np.any(self.low != self.high))

    def auc(self, weights: np.ndarray) -> np.ndarray:
        """ROC AUC of each row of weights: P(a positive scores above a negative), ties half."""
        count = len(weights)
        running = np.zeros((count, len(self.negatives) + 1), dtype=np.int32)
        np.cumsum(np.take(weights, self.negatives, axis=1), axis=1, out=running[:, 1:])
        below = np.take(running, self.low, axis=1)
        below = below + np.take(running, self.high, axis=1) if self.ties else below * 2
        positive = np.take(weights, self.positives, axis=1).astype(np.float64)
        pairs = np.einsum("ij,ij->i", positive, below.astype(np.float64))
        total = 2.0 * positive.sum(axis=1) * running[:, -1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return pairs / total


@dataclass
class Sums:
    """Per-row columns whose weighted sums give the metrics, and how to read them back."""

    columns: np.ndarray  # (rows, k) float64
    names: tuple[str, ...]

    def of(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        totals = weights.astype(np.float64) @ self.columns
        return {name: totals[:, i] for i, name in enumerate(self.names)}


def classification_sums(positive: np.ndarray, score: np.ndarray, threshold: float) -> Sums:
    """The weighted sums behind accuracy, precision, recall, F1, log-loss, Brier and ECE."""
    y = positive.astype(np.float64)
    p = np.clip(score.astype(np.float64), EPS, 1 - EPS)
    chosen = (score >= threshold).astype(np.float64)
    bins = np.minimum((score * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
    bins = np.clip(bins, 0, CALIBRATION_BINS - 1)
    in_bin = np.zeros((len(y), CALIBRATION_BINS))
    in_bin[np.arange(len(y)), bins] = 1.0
    columns = [
        np.ones_like(y),
        y,
        chosen,
        y * chosen,
        (chosen == y).astype(np.float64),
        -(y * np.log(p) + (1 - y) * np.log1p(-p)),
        (score - y) ** 2,
    ]
    names = ["n", "y", "chosen", "tp", "correct", "log_loss", "squared"]
    stacked = np.column_stack([*columns, in_bin * score[:, None], in_bin * y[:, None]])
    names += [f"p{b}" for b in range(CALIBRATION_BINS)] + [f"y{b}" for b in range(CALIBRATION_BINS)]
    return Sums(stacked, tuple(names))


def classification_values(sums: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The metrics from the weighted sums (NaN where a ratio has no denominator)."""
    n, tp = sums["n"], sums["tp"]
    with np.errstate(invalid="ignore", divide="ignore"):
        gaps = sum(np.abs(sums[f"p{b}"] - sums[f"y{b}"]) for b in range(CALIBRATION_BINS))
        return {
            "log_loss": sums["log_loss"] / n,
            "brier": sums["squared"] / n,
            "accuracy": sums["correct"] / n,
            "precision": tp / sums["chosen"],
            "recall": tp / sums["y"],
            "f1": 2 * tp / (sums["chosen"] + sums["y"]),
            "ece": gaps / n,
        }


def regression_sums(target: np.ndarray, prediction: np.ndarray) -> Sums:
    """The weighted sums behind MAE, RMSE, R² and MAPE (target centred, for R²'s accuracy)."""
    y = target.astype(np.float64)
    residual = prediction.astype(np.float64) - y
    centred = y - y.mean()
    columns = np.column_stack(
        [
            np.ones_like(y),
            np.abs(residual),
            residual**2,
            centred,
            centred**2,
            np.abs(residual) / np.maximum(np.abs(y), EPS),
        ]
    )
    return Sums(columns, ("n", "absolute", "squared", "centred", "centred_squared", "relative"))


def regression_values(sums: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The regression metrics from the weighted sums."""
    n = sums["n"]
    with np.errstate(invalid="ignore", divide="ignore"):
        total = sums["centred_squared"] - sums["centred"] ** 2 / n
        return {
            "mae": sums["absolute"] / n,
            "rmse": np.sqrt(sums["squared"] / n),
            "r2": 1.0 - sums["squared"] / total,
            "mape": sums["relative"] / n,
        }


def check_scores(score: np.ndarray, what: str) -> None:
    """Scores of a classifier: finite probabilities in [0, 1]."""
    if not np.all(np.isfinite(score)):
        raise InvalidValueError(f"The {what} scores hold NaN or infinite values.")
    if score.min() < 0 or score.max() > 1:
        raise InvalidValueError(
            f"The {what} scores must be probabilities in [0, 1]; they range from "
            f"{score.min():.4g} to {score.max():.4g}. Pass predict_proba's positive column."
        )
