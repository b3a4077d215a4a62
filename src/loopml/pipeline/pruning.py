"""Pruning of sweep trials, decided where the step runs, so it works on every executor.

When a trial starts, the sweep hands it the median of the completed trials' intermediate
values at each step (Optuna's median rule). A step that calls ``context.report(value, step)``
learns at once whether its best value so far is worse than that median, and can stop early.
Every reported value also goes to the Optuna study when the step returns.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from statistics import median
from typing import Any

from loopml.pipeline.context import Report

STARTUP_TRIALS = 5


@dataclass(frozen=True)
class MedianRule:
    """Prune when the best value reported so far is worse than the median of the completed
    trials at the same step (after ``warmup_steps``)."""

    maximize: bool
    medians: dict[int, float]
    warmup_steps: int = 0

    def __call__(self, reports: list[Report]) -> bool:
        step = reports[-1][0]
        threshold = self.medians.get(step)
        if step < self.warmup_steps or threshold is None:
            return False
        values = [value for _, value in reports]
        best = max(values) if self.maximize else min(values)
        return best < threshold if self.maximize else best > threshold


def median_rule(
    study: Any, *, startup_trials: int = STARTUP_TRIALS, warmup_steps: int = 0
) -> MedianRule | None:
    """The rule from a study's completed trials; None until ``startup_trials`` completed."""
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(completed) < startup_trials:
        return None
    by_step: dict[int, list[float]] = defaultdict(list)
    for trial in completed:
        for step, value in trial.intermediate_values.items():
            by_step[step].append(value)
    if not by_step:
        return None
    maximize = study.direction == StudyDirection.MAXIMIZE
    medians = {step: float(median(values)) for step, values in by_step.items()}
    return MedianRule(maximize, medians, warmup_steps)
