"""The record of the retraining loop: every decision, with the evidence it was taken on."""

from __future__ import annotations

from typing import Any

from loopml.loop import operations as ops
from loopml.store.monitoring import DecisionRecord
from loopml.store.pages import every
from loopml.workspace import Workspace, current_workspace


def decisions(name: str, *, workspace: Workspace | None = None) -> list[DecisionRecord]:
    """The endpoint's loop decisions, oldest first."""
    return list(every(ops.decisions, (workspace or current_workspace()).metadata, name))


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
    return ops.record_decision(
        workspace.metadata, name, action, message, version, as_of, evidence or {}
    )
