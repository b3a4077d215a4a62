"""Gates: a declarative promotion policy, judged on confidence intervals.

    against: champion              # the alias the candidate is compared with
    data: flights_march            # evaluation data: a snapshot reference or a file
    target: delayed
    slices: [carrier, origin]
    sensitive: [origin]
    checks:
      - {check: difference, metric: roc_auc, lower_bound_above: 0}
      - {check: metric, metric: ece, upper_bound_below: 0.05}
      - {check: slices, metric: roc_auc}
      - {check: fairness, column: origin, rate: selection_rate, ratio_at_least: 0.8}
      - {check: contract}
      - {check: latency, p99_ms_below: 10}

The candidate and the model it is compared with are evaluated on the same rows with the same
bootstrap weights, so the difference check uses the paired interval: a lucky point estimate
cannot pass it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loopml.errors import PolicyError
from loopml.evaluation.evaluate import Evaluation
from loopml.evaluation.metrics import higher_is_better
from loopml.yamltext import located_problems, read_yaml

LATENCY_ROWS = 200


class _Check(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DifferenceCheck(_Check):
    """The paired difference candidate − compared model: its lower bound above a value (for
    metrics where higher is better; the upper bound below minus the value otherwise)."""

    check: Literal["difference"]
    metric: str = "roc_auc"
    lower_bound_above: float = 0.0


class MetricCheck(_Check):
    """The candidate's own interval: its lower bound above, or its upper bound below a value."""

    check: Literal["metric"]
    metric: str
    lower_bound_above: float | None = None
    upper_bound_below: float | None = None


class SlicesCheck(_Check):
    """No slice where the candidate is worse than the compared model beyond its interval."""

    check: Literal["slices"]
    metric: str = "roc_auc"


class FairnessCheck(_Check):
    """The smallest ratio of a rate between the groups of a sensitive column, at least a value
    (the four-fifths rule: 0.8)."""

    check: Literal["fairness"]
    column: str
    rate: Literal["selection_rate", "tpr", "fpr"] = "selection_rate"
    ratio_at_least: float = 0.8


class ContractCheck(_Check):
    """The evaluation data satisfies the contract the candidate was saved with."""

    check: Literal["contract"]


class LatencyCheck(_Check):
    """Single-row predictions of the candidate: p99 below a number of milliseconds."""

    check: Literal["latency"]
    p99_ms_below: float = Field(gt=0)


Check = Annotated[
    DifferenceCheck | MetricCheck | SlicesCheck | FairnessCheck | ContractCheck | LatencyCheck,
    Field(discriminator="check"),
]


class Policy(BaseModel):
    """A promotion policy: what to evaluate on, and the checks that must all pass."""

    model_config = ConfigDict(extra="forbid")
    against: str = "champion"
    data: str | None = None
    target: str
    task: Literal["classification", "regression"] = "classification"
    slices: list[str] = Field(default_factory=list)
    sensitive: list[str] = Field(default_factory=list)
    resamples: int = Field(1000, ge=10)
    level: float = Field(0.95, ge=0.5, lt=1.0)
    seed: int = 0
    checks: list[Check] = Field(min_length=1)


def load_policy(source: str | Path | dict[str, Any] | Policy) -> Policy:
    """A policy from a YAML file, YAML text or a dict; errors name the line."""
    if isinstance(source, Policy):
        return source
    data, text, where = read_yaml(source, "the policy", PolicyError)
    try:
        return Policy.model_validate(data)
    except ValidationError as error:
        problems = located_problems(error.errors(), text)
        raise PolicyError(f"{where} is not a valid policy: {problems}") from None


@dataclass
class CheckResult:
    """One check of a gate: passed or not, and the numbers that decided it."""

    check: str
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "passed": self.passed, "detail": self.detail}


def judge(
    policy: Policy,
    candidate: Evaluation,
    compared: Evaluation | None,
    *,
    contract_passed: bool | None = None,
    contract_detail: str = "",
    latency_p99_ms: float | None = None,
) -> list[CheckResult]:
    """Apply every check of the policy to the evaluations (and the measured extras)."""
    found = []
    for check in policy.checks:
        if isinstance(check, DifferenceCheck):
            found.append(_difference(check, candidate, policy.against))
        elif isinstance(check, MetricCheck):
            found.append(_metric(check, candidate))
        elif isinstance(check, SlicesCheck):
            found.append(_slices(check, candidate, compared, policy.against))
        elif isinstance(check, FairnessCheck):
            found.append(_fairness(check, candidate))
        elif isinstance(check, ContractCheck):
            found.append(CheckResult("contract", bool(contract_passed), contract_detail))
        else:
            found.append(_latency(check, latency_p99_ms))
    return found


