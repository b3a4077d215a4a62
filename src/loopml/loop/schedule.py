"""The loop's schedule, in its own process: monitor an endpoint's traffic every period, judge
the alert rules on each window, then take a step of the retraining policy.

Model servers only serve, reload and check guardrails; this is the one place that monitors
and retrains. Its work runs under a lease held in the metadata store (one per endpoint), so
however many schedulers are started, on however many hosts, each window is monitored once and
each step taken once: one holds the lease and works, the others wait, and one of them takes
over within ``lease_seconds`` (a setting) when the holder stops. The schedule itself is the
store's: a window is due one period after the end of the last one recorded, so a restart
(or a new holder) carries on where the last one stopped.

    scheduler = Scheduler("flights", every=900, rules="alerts.yaml", policy="policy.yaml")
    scheduler.run()          # until stopped; `loopml loop serve flights --every 15m ...`
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from loopml.errors import UsageError
from loopml.loop import operations as ops
from loopml.monitoring.window import MonitorResult, monitor
from loopml.workspace import Workspace, current_workspace

log = logging.getLogger("loopml.loop")


class Lease:
    """The lease NAME of the metadata store, as seen by this process (one holder id)."""

    def __init__(self, name: str, workspace: Workspace, seconds: float | None = None) -> None:
        self.name, self.workspace = name, workspace
        self.seconds = seconds or workspace.settings.lease_seconds
        host = workspace.settings.host_id or socket.gethostname()
        self.holder = f"{host}:{os.getpid()}:{secrets.token_hex(4)}"
        self.term: int | None = None  # the term held, None while not held

    def acquire(self) -> bool:
        """Take the lease or renew it; False while another process holds it."""
        found = ops.acquire_lease(self.workspace.metadata, self.name, self.holder, self.seconds)
        if found is None:
            self.term = None
            return False
        if found.term != self.term:
            log.info("took the lease %s (term %d)", self.name, found.term)
        self.term = found.term
        return True

    def release(self) -> None:
        """Give the lease up now, so another process takes over without waiting."""
        if self.term is None:
            return
        ops.release_lease(self.workspace.metadata, self.name, self.holder)
        self.term = None

    @contextmanager
    def renewed(self) -> Iterator[None]:
        """Keep renewing the lease in the background while the block runs (long work)."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(self.seconds / 3):
                try:
                    self.acquire()
                except Exception:  # a store hiccup: the next renewal tries again
                    log.exception("renewing the lease %s failed", self.name)

        thread = threading.Thread(target=renew, name="loopml-lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()


@dataclass
class Tick:
    """What one turn of the schedule did: ``standby`` (another process holds the lease),
    ``waiting`` (the next window is not due), or ``worked`` (a window, then a loop step)."""

    state: str
    due_at: float
    result: MonitorResult | None = None
    decisions: list[Any] = field(default_factory=list)


class Scheduler:
    """Monitors endpoint NAME every ``every`` seconds and takes a loop step after each window.

    rules: alert rules (a file, text or RuleSet) judged on each window.
    policy: a retraining policy (a file or RetrainingPolicy); without one, only monitoring.
    """

    def __init__(
        self,
        name: str,
        every: float,
        *,
        rules: Any = None,
        policy: Any = None,
        workspace: Workspace | None = None,
        lease_seconds: float | None = None,
    ) -> None:
        if not every > 0:
            raise UsageError(f"The monitoring period must be positive, not {every!r}.")
        from loopml.loop.policy import read_policy
        from loopml.monitoring.rules import read_rules

        self.workspace = workspace or current_workspace()
        ops.last_window_end(self.workspace.metadata, name)  # an unknown endpoint fails here
        self.name, self.every = name, float(every)
        self.rules = read_rules(rules) if rules is not None else None
        self.policy = read_policy(policy) if policy is not None else None
        self.lease = Lease(f"loop:{name}", self.workspace, lease_seconds)

    def tick(self) -> Tick:
        """One turn: take or renew the lease, and when the next window is due monitor it
        and take a step of the policy, renewing the lease while they run."""
        if not self.lease.acquire():
            return Tick("standby", time.time() + self.lease.seconds / 3)
        last = ops.last_window_end(self.workspace.metadata, self.name)
        now = time.time()
        due = last + self.every if last is not None else now
        if now < due:
            return Tick("waiting", due)
        since = last if last is not None else now - self.every
        with self.lease.renewed():
            result = monitor(
                self.name, since=since, until=now, rules=self.rules, workspace=self.workspace
            )
            if result.status == "failed":
                log.error("monitoring %s failed: %s", self.name, result.window.message)
            decisions = self._step()
        return Tick("worked", now + self.every, result, decisions)

    def _step(self) -> list[Any]:
        if self.policy is None:
            return []
        from loopml.loop.controller import run_loop

        step = run_loop(self.name, self.policy, workspace=self.workspace)
        for decision in step.decisions:
            log.warning("loop: %s: %s", decision.action, decision.message)
        return list(step.decisions)

    def run(self, stop: threading.Event | None = None, report: Any = None) -> None:
        """Turn until ``stop`` is set (forever by default), then give the lease up.
        ``report(tick)`` is called after each turn. A turn that fails is logged and the
        schedule goes on: the next turn tries again."""
        stop = stop or threading.Event()
        try:
            while not stop.is_set():
                try:
                    tick = self.tick()
                except Exception:
                    log.exception("the schedule of %s failed; trying again", self.name)
                    tick = Tick("failed", time.time() + min(self.every, self.lease.seconds / 3))
                if report is not None:
                    report(tick)
                renew_at = time.time() + self.lease.seconds / 3
                stop.wait(max(0.0, min(tick.due_at, renew_at) - time.time()))
        finally:
            try:
                self.lease.release()
            except Exception:  # the store is gone: the lease expires by itself
                log.exception("releasing the lease %s failed", self.lease.name)
