"""The serving operations of the metadata store: deployments, the versions their servers
refuse for a while, and alerts (see loopml.store.operations).

A change to what serves an endpoint (a deploy, the end of a canary, a refused version or its
clearing) needs an admin over HTTP; a running model server that rolls a canary back or
refuses a version therefore runs with an admin token. Raising an alert needs an editor.
A change of a deployment is checked and made in one transaction under the model's lock, so
two servers or schedulers that act at once never both act on the same revision.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field
from sqlalchemy.engine import Connection

from loopml.errors import DeploymentError
from loopml.ids import new_id
from loopml.registry import operations as registry_ops
from loopml.registry.api import require_model
from loopml.serving.spec import Deployment
from loopml.store import deployments as repo
from loopml.store import monitoring as monitoring_repo
from loopml.store import registry as registry_repo
from loopml.store.deployments import AlertRecord, RefusalRecord
from loopml.store.monitoring import WindowRecord
from loopml.store.operations import current_actor, operation
from loopml.store.pages import PAGE, Cursor, Page, PageSize, page
from loopml.tracking.operations import NO_NUL, Key, Moment, Name, Text

RETRY_FIRST, RETRY_MOST = 5.0, 300.0  # seconds before a version that failed to load is retried
Version = Annotated[int, Field(ge=1, le=2**31 - 1)]
Revision = Annotated[int, Field(ge=0, le=2**31 - 1)]
Kind = Annotated[str, Field(min_length=1, max_length=128, pattern=NO_NUL)]
ServingRole = Literal["champion", "shadow", "canary"]


@dataclass(frozen=True)
class DeploymentState:
    """An endpoint's deployment at its revision (0 and the default, champion only, when none
    was ever set), with the versions its servers refuse for now."""

    spec: Deployment
    revision: int
    refused: list[RefusalRecord]


@operation("GET /deployments/{name}")
def get_deployment(connection: Connection, name: Key) -> DeploymentState:
    """What serves an endpoint: its deployment, its revision and the refused versions, read
    together (what a model server follows every few seconds)."""
    require_model(connection, name)
    refused = sorted(repo.refused(connection, name).values(), key=lambda r: r.version)
    found = repo.deployment(connection, name)
    if found is None:
        return DeploymentState(Deployment(), 0, refused)
    return DeploymentState(Deployment.model_validate(found.spec), found.revision, refused)


@operation("PUT /deployments/{name}", role="admin")
def deploy(
    connection: Connection,
    name: Key,
    spec: Deployment,
    user: Name,
    reason: Text | None = None,
    expected: Revision | None = None,
) -> int | None:
    """Set what serves an endpoint; every version the deployment names must exist. Returns
    the new revision; with expected, only if the deployment is still at that revision (None,
    and nothing changed, otherwise). A new canary starts now."""
    model = require_model(connection, name)
    registry_repo.lock(connection, model)
    _check_refs(connection, name, spec)
    if spec.canary and spec.canary.started_at is None:
        started = spec.canary.model_copy(update={"started_at": time.time()})
        spec = spec.model_copy(update={"canary": started})
    return _save(connection, name, model, spec, "deploy", reason or spec.describe(), user, expected)


# Ending a canary and refusing a version that fails only take traffic back to the champion:
# a model server's editor token does them on its own, where a deployment's change needs an
# admin.
@operation("POST /deployments/{name}/canary/end")
def end_canary(
    connection: Connection,
    name: Key,
    reason: Text,
    user: Name,
    expected: Revision | None = None,
) -> int | None:
    """Take the canary out of an endpoint's deployment, and record why in the model's history
    and in an alert. With expected, only if the deployment is still at that revision; returns
    the new revision, or None when there was nothing to do."""
    model = require_model(connection, name)
    registry_repo.lock(connection, model)
    found = repo.deployment(connection, name)
    if found is None or (expected is not None and expected != found.revision):
        return None
    spec = Deployment.model_validate(found.spec)
    if spec.canary is None:
        return None
    rolled = {"version": spec.canary.version, "reason": reason, "at": time.time()}
    changed = spec.model_copy(update={"canary": None, "last_rollback": rolled})
    revision = _save(connection, name, model, changed, "canary-off", reason, user, found.revision)
    message = f"Canary {spec.canary.version} rolled back: {reason}"
    _alert(connection, name, "canary_rolled_back", message, rolled)
    return revision


@operation("POST /deployments/{name}/refusals")
def refuse_version(
    connection: Connection,
    name: Key,
    version: Version,
    role: ServingRole,
    instead: Version | None,
    reason: Text,
    at: Moment,
) -> RefusalRecord:
    """Record that a server of the endpoint failed to load a version at ``at`` (for a role,
    keeping ``instead`` serving): no server serves it until its retry, after a wait that
    doubles with each failure. The first failure raises a load_failed alert."""
    registry_repo.lock(connection, require_model(connection, name))
    found = repo.refuse(connection, name, version, role, instead, reason, at, backoff)
    if found.failures == 1:
        details = {"version": version, "role": role, "error": reason, "instead": instead}
        _alert(connection, name, "load_failed", refusal_message(found), details)
    return found


@operation("DELETE /deployments/{name}/refusals/{version}")
def clear_refusal(connection: Connection, name: Key, version: Version) -> None:
    """A refused version loaded again: every server of the endpoint may serve it."""
    repo.clear_refusal(connection, name, version)


@operation("POST /deployments/{name}/alerts")
def raise_alert(
    connection: Connection, name: Key, kind: Kind, message: Text, details: dict[str, Any]
) -> AlertRecord:
    """Record an alert for an endpoint, now."""
    return _alert(connection, name, kind, message, details)


@operation("GET /deployments/{name}/alerts")
def list_alerts(
    connection: Connection,
    name: Key,
    open_only: bool = False,
    page_size: PageSize = PAGE,
    cursor: Cursor | None = None,
) -> Page[AlertRecord]:
    """An endpoint's alerts, oldest first, a page at a time; with open_only, those not
    resolved."""
    found = repo.list_alerts(connection, name, open_only=open_only, cursor=cursor, size=page_size)
    return page(found, page_size, lambda a: (a.at, a.id))


@operation("GET /deployments/{name}/windows/latest")
def latest_window(connection: Connection, name: Key) -> WindowRecord | None:
    """The endpoint's last monitored window with its values, or None before the first."""
    return monitoring_repo.latest_window(connection, name)


