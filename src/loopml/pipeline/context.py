"""StepContext: what a running step may record about itself, on any executor.

A step asks for it by declaring a parameter annotated ``StepContext``. What it records travels
back with the step's result and is written to the step's run (and metrics also to the pipeline
run) by the process that drives the pipeline, so the same code works inline, in a process pool
and on a Dask cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from loopml.tracking.validation import check_key, metric_value

MetricRecord = tuple[str, float, int | None, float]
Report = tuple[int, float]  # (step, intermediate value of the objective)
PruneRule = Callable[[list[Report]], bool]


class StepContext:
    """Handed to a step that asks for it: log metrics and tags, report progress for pruning."""

    def __init__(
        self,
        step: str,
        *,
        attempt: int = 1,
        seed: int | None = None,
        pruning: PruneRule | None = None,
    ) -> None:
        self.step = step
        self.attempt = attempt
        self.seed = seed
        self.metrics: list[MetricRecord] = []
        self.tags: dict[str, str] = {}
        self.reports: list[Report] = []
        self._pruning = pruning
        self._pruned = False

    def __repr__(self) -> str:
        return f"StepContext(step={self.step!r}, attempt={self.attempt})"

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Record a metric value on this step's run and on the pipeline run."""
        check_key(key, "metric")
        number = metric_value(key, value, f"step {self.step}")
        self.metrics.append((key, number, step, time.time()))

    def log_metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        """Record several metric values at one step."""
        for key, value in values.items():
            self.log_metric(key, value, step)

    def set_tag(self, key: str, value: Any) -> None:
        """Set a tag on this step's run."""
        check_key(key, "tag")
        self.tags[key] = str(value)

    def report(self, value: float, step: int) -> bool:
        """Report an intermediate value of the objective (a sweep prunes on these).

        Returns True when the sweep has decided to prune this trial: the step should stop
        early, for example by returning what it has. Outside a sweep it always returns False.
        """
        number = metric_value("intermediate value", value, f"step {self.step}")
        self.reports.append((int(step), number))
        if self._pruning is not None and not self._pruned:
            self._pruned = bool(self._pruning(self.reports))
        return self._pruned

    @property
    def pruned(self) -> bool:
        """Whether the sweep asked this trial to stop."""
        return self._pruned
