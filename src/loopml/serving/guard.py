"""Canary guardrails: what a server saw of its champion and canary since the canary started,
and the judgement whether the canary breaches its guardrails.

Error rate, p99 latency (absolute and against the champion's) and prediction drift (PSI of the
canary's scores against the champion's, on the champion's deciles) come from the requests this
process answered. The metric check uses labelled traffic from the prediction log: the
canary's and the champion's metric on their own rows, each with a bootstrap interval; the two
samples are independent, so the difference's interval combines them (normal approximation).
The canary is rolled back when the whole interval lies below ``-max_metric_loss``.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from loopml.data.shift import psi
from loopml.serving.spec import Guardrails

KEPT = 20_000  # latencies and scores kept per role: enough for a stable p99 and deciles


@dataclass
class _Seen:
    requests: int = 0
    errors: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=KEPT))
    scores: deque = field(default_factory=lambda: deque(maxlen=KEPT))


class Guard:
    """Counts what the champion and the canary answered; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._seen = {"champion": _Seen(), "canary": _Seen()}

    def answered(self, role: str, latency_ms: float, scores: np.ndarray) -> None:
        seen = self._seen.get(role)
        if seen is None:
            return
        with self._lock:
            seen.requests += 1
            seen.latencies.append(latency_ms)
            seen.scores.extend(np.asarray(scores, dtype=np.float64)[:100].tolist())

    def failed(self, role: str) -> None:
        seen = self._seen.get(role)
        if seen is None:
            return
        with self._lock:
            seen.requests += 1
            seen.errors += 1

    def breaches(self, rails: Guardrails) -> list[str]:
        """Why the canary should be rolled back, from the requests seen; empty when it holds
        or has not yet answered ``min_requests``."""
        with self._lock:
            canary, champion = self._seen["canary"], self._seen["champion"]
            found = _request_breaches(rails, canary, champion)
        return found


def _request_breaches(rails: Guardrails, canary: _Seen, champion: _Seen) -> list[str]:
    if canary.requests < rails.min_requests:
        return []
    found = []
    rate = canary.errors / canary.requests
    if rate > rails.max_error_rate:
        found.append(
            f"error rate {rate:.1%} over {canary.requests} requests is above "
            f"{rails.max_error_rate:.1%}"
        )
    p99 = _p99(canary.latencies)
    if rails.max_p99_latency_ms is not None and p99 is not None and p99 > rails.max_p99_latency_ms:
        found.append(f"p99 latency {p99:.1f} ms is above {rails.max_p99_latency_ms:g} ms")
    ready = champion.requests >= rails.min_requests
    base = _p99(champion.latencies)
    if rails.max_latency_ratio and ready and p99 and base and p99 > rails.max_latency_ratio * base:
        found.append(
            f"p99 latency {p99:.1f} ms is more than {rails.max_latency_ratio:g}x the "
            f"champion's {base:.1f} ms"
        )
    if rails.max_prediction_psi and ready and canary.scores and champion.scores:
        value = score_psi(np.asarray(champion.scores), np.asarray(canary.scores))
        if value > rails.max_prediction_psi:
            found.append(
                f"prediction drift against the champion: PSI {value:.3f} is above "
                f"{rails.max_prediction_psi:g}"
            )
    return found


def _p99(latencies: deque) -> float | None:
    return float(np.percentile(np.asarray(latencies), 99)) if latencies else None


def score_psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of current scores against reference scores, on the
    reference's quantiles."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    expected = np.bincount(
        np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1
    )
    actual = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    return psi(expected.astype(np.float64), actual.astype(np.float64))


def metric_breach(rails: Guardrails, labelled: Any, task: str, seed: int = 0) -> str | None:
    """The metric check on labelled traffic (a frame with role, score, label), or None when
    it holds or either side has fewer than ``min_labels`` labelled rows."""
    from loopml.evaluation.catalog import higher_is_better
    from loopml.evaluation.evaluate import PRIMARY
    from loopml.evaluation.wording import direction, interval, number

    metric = rails.metric or PRIMARY[task]
    estimates = {}
    for role in ("canary", "champion"):
        rows = labelled[labelled["role"] == role]
        if len(rows) < rails.min_labels:
            return None
        estimate = _estimate(rows, metric, task, rails.level, seed)
        if estimate is None:
            return None
        estimates[role] = estimate
    (canary, c_low, c_high), (champion, b_low, b_high) = estimates["canary"], estimates["champion"]
    z = stats.norm.ppf(0.5 + rails.level / 2)
    spread = np.hypot((c_high - c_low) / (2 * z), (b_high - b_low) / (2 * z))
    gain = (canary - champion) if higher_is_better(metric) else (champion - canary)
    low, high = gain - z * spread, gain + z * spread
    if high < -rails.max_metric_loss:
        allowed = (
            f"the {number(rails.max_metric_loss)} loss allowed"
            if rails.max_metric_loss
            else "no change"
        )
        return (
            f"{metric} is worse than the champion's ({direction(metric)}): {number(canary)} "
            f"against {number(champion)}; the canary loses {interval(-gain, -high, -low)} "
            f"({rails.level:.0%} interval), beyond {allowed}"
        )
    return None


def _estimate(rows: Any, metric: str, task: str, level: float, seed: int) -> tuple | None:
    from loopml.evaluation.evaluate import score_estimate

    found = score_estimate(rows, metric, task=task, level=level, resamples=300, seed=seed)
    return None if found is None else (found.value, found.low, found.high)
