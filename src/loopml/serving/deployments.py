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

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from loopml.errors import DeploymentError
from loopml.serving import operations as ops
from loopml.serving.spec import Canary, Deployment, Guardrails
from loopml.store.deployments import AlertRecord, DeploymentRecord
from loopml.store.pages import every
from loopml.tracking.environment import current_user
from loopml.workspace import Workspace, current_workspace
from loopml.yamltext import located_problems, read_yaml


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
    state = ops.get_deployment((workspace or current_workspace()).metadata, name)
    return state.spec, state.revision


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
    store = (workspace or current_workspace()).metadata
    spec = spec if isinstance(spec, Deployment) else read_deployment(spec)
    return ops.deploy(store, name, spec, current_user(), reason, expected)


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
    store = (workspace or current_workspace()).metadata
    return ops.end_canary(store, name, reason, current_user(), expected)


def raise_alert(
    endpoint: str,
    kind: str,
    message: str,
    details: dict[str, Any] | None = None,
    *,
    workspace: Workspace | None = None,
) -> AlertRecord:
    """Record an alert for an endpoint."""
    store = (workspace or current_workspace()).metadata
    return ops.raise_alert(store, endpoint, kind, message, details or {})


def alerts(
    endpoint: str, *, open_only: bool = False, workspace: Workspace | None = None
) -> list[AlertRecord]:
    """An endpoint's alerts, oldest first."""
    return list(
        every(ops.list_alerts, (workspace or current_workspace()).metadata, endpoint, open_only)
    )


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
