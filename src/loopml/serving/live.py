"""The versions an endpoint serves right now, kept in step with the registry and the
deployment: a champion, and optionally a shadow and a canary.

``refresh()`` resolves the deployment's references (aliases move with promote and rollback)
and loads what changed. A version that fails to load, or fails on the last request the
server answered, is not swapped in: the old one keeps serving and an alert is recorded (once
per version). It is tried again with backoff (5 s, 10 s, 20 s, ... at most 5 minutes), so an
artifact missing for a moment does not keep the version out for good. Requests read
``roles`` once, a dict replaced whole, so a swap never shows a
request half of one deployment and half of another.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

import pyarrow as pa

from loopml.registry.api import get_version, version_numbers
from loopml.serving.deployments import Deployment, deployment, end_canary, raise_alert
from loopml.serving.guard import Guard, metric_breach
from loopml.serving.model import ServedModel, load_served
from loopml.workspace import Workspace

log = logging.getLogger("loopml.serving")
RETRY_FIRST, RETRY_MOST = 5.0, 300.0  # seconds before a version that failed to load is retried
now = time.monotonic  # the clock of the retries


class Live:
    """What serves endpoint NAME in this process."""

    def __init__(self, name: str, workspace: Workspace, champion: str | None = None) -> None:
        self.name, self.workspace, self.pinned = name, workspace, champion
        self.spec, self.revision = Deployment(), -1
        self.roles: dict[str, ServedModel] = {}
        self.guard = Guard()
        self.sample: pa.Table | None = None  # the last request answered: a smoke test
        self._refused: dict[int, tuple[int, float]] = {}  # version: (failures, retry at)
        self._lock = threading.Lock()
        self.refresh(first=True)

    @property
    def champion(self) -> ServedModel:
        return self.roles["champion"]

    def refresh(self, first: bool = False) -> None:
        """Follow the deployment and the aliases it names; load what changed."""
        with self._lock:
            spec, revision = deployment(self.name, workspace=self.workspace)
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
        for served in self.roles.values():  # the same version in another role: reuse it
            if served.record.version == number:
                return served
        failures, retry_at = self._refused.get(number, (0, 0.0))
        if failures and now() < retry_at:
            return self._keep(role, None)
        return self._load(role, f"{self.name}@{number}", number, required)

    def _load(self, role: str, ref: str, number: int, required: bool) -> ServedModel | None:
        try:
            served = load_served(ref, self.workspace)
            if self.sample is not None:
                served.predict(self.sample)
        except Exception as error:  # any failure of a model's own code: keep the old one
            if required:
                raise
            failures = self._refused.get(number, (0, 0.0))[0] + 1
            wait = min(RETRY_FIRST * 2 ** (failures - 1), RETRY_MOST)
            self._refused[number] = (failures, now() + wait)
            message = (
                f"{ref} failed to load for the {role}, kept the version serving (tried "
                f"{failures} times, again in {wait:g} s): {error}"
            )
            log.error(message)
            if failures == 1:
                raise_alert(
                    self.name,
                    "load_failed",
                    message,
                    {"version": number, "role": role, "error": repr(error)},
                    workspace=self.workspace,
                )
            return self._keep(role, None)
        self._refused.pop(number, None)
        log.info("serving %s as the %s", ref, role)
        return served

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
