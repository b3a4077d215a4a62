"""Performance estimated before labels arrive: confidence-based performance estimation (the
CBPE idea NannyML published) for classifiers.

A classifier's scores, once calibrated, say how likely each answer is to be right. The
expected AUC and accuracy of a window follow from its scores alone: each row is a positive
with its calibrated probability. The calibration is learned, by isotonic regression, on the
version's own labelled traffic from before the window (its scores and the labels that came
back), not on its training rows, where a model is more sure of itself than anywhere else.
So the estimate holds while the relation between scores and outcomes stays as it was; it
drifts with concept drift, which only labels can show. Regression has no such estimate here: its
loss cannot be read off a point prediction (NannyML's direct loss estimation trains a second
model for it), so a regressor's window is marked not estimated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from loopml.events.traffic import Traffic
from loopml.monitoring.checks import SCORE, Check, Seen, point

MIN_CALIBRATION_ROWS = 200
CALIBRATION_ROWS = 50_000
MIN_WINDOW_ROWS = 30


def estimated_performance(seen: Seen, traffic: Traffic, version: int | None, task: str) -> Check:
    """The window's expected AUC and accuracy (threshold 0.5) from its scores, calibrated on
    the serving version's labelled traffic before the window; skipped, saying why, for a
    regressor or before enough of that traffic is labelled."""
    check = Check("estimated_performance")
    if task != "classification":
        return _skip(
            check, "estimation is for classifiers: a regressor's loss cannot be read off its scores"
        )
    if version is None or SCORE not in seen.sample or len(seen.sample) < MIN_WINDOW_ROWS:
        return _skip(check, f"fewer than {MIN_WINDOW_ROWS} scored rows in the window")
    scores, truth = _labelled_before(traffic, version)
    if len(truth) < MIN_CALIBRATION_ROWS or len(np.unique(truth)) != 2:
        return _skip(
            check,
            f"version {version} needs {MIN_CALIBRATION_ROWS} labelled answers of two classes "
            f"from before the window to calibrate on ({len(truth)} so far)",
        )
    window = seen.sample[SCORE].to_numpy(dtype=float)
    calibrated = calibrate(scores, truth, window)
    auc, accuracy = expected_auc(window, calibrated), expected_accuracy(window, calibrated)
    check.points += [point("estimated_roc_auc", auc), point("estimated_accuracy", accuracy)]
    check.details = {
        "estimated_roc_auc": auc,
        "estimated_accuracy": accuracy,
        "rows": len(window),
        "calibration_rows": len(truth),
        "version": version,
        "method": "CBPE: scores calibrated by isotonic regression on the version's earlier "
        "labelled traffic",
    }
    check.message = f"estimated AUC {auc:.3f} and accuracy {accuracy:.3f} from {len(window)} scores"
    return check


def _skip(check: Check, why: str) -> Check:
    check.status, check.message = "skipped", why
    return check


def _labelled_before(traffic: Traffic, version: int) -> tuple[np.ndarray, np.ndarray]:
    """The scores and 0/1 labels (the larger class positive, as the scores' class is) of the
    version's answers made, and labelled, before the window; the most recent first, at most
    CALIBRATION_ROWS."""
    if not traffic.has("feedback", "label") or not traffic.has("predictions", "output.score"):
        return np.empty(0), np.empty(0)
    start = float(traffic.start)
    labels = (
        "SELECT id, label FROM feedback WHERE status = 'ok' AND time < "
        f"{start!r} QUALIFY row_number() OVER (PARTITION BY id ORDER BY time DESC) = 1"
    )
    found = traffic.connection.execute(
        f'SELECT p."output.score" AS score, l.label FROM predictions p JOIN ({labels}) l '
        f"USING (id) WHERE {traffic.answered('p')} AND p.version = {int(version)} AND "
        f'p.time < {start!r} AND p."output.score" IS NOT NULL '
        f"ORDER BY p.time DESC LIMIT {CALIBRATION_ROWS}"
    ).df()
    if found.empty:
        return np.empty(0), np.empty(0)
    classes = sorted(pd.unique(found["label"]), key=lambda value: (str(type(value)), value))
    positive = classes[-1]
    return found["score"].to_numpy(dtype=float), (found["label"] == positive).to_numpy(float)


def calibrate(scores: np.ndarray, truth: np.ndarray, new: np.ndarray) -> np.ndarray:
    """The probability of the positive class for each new score, from an isotonic regression
    of the reference's labels on its scores."""
    from sklearn.isotonic import IsotonicRegression

    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, truth)
    return np.clip(fitted.predict(new), 0.0, 1.0)


def expected_auc(scores: np.ndarray, probabilities: np.ndarray) -> float:
    """The AUC the scores would have if each row were a positive with its probability: over
    every pair of rows, the chance the higher-scored one is the positive and the other not,
    ties counting half."""
    order = np.argsort(scores, kind="stable")
    s, q = scores[order], probabilities[order]
    negatives = 1.0 - q
    _, first, counts = np.unique(s, return_index=True, return_counts=True)
    below = np.concatenate([[0.0], np.cumsum(negatives)])  # negative mass under each index
    numerator = 0.0
    for start, count in zip(first, counts, strict=True):
        tied = slice(start, start + count)
        positives = q[tied].sum()
        numerator += positives * below[start]
        # ties: a positive and a negative of equal score count half, each row not with itself
        numerator += 0.5 * (positives * negatives[tied].sum() - (q[tied] * negatives[tied]).sum())
    denominator = q.sum() * negatives.sum() - (q * negatives).sum()
    return float(numerator / denominator) if denominator > 0 else float("nan")


def expected_accuracy(scores: np.ndarray, probabilities: np.ndarray) -> float:
    """The share of answers expected right at the threshold 0.5."""
    return float(np.mean(np.where(scores >= 0.5, probabilities, 1.0 - probabilities)))
