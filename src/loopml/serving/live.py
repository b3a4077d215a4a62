"""The versions an endpoint serves right now, kept in step with the registry and the
deployment: a champion, and optionally a shadow and a canary.

``refresh()`` resolves the deployment's references (aliases move with promote and rollback)
and loads what changed. A version that fails to load, or fails on the last request the
server answered, is not swapped in: the old one keeps serving and an alert is recorded (once
per version). The refusal is recorded in the metadata store, beside the deployment, so every
server process of the endpoint follows it: none serves the refused version, and one that had
already swapped it in goes back to the version the failing server kept. It is tried again
with backoff (5 s, 10 s, 20 s, ... at most 5 minutes), so an artifact missing for a moment
does not keep the version out for good; a version that loads again is cleared for all.
Requests read ``roles`` once, a dict replaced whole, so a swap never shows a request half of
one deployment and half of another.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

import pyarrow as pa

from loopml.registry.api import get_version, version_numbers
from loopml.serving import operations as ops
from loopml.serving.deployments import end_canary
from loopml.serving.guard import Guard, metric_breach
from loopml.serving.model import ServedModel, load_served
from loopml.serving.spec import Deployment
from loopml.store.deployments import RefusalRecord
from loopml.workspace import Workspace

log = logging.getLogger("loopml.serving")
now = time.time  # the clock of the retries, shared by every server process


class Live:
    """What serves endpoint NAME in this process."""

    def __init__(self, name: str, workspace: Workspace, champion: str | None = None) -> None:
        self.name, self.workspace, self.pinned = name, workspace, champion
        self.spec, self.revision = Deployment(), -1
        self.roles: dict[str, ServedModel] = {}
        self.guard = Guard()
        self.sample: pa.Table | None = None  # the last request answered: a smoke test
        self.refused: dict[int, RefusalRecord] = {}  # as the store had them at the refresh
        self._lock = threading.Lock()
        self.refresh(first=True)

    @property
    def champion(self) -> ServedModel:
        return self.roles["champion"]

    def refresh(self, first: bool = False) -> None:
        """Follow the deployment and the aliases it names; load what changed."""
        with self._lock:
            state = ops.get_deployment(self.workspace.metadata, self.name)
            spec, revision = state.spec, state.revision
            self.refused = {refusal.version: refusal for refusal in state.refused}
            if self.pinned:
                spec = spec.model_copy(update={"champion": self.pinned})
            refs = spec.refs(self.name)
            numbers = version_numbers(
                self.name,
                [ref.partition("@")[2] for ref in refs.values()],
                workspace=self.workspace,
            )
            roles = {}
            for role, ref in refs.items():
                number = numbers.get(ref.partition("@")[2])
                served = self._resolve(role, ref, number, first and role == "champion")
                if served is not None:
                    roles[role] = served
            if "champion" not in roles:
                roles["champion"] = self.roles["champion"]
            if _canary_changed(self.spec, spec, self.roles, roles):
                self.guard.reset()
            self.spec, self.revision, self.roles = spec, revision, roles

    def _resolve(
        self, role: str, ref: str, number: int | None, required: bool
    ) -> ServedModel | None:
        if number is None:
            if required:
                get_version(ref, workspace=self.workspace)  # raises, saying what is known
            return self._keep(role, f"{ref} names no version; the {role} keeps serving")
        refusal = self.refused.get(number)
        if refusal is not None and now() < refusal.retry_at:
            return self._instead(role, refusal, required)
        served = self._loaded(number)
        if served is not None:  # the same version in another role: reuse it
            return served
        return self._load(role, number, required, refusal)

    def _loaded(self, number: int) -> ServedModel | None:
        for served in self.roles.values():
            if served.record.version == number:
                return served
        return None

    def _instead(self, role: str, refusal: RefusalRecord, required: bool) -> ServedModel | None:
        """What serves while ``refusal.version`` waits for its retry: the version the
        server that failed kept, as every server of the endpoint does."""
        if refusal.instead is None or refusal.instead == refusal.version:
            return self._keep(role, None)
        served = self._loaded(refusal.instead)
        if served is not None:
            return served
        log.warning(
            "%s@%d is refused until its retry; the %s serves %s@%d as the other servers do",
            self.name,
            refusal.version,
            role,
            self.name,
            refusal.instead,
        )
        return self._load(role, refusal.instead, required, self.refused.get(refusal.instead))

    def _load(
        self, role: str, number: int, required: bool, refusal: RefusalRecord | None
    ) -> ServedModel | None:
        ref = f"{self.name}@{number}"
        try:
            served = load_served(ref, self.workspace)
            if self.sample is not None:
                served.predict(self.sample)
        except Exception as error:  # any failure of a model's own code: keep the old one
            if required:
                raise
            self._refuse(role, number, error)
            return self._keep(role, None)
        if refusal is not None:
            self._clear(number)
        log.info("serving %s as the %s", ref, role)
        return served

    def _refuse(self, role: str, number: int, error: Exception) -> None:
        """Record that ``number`` failed to load here, for every server of the endpoint (the
        store raises the alert on its first failure)."""
        kept = self.roles.get(role)
        instead = kept.record.version if kept is not None else None
        store = self.workspace.metadata
        found = ops.refuse_version(store, self.name, number, role, instead, repr(error), now())
        self.refused[number] = found
        log.error(ops.refusal_message(found))

    def _clear(self, number: int) -> None:
        ops.clear_refusal(self.workspace.metadata, self.name, number)
        self.refused.pop(number, None)

    def _keep(self, role: str, message: str | None) -> ServedModel | None:
        if message:
            log.warning(message)
        return self.roles.get(role)

    def route(self, key: str | None, request_id: str) -> tuple[str, ServedModel]:
        """The role and model that answer a request: the canary for its fraction of keys
        (sticky when the request carries the deployment's key header), else the champion."""
        roles, canary = self.roles, self.spec.canary
        if canary is None or "canary" not in roles:
            return "champion", roles["champion"]
        if _share(key or request_id) < canary.fraction:
            return "canary", roles["canary"]
        return "champion", roles["champion"]

    def check(self, labelled: Any = None) -> str | None:
        """Judge the canary; on a breach take it out of the deployment and say why."""
        canary = self.spec.canary
        if canary is None or "canary" not in self.roles:
            return None
        reasons = self.guard.breaches(canary.guardrails)
        if not reasons and labelled is not None and len(labelled):
            task = self.champion.record.info.get("task") or "classification"
            found = metric_breach(canary.guardrails, labelled, task)
            reasons = [found] if found else []
        if not reasons:
            return None
        reason = "; ".join(reasons)
        if end_canary(self.name, reason, expected=self.revision, workspace=self.workspace):
            log.error("canary %s rolled back: %s", canary.version, reason)
        self.refresh()
        return reason


def _canary_changed(old: Deployment, new: Deployment, before: dict, after: dict) -> bool:
    if (old.canary is None) != (new.canary is None):
        return True
    return before.get("canary") is not after.get("canary")


def _share(key: str) -> float:
    """A stable number in [0, 1) for a key."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
