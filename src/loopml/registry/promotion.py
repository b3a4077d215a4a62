"""Promotion: move an alias to a version only when the version passes a gate.

The candidate and the version the alias points at now are evaluated on the same data with
the same bootstrap weights; the policy's checks decide. A failed gate changes nothing and
says which checks failed with their numbers; ``force`` (with a reason) moves the alias anyway
and the audit log says it was forced, past which checks, and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopml.errors import ModelNotFoundError, UsageError
from loopml.evaluation.evaluate import Evaluation, evaluate, frame_of
from loopml.evaluation.scoring import feature_frame
from loopml.registry.api import get_version, load, set_alias
from loopml.registry.gates import (
    CheckResult,
    ContractCheck,
    LatencyCheck,
    Policy,
    SlicesCheck,
    judge,
    load_policy,
    single_row_p99_ms,
)
from loopml.store.registry import RegistryEvent, VersionRecord
from loopml.workspace import Workspace, current_workspace


@dataclass
class Promotion:
    """The outcome of a promotion: the checks, and the audit entry when the alias moved."""

    ref: str
    alias: str
    passed: bool
    forced: bool
    checks: list[CheckResult]
    evaluation: Evaluation
    compared: str | None = None
    event: RegistryEvent | None = field(default=None)
    moved_meanwhile: str | None = None  # why a passing version was not promoted after all

    @property
    def moved(self) -> bool:
        return self.event is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "alias": self.alias,
            "passed": self.passed,
            "forced": self.forced,
            "moved": self.moved,
            "compared": self.compared,
            "checks": [check.to_dict() for check in self.checks],
            "event": self.event.to_dict() if self.event else None,
            "moved_meanwhile": self.moved_meanwhile,
            "evaluation": self.evaluation.to_dict(),
        }


def promote(
    name: str,
    version: int,
    *,
    to: str = "champion",
    policy: str | Path | dict[str, Any] | Policy,
    data: Any = None,
    force: bool = False,
    reason: str | None = None,
    backtest: Evaluation | None = None,
    workspace: Workspace | None = None,
) -> Promotion:
    """Check a version against a policy and, if it passes (or force, with a reason), point the
    alias ``to`` at it. The evaluation data is ``data``, else the policy's. backtest: the
    candidate's recipe against the compared version pooled over folds
    (``loopml.evaluation.folds``), which the improvement and metric checks judge instead."""
    workspace = workspace or current_workspace()
    rules = load_policy(policy)
    if force and not reason:
        raise UsageError("A forced promotion needs a reason: --force --reason '...'.")
    source = data if data is not None else rules.data
    if source is None:
        raise UsageError("Say what to evaluate on: data= (--data), or 'data:' in the policy.")
    frame = frame_of(source, workspace)
    candidate_record = get_version(f"{name}@{version}", workspace=workspace)
    candidate = load(candidate_record.ref, workspace=workspace)
    judged_against = _current(name, to, workspace) or 0  # the alias as the gate found it
    compared_record = _compared(name, rules.against, version, workspace)
    compared = load(compared_record.ref, workspace=workspace) if compared_record else None
    task = rules.task or candidate_record.info.get("task")
    found = _evaluate(rules, task, candidate, frame, compared, workspace)
    compared_found = None
    sliced = sorted({c.metric for c in rules.checks if isinstance(c, SlicesCheck)})
    if compared is not None and sliced:  # its slices only, on the metrics the checks read
        compared_found = _evaluate(rules, task, compared, frame, None, workspace, sliced)
    checks = judge(
        rules,
        found,
        compared_found,
        backtest=backtest,
        **_extras(rules, candidate, candidate_record, frame),
    )
    passed = all(check.passed for check in checks)
    outcome = Promotion(
        candidate_record.ref,
        to,
        passed,
        force and not passed,
        checks,
        found,
        compared_record.ref if compared_record else None,
    )
    if passed or force:
        outcome.event = set_alias(
            name,
            to,
            version,
            reason=_reason(checks, passed, reason),
            action="promote" if passed else "force",
            expected=judged_against,
            workspace=workspace,
        )
        if outcome.event is None:
            now = _current(name, to, workspace)
            outcome.moved_meanwhile = (
                f"{name}@{to} moved from version {judged_against or 'none'} to "
                f"{now or 'none'} while the gate ran; nothing promoted, judge again"
            )
    return outcome


def _aliased(name: str, alias: str, workspace: Workspace) -> VersionRecord | None:
    """The version the alias points at, None when it points at none."""
    try:
        return get_version(f"{name}@{alias}", workspace=workspace)
    except ModelNotFoundError:
        return None


def _current(name: str, alias: str, workspace: Workspace) -> int | None:
    found = _aliased(name, alias, workspace)
    return found.version if found else None


def _compared(name: str, alias: str, version: int, workspace: Workspace) -> VersionRecord | None:
    found = _aliased(name, alias, workspace)
    return None if found is None or found.version == version else found


def _evaluate(
    rules: Policy,
    task: str | None,
    model: Any,
    frame: Any,
    compared: Any,
    workspace: Workspace,
    metrics: list[str] | None = None,
) -> Evaluation:
    return evaluate(
        model,
        frame,
        target=rules.target,
        task=task,
        baselines={rules.against: compared} if compared is not None else None,
        slices=rules.slices or None,
        sensitive=rules.sensitive or None,
        resamples=rules.resamples,
        level=rules.level,
        seed=rules.seed,
        metrics=metrics,
        workspace=workspace,
    )


def _extras(rules: Policy, model: Any, record: VersionRecord, frame: Any) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    if any(isinstance(c, ContractCheck) for c in rules.checks):
        extras["contract_passed"], extras["contract_detail"] = _contract(record, frame)
    if any(isinstance(c, LatencyCheck) for c in rules.checks):
        exclude = [rules.target, *rules.slices, *rules.sensitive]
        extras["latency_p99_ms"] = single_row_p99_ms(model, feature_frame(model, frame, exclude))
    return extras


def _contract(record: VersionRecord, frame: Any) -> tuple[bool, str]:
    contract = record.info.get("contract")
    if not contract:
        return False, f"{record.ref} was saved without an input contract"
    from loopml.data.api import validate

    inputs = [column for column in frame.columns if column in contract.get("columns", {})]
    report = validate(frame[inputs], contract).report  # the target and slice columns aside
    return report.passed, report.summary().splitlines()[0]


def _reason(checks: list[CheckResult], passed: bool, reason: str | None) -> str:
    if passed:
        summary = f"gate passed ({len(checks)} checks)"
    else:
        failed = ", ".join(check.check for check in checks if not check.passed)
        summary = f"forced past failed checks: {failed}"
    return f"{summary}; {reason}" if reason else summary
