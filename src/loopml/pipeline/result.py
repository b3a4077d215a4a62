"""What a pipeline run reports: each step's fate, and the outputs, loaded when asked for."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loopml.errors import ArtifactNotFoundError

STATUSES = ("ran", "cached", "reused", "failed", "skipped", "pruned")


@dataclass
class StepReport:
    """One step of a pipeline run: ran, cached (an earlier run's outputs), reused (from the run
    being resumed), failed, skipped (not reached after a failure) or pruned (by a sweep)."""

    name: str
    status: str
    run_id: str | None = None
    key: str | None = None
    seconds: float = 0.0
    attempts: int = 0
    outputs: dict[str, str] = field(default_factory=dict)  # name -> sha256
    cached_from: str | None = None
    message: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "run_id": self.run_id,
            "seconds": round(self.seconds, 6),
            "attempts": self.attempts,
            "outputs": self.outputs,
            "cached_from": self.cached_from,
            "message": self.message,
        }


class PipelineResult:
    """The outcome of one pipeline run. ``result["model"]`` is the value of an output."""

    def __init__(
        self,
        *,
        pipeline: str,
        run_id: str,
        status: str,
        steps: list[StepReport],
        params: dict[str, Any],
        seconds: float,
        load: Callable[[str], bytes],
        values: dict[str, Any],
        intermediate: list[tuple[int, float]] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.run_id = run_id
        self.status = status
        self.steps = steps
        self.params = params
        self.seconds = seconds
        self._load = load
        self._values = values
        self.intermediate = intermediate or []  # (step, value) a step reported for pruning

    def __repr__(self) -> str:
        return (
            f"PipelineResult(pipeline={self.pipeline!r}, run_id={self.run_id!r}, "
            f"status={self.status!r}, cached={self.cached})"
        )

    def __getitem__(self, output: str) -> Any:
        if output in self._values:
            return self._values[output]
        digest = self.outputs.get(output)
        if digest is None:
            known = ", ".join(self.outputs) or "none"
            raise ArtifactNotFoundError(
                f"Pipeline run {self.run_id} has no output {output!r}. Its outputs: {known}."
            )
        value = self._values[output] = pickle.loads(self._load(digest))
        return value

    @property
    def outputs(self) -> dict[str, str]:
        """Every output the run produced or reused, with its sha256."""
        return {name: digest for report in self.steps for name, digest in report.outputs.items()}

    @property
    def cached(self) -> list[str]:
        """The steps that did not run because their outputs were cached or reused."""
        return [s.name for s in self.steps if s.status in ("cached", "reused")]

    def step(self, name: str) -> StepReport:
        """The report of one step."""
        for report in self.steps:
            if report.name == name:
                return report
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "pipeline": self.pipeline,
            "run_id": self.run_id,
            "status": self.status,
            "seconds": round(self.seconds, 6),
            "params": {key: _plain(value) for key, value in self.params.items()},
            "cached": self.cached,
            "steps": [report.to_dict() for report in self.steps],
        }


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(getattr(value, "ref", value))
