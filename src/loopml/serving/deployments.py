"""Deployments: what serves an endpoint — a champion, optionally a shadow and a canary with
guardrails — stored in the workspace so running servers pick up a change within seconds.

A deployment file (YAML) says, for example::

    champion: champion          # an alias or a version number
    shadow: challenger          # gets a copy of every request; callers never see it
    canary:
      version: challenger
      fraction: 0.1             # share of traffic the canary answers
      key: X-Loopml-Key         # requests with the same value of this header stick to one side
      guardrails:
        max_error_rate: 0.02
        max_p99_latency_ms: 50

Each change is a new revision, recorded in the model's history. Alerts (a version that failed
to load, a canary rolled back) are recorded beside it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from loopml.errors import DeploymentError, UsageError
from loopml.ids import new_id
from loopml.registry.api import get_version, require_model
from loopml.store import deployments as repo
from loopml.store import registry as registry_repo
from loopml.store.deployments import AlertRecord, DeploymentRecord
from loopml.tracking.environment import current_user
from loopml.workspace import Workspace, current_workspace
from loopml.yamltext import located_problems, read_yaml


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


def read_deployment(source: str | Path | dict[str, Any]) -> Deployment:
    """A deployment from a YAML file, YAML text or a dict; errors name the line."""
    data, text, where = read_yaml(source, "the deployment", DeploymentError)
    if data is None:
        data = {}
    if isinstance(data, dict) and isinstance(data.get("canary", {}), dict):
        canary = data.get("canary")
        if canary and isinstance(canary.get("version"), int):
            data = {**data, "canary": {**canary, "version": str(canary["version"])}}
    try:
        return Deployment.model_validate(data)
    except ValidationError as error:
        problems = located_problems(error.errors(), text)
        raise DeploymentError(f"{where} is not a valid deployment: {problems}") from None


def with_changes(
    spec: Deployment,
    *,
    champion: str | None = None,
    shadow: str | None = None,
    canary: str | None = None,
    fraction: float | None = None,
    remove_shadow: bool = False,
    remove_canary: bool = False,
) -> Deployment:
    """A copy of a deployment with the roles changed as the command line says."""
    data = spec.model_dump()
    if champion is not None:
        data["champion"] = champion
    if remove_shadow or shadow is not None:
        data["shadow"] = None if remove_shadow else shadow
    if remove_canary:
        data["canary"] = None
    elif canary is not None or fraction is not None:
        old = data.get("canary") or {}
        if fraction is None and not old:
            raise DeploymentError("A canary needs the share of traffic it answers: --fraction.")
        if canary is None and not old:
            raise DeploymentError("--fraction changes a canary; name its version with --canary.")
        moved = canary is not None and canary != old.get("version")
        data["canary"] = {
            **old,
            "version": canary or old["version"],
            "fraction": fraction if fraction is not None else old["fraction"],
            "started_at": None if moved else old.get("started_at"),
        }
    return read_deployment(data)


def deployment(name: str, *, workspace: Workspace | None = None) -> tuple[Deployment, int]:
    """The endpoint's deployment and its revision (0 and the default: champion only, when
    none was ever set)."""
    workspace = workspace or current_workspace()
    with workspace.metadata.read() as connection:
        require_model(connection, name)
        found = repo.deployment(connection, name)
    if found is None:
        return Deployment(), 0
    return Deployment.model_validate(found.spec), found.revision


def deploy(
    name: str,
    spec: Deployment | str | Path | dict[str, Any],
    *,
    reason: str | None = None,
    expected: int | None = None,
    workspace: Workspace | None = None,
) -> int | None:
    """Set what serves NAME; running servers follow within ``reload_seconds``. Every version
    the deployment names must exist. Returns the new revision; with ``expected``, only if the
    deployment is still at that revision (None, and nothing changed, otherwise)."""
    workspace = workspace or current_workspace()
    spec = spec if isinstance(spec, Deployment) else read_deployment(spec)
    for role, ref in spec.refs(name).items():
        try:
            get_version(ref, workspace=workspace)
        except UsageError as error:
            raise DeploymentError(f"The deployment's {role} {ref!r}: {error}") from None
    if spec.canary and spec.canary.started_at is None:
        spec = spec.model_copy(
            update={"canary": spec.canary.model_copy(update={"started_at": time.time()})}
        )
    return _save(name, spec, "deploy", reason or _describe(spec), workspace, expected)


def end_canary(
    name: str,
    reason: str,
    *,
    expected: int | None = None,
    workspace: Workspace | None = None,
) -> int | None:
    """Take the canary out of NAME's deployment and record why (an alert and a history entry).
    With ``expected``, only if the deployment is still at that revision; returns the new
    revision, or None when there was nothing to do."""
    workspace = workspace or current_workspace()
    spec, revision = deployment(name, workspace=workspace)
    if spec.canary is None or (expected is not None and expected != revision):
        return None
    rolled = {"version": spec.canary.version, "reason": reason, "at": time.time()}
    changed = spec.model_copy(update={"canary": None, "last_rollback": rolled})
    saved = _save(name, changed, "canary-off", reason, workspace, expected=revision)
    if saved is not None:
        raise_alert(
            name,
            "canary_rolled_back",
            f"Canary {spec.canary.version} rolled back: {reason}",
            rolled,
            workspace=workspace,
        )
    return saved


def _save(
    name: str,
    spec: Deployment,
    action: str,
    reason: str,
    workspace: Workspace,
    expected: int | None = None,
) -> int | None:
    now, actor = time.time(), current_user()
    with workspace.metadata.write() as connection:
        model = require_model(connection, name)
        registry_repo.lock(connection, model)
        revision = repo.save_deployment(
            connection, name, model, spec.model_dump(mode="json"), actor, now, expected
        )
        if revision is not None:
            event = {
                "action": action,
                "alias": None,
                "from_version": None,
                "to_version": None,
                "actor": actor,
                "reason": reason,
                "at": now,
            }
            registry_repo.add_event(connection, model, event)
    return revision


def _describe(spec: Deployment) -> str:
    parts = [f"champion {spec.champion}"]
    if spec.shadow:
        parts.append(f"shadow {spec.shadow}")
    if spec.canary:
        parts.append(f"canary {spec.canary.version} at {spec.canary.fraction:.0%}")
    return ", ".join(parts)


def raise_alert(
    endpoint: str,
    kind: str,
    message: str,
    details: dict[str, Any] | None = None,
    *,
    workspace: Workspace | None = None,
) -> AlertRecord:
    """Record an alert for an endpoint."""
    workspace = workspace or current_workspace()
    alert = AlertRecord(new_id(), endpoint, kind, message, details or {}, time.time(), None)
    with workspace.metadata.write() as connection:
        repo.add_alert(connection, alert)
    return alert


def alerts(
    endpoint: str, *, open_only: bool = False, workspace: Workspace | None = None
) -> list[AlertRecord]:
    """An endpoint's alerts, oldest first."""
    workspace = workspace or current_workspace()
    with workspace.metadata.read() as connection:
        return repo.list_alerts(connection, endpoint, open_only=open_only)


__all__ = [
    "Canary",
    "Deployment",
    "DeploymentRecord",
    "Guardrails",
    "alerts",
    "deploy",
    "deployment",
    "end_canary",
    "raise_alert",
    "read_deployment",
    "with_changes",
]
