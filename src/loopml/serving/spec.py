"""What a deployment says: the champion, optionally a shadow and a canary with guardrails,
and the endpoint's SLOs (see loopml.serving.deployments for how one is set and followed)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Guardrails(BaseModel):
    """When a canary is rolled back. Each check waits for ``min_requests`` canary requests
    (``min_labels`` labelled ones for the metric) before it judges."""

    model_config = ConfigDict(extra="forbid")

    min_requests: int = Field(50, ge=1)
    max_error_rate: float = Field(0.05, ge=0, le=1)
    max_p99_latency_ms: float | None = Field(None, gt=0)
    max_latency_ratio: float | None = Field(3.0, gt=0)
    max_prediction_psi: float | None = Field(0.25, gt=0)
    metric: str | None = None
    max_metric_loss: float = Field(0.0, ge=0)
    min_labels: int = Field(200, ge=10)
    level: float = Field(0.95, gt=0, lt=1)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str | None) -> str | None:
        from loopml.errors import UsageError
        from loopml.evaluation.catalog import get_metric

        if metric is not None:
            try:
                get_metric(metric)
            except UsageError as error:
                raise ValueError(str(error)) from None
        return metric


class Canary(BaseModel):
    """A version answering a fraction of the traffic, watched by guardrails."""

    model_config = ConfigDict(extra="forbid")

    version: str
    fraction: float = Field(gt=0, lt=1)
    key: str = "X-Loopml-Key"
    guardrails: Guardrails = Guardrails()
    started_at: float | None = None


class SLOs(BaseModel):
    """What the endpoint promises, judged by every monitored window (each one optional)."""

    model_config = ConfigDict(extra="forbid")

    max_p99_latency_ms: float | None = Field(None, gt=0)
    max_p95_latency_ms: float | None = Field(None, gt=0)
    max_error_rate: float | None = Field(None, ge=0, le=1)
    max_cost_per_1k: float | None = Field(None, ge=0)
    min_throughput_rps: float | None = Field(None, ge=0)


class Deployment(BaseModel):
    """What serves an endpoint."""

    model_config = ConfigDict(extra="forbid")

    champion: str = "champion"
    shadow: str | None = None
    canary: Canary | None = None
    reload_seconds: float = Field(2.0, gt=0)
    check_seconds: float = Field(5.0, gt=0)
    slos: SLOs = Field(default_factory=SLOs)
    last_rollback: dict[str, Any] | None = None

    @field_validator("champion", "shadow", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    def refs(self, name: str) -> dict[str, str]:
        """Role → the reference each role serves (champion, shadow, canary)."""
        found = {"champion": f"{name}@{self.champion}"}
        if self.shadow:
            found["shadow"] = f"{name}@{self.shadow}"
        if self.canary:
            found["canary"] = f"{name}@{self.canary.version}"
        return found

    def describe(self) -> str:
        """The roles in a few words: 'champion 3, canary 4 at 10%'."""
        parts = [f"champion {self.champion}"]
        if self.shadow:
            parts.append(f"shadow {self.shadow}")
        if self.canary:
            parts.append(f"canary {self.canary.version} at {self.canary.fraction:.0%}")
        return ", ".join(parts)