def _difference(check: DifferenceCheck, candidate: Evaluation, against: str) -> CheckResult:
    name = f"difference {check.metric} vs {against}"
    found = candidate.differences.get(against, {}).get(check.metric)
    if found is None:
        return CheckResult(name, True, f"no other version is {against}: not applicable")
    if higher_is_better(check.metric):
        passed = found.low > check.lower_bound_above
        rule = f"lower bound {found.low:.4g} {'>' if passed else '≤'} {check.lower_bound_above:g}"
    else:
        passed = found.high < -check.lower_bound_above
        rule = f"upper bound {found.high:.4g} {'<' if passed else '≥'} {-check.lower_bound_above:g}"
    return CheckResult(name, passed, f"{found} ({rule})")


def _metric(check: MetricCheck, candidate: Evaluation) -> CheckResult:
    found = candidate.metrics[check.metric]
    passed, rules = True, []
    if check.lower_bound_above is not None:
        ok = found.low > check.lower_bound_above
        passed &= ok
        rules.append(
            f"lower bound {found.low:.4g} {'>' if ok else '≤'} {check.lower_bound_above:g}"
        )
    if check.upper_bound_below is not None:
        ok = found.high < check.upper_bound_below
        passed &= ok
        rules.append(
            f"upper bound {found.high:.4g} {'<' if ok else '≥'} {check.upper_bound_below:g}"
        )
    return CheckResult(f"metric {check.metric}", passed, f"{found} ({'; '.join(rules)})")


def _slices(
    check: SlicesCheck, candidate: Evaluation, compared: Evaluation | None, against: str
) -> CheckResult:
    name = f"slices {check.metric} vs {against}"
    if compared is None:
        return CheckResult(name, True, f"no other version is {against}: not applicable")
    theirs = {(s.column, s.value): s.metrics[check.metric].value for s in compared.slices}
    better_high = higher_is_better(check.metric)
    worse = []
    for item in candidate.slices:
        other = theirs.get((item.column, item.value))
        estimate = item.metrics[check.metric]
        if item.small or other is None or np.isnan(other):
            continue
        if (estimate.high < other) if better_high else (estimate.low > other):
            worse.append(f"{item.column}={item.value}: {estimate} vs {other:.4g}")
    compared_count = sum(not s.small for s in candidate.slices)
    if worse:
        return CheckResult(
            name, False, f"{len(worse)} worse beyond their interval: " + "; ".join(worse[:5])
        )
    return CheckResult(name, True, f"none of {compared_count} slices worse beyond its interval")


def _fairness(check: FairnessCheck, candidate: Evaluation) -> CheckResult:
    name = f"fairness {check.rate} ratio across {check.column}"
    found = next((f for f in candidate.fairness if f.column == check.column), None)
    if found is None:
        return CheckResult(
            name, False, f"{check.column!r} is not among the policy's sensitive columns"
        )
    ratio = found.ratios[check.rate]
    passed = ratio.value >= check.ratio_at_least
    return CheckResult(
        name,
        passed,
        f"{ratio} ({ratio.value:.4g} {'≥' if passed else '<'} {check.ratio_at_least:g})",
    )


def _latency(check: LatencyCheck, p99: float | None) -> CheckResult:
    if p99 is None:
        return CheckResult("latency p99", False, "not measured")
    passed = p99 < check.p99_ms_below
    return CheckResult(
        "latency p99", passed, f"{p99:.3g} ms {'<' if passed else '≥'} {check.p99_ms_below:g} ms"
    )


def single_row_p99_ms(model: Any, rows: Any, count: int = LATENCY_ROWS) -> float:
    """The 99th percentile, in milliseconds, of predicting one row at a time, with the
    model's native code on one thread, as a server process runs it."""
    from threadpoolctl import threadpool_limits

    predict = model.predict_proba if hasattr(model, "predict_proba") else model.predict
    sample = rows.sample(n=min(count, len(rows)), random_state=0, replace=len(rows) < count)
    times = []
    with threadpool_limits(1):
        predict(sample.iloc[[0]])  # warm
        for index in range(len(sample)):
            row = sample.iloc[[index]]
            started = time.perf_counter()
            predict(row)
            times.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(times, 99))