def backoff(failures: int) -> float:
    """Seconds before the next try of a version that failed to load ``failures`` times."""
    return min(RETRY_FIRST * 2 ** (failures - 1), RETRY_MOST)


def refusal_message(found: RefusalRecord) -> str:
    """What a refusal says, in the log and in its alert."""
    kept = f"version {found.instead}" if found.instead else "the version"
    return (
        f"{found.endpoint}@{found.version} failed to load for the {found.role}, kept {kept} "
        f"serving (tried {found.failures} times, again in {found.retry_at - found.at:g} s): "
        f"{found.reason}"
    )


def _check_refs(connection: Connection, name: str, spec: Deployment) -> None:
    """Every role names a version of the model (by number or by alias)."""
    refs = spec.refs(name)
    selectors = {role: ref.partition("@")[2] for role, ref in refs.items()}
    found = registry_ops.version_numbers.function(connection, name, list(selectors.values()))
    for role, selector in selectors.items():
        if selector not in found:
            raise DeploymentError(
                f"The deployment's {role} {refs[role]!r} names no version of {name!r}: give "
                "a version number or an alias of it ('loopml models list' shows them)."
            )


def _save(
    connection: Connection,
    name: str,
    model: str,
    spec: Deployment,
    action: str,
    reason: str,
    user: str,
    expected: int | None,
) -> int | None:
    """Store a new revision of the spec and record it in the model's history."""
    now, actor = time.time(), current_actor(user)
    data = spec.model_dump(mode="json")
    revision = repo.save_deployment(connection, name, model, data, actor, now, expected)
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


def _alert(
    connection: Connection, name: str, kind: str, message: str, details: dict[str, Any]
) -> AlertRecord:
    alert = AlertRecord(new_id(), name, kind, message, details, time.time(), None)
    repo.add_alert(connection, alert)
    return alert
