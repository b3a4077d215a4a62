"""The record of the retraining loop: every decision, with the evidence it was taken on."""

from __future__ import annotations

import time
from typing import Any

from loopml.ids import new_id
from loopml.store import monitoring as repo
from loopml.store.monitoring import DecisionRecord
from loopml.workspace import Workspace, current_workspace


def decisions(name: str, *, workspace: Workspace | None = None) -> list[DecisionRecord]:
    """The endpoint's loop decisions, oldest first."""
    workspace = workspace or current_workspace()
    with workspace.metadata.read() as connection:
        return repo.decisions(connection, name)


def record(
    name: str,
    action: str,
    message: str,
    *,
    version: int | None = None,
    as_of: float | None = None,
    evidence: dict[str, Any] | None = None,
    workspace: Workspace,
) -> DecisionRecord:
    """Record one decision."""
    found = DecisionRecord(
        new_id(), name, time.time(), as_of, action, version, message, evidence or {}
    )
    with workspace.metadata.write() as connection:
        repo.add_decision(connection, found)
    return found
