"""Gates: a declarative promotion policy, judged on confidence intervals.

    against: champion              # the alias the candidate is compared with
    data: flights_march            # evaluation data: a snapshot reference or a file
    target: delayed
    slices: [carrier, origin]
    sensitive: [origin]
    checks:
      - {check: improvement, metric: roc_auc, at_least: 0}
      - {check: metric, metric: ece, upper_bound_below: 0.05}
      - {check: slices, metric: roc_auc}
      - {check: fairness, column: origin, rate: selection_rate, ratio_at_least: 0.8}
      - {check: contract}
      - {check: latency, p99_ms_below: 10}

The candidate and the model it is compared with are evaluated on the same rows with the same
bootstrap weights, so the improvement check uses the paired interval: a lucky point estimate
cannot pass it. An improvement is measured in the metric's own direction (an MAE that falls
improves): ``at_least: 0`` asks the candidate to be better beyond chance, ``no_worse_than: 3``
lets it lose at most 3 (in the metric's units). ``{check: difference, lower_bound_above: x}``
is the older spelling of ``at_least: x``. A check may also be written with its name as the key:
``{improvement: {metric: mae, at_least: 0}}``.

For regression, fairness compares groups' errors: ``{check: fairness, column: region, rate:
mae, gap_below: 5}`` asks the largest gap between groups' MAE to stay below 5 (its upper
bound).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from loopml.errors import PolicyError, UsageError
from loopml.evaluation.catalog import get_metric, higher_is_better
from loopml.evaluation.evaluate import Estimate, Evaluation
from loopml.evaluation.fairness import RATES
from loopml.evaluation.wording import direction, improvement, interval, number
from loopml.yamltext import located_problems, read_yaml

LATENCY_ROWS = 200


def _known(metric: str) -> str:
    try:
        get_metric(metric)
    except UsageError as error:
        raise ValueError(str(error)) from None
    return metric


class _Check(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("metric", mode="after", check_fields=False)
    @classmethod
    def _metric_known(cls, metric: str) -> str:
        return _known(metric)


class ImprovementCheck(_Check):
    """The paired improvement of the candidate over the compared model, in the metric's own
    direction: its lower bound above ``at_least`` (default 0: better beyond chance), or above
    −``no_worse_than`` (the most the candidate may lose)."""

    check: Literal["improvement"]
    metric: str = "roc_auc"
    at_least: float | None = None
    no_worse_than: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one_bound(self) -> ImprovementCheck:
        if self.at_least is not None and self.no_worse_than is not None:
            raise ValueError("give one of 'at_least' and 'no_worse_than', not both")
        return self

    @property
    def floor(self) -> float:
        """The value the improvement's lower bound must exceed."""
        if self.no_worse_than is not None:
            return -self.no_worse_than
        return self.at_least or 0.0


class DifferenceCheck(_Check):
    """The older spelling of the improvement check: ``lower_bound_above`` is ``at_least``
    (the improvement in the metric's direction, for lower-is-better metrics too)."""

    check: Literal["difference"]
    metric: str = "roc_auc"
    lower_bound_above: float = 0.0

    @property
    def floor(self) -> float:
        return self.lower_bound_above


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
    """Groups of a sensitive column compared on a rate: the smallest ratio between groups at
    least ``ratio_at_least`` (the four-fifths rule: 0.8, the default for classification), or
    the largest gap's upper bound below ``gap_below`` (regression's errors: rate mae)."""

    check: Literal["fairness"]
    column: str
    rate: Literal["selection_rate", "tpr", "fpr", "mae", "mean_prediction", "mean_target"] = (
        "selection_rate"
    )
    ratio_at_least: float | None = None
    gap_below: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_limit(self) -> FairnessCheck:
        if self.ratio_at_least is not None and self.gap_below is not None:
            raise ValueError("give one of 'ratio_at_least' and 'gap_below', not both")
        if self.rate in RATES["regression"] and self.ratio_at_least is not None:
            raise ValueError(f"{self.rate} is compared by its gap: give 'gap_below'")
        if self.rate in RATES["regression"] and self.gap_below is None:
            raise ValueError(f"give 'gap_below', the largest gap of {self.rate} between groups")
        return self


class ContractCheck(_Check):
    """The evaluation data satisfies the contract the candidate was saved with."""

    check: Literal["contract"]


class LatencyCheck(_Check):
    """Single-row predictions of the candidate: p99 below a number of milliseconds."""

    check: Literal["latency"]
    p99_ms_below: float = Field(gt=0)


Check = Annotated[
    ImprovementCheck
    | DifferenceCheck
    | MetricCheck
    | SlicesCheck
    | FairnessCheck
    | ContractCheck
    | LatencyCheck,
    Field(discriminator="check"),
]
CHECK_NAMES = ("improvement", "difference", "metric", "slices", "fairness", "contract", "latency")


class Policy(BaseModel):
    """A promotion policy: what to evaluate on, and the checks that must all pass."""

    model_config = ConfigDict(extra="forbid")
    against: str = "champion"
    data: str | None = None
    target: str
    task: Literal["classification", "regression"] | None = None
    slices: list[str] = Field(default_factory=list)
    sensitive: list[str] = Field(default_factory=list)
    resamples: int = Field(1000, ge=10)
    level: float = Field(0.95, ge=0.5, lt=1.0)
    seed: int = 0
    checks: list[Check] = Field(min_length=1)

    @field_validator("checks", mode="before")
    @classmethod
    def _named_checks(cls, checks: Any) -> Any:
        """{improvement: {metric: mae, at_least: 0}} is {check: improvement, metric: ...}."""
        if not isinstance(checks, list):
            return checks
        return [_unfold(item) for item in checks]


def _unfold(item: Any) -> Any:
    if isinstance(item, dict) and len(item) == 1 and "check" not in item:
        ((name, body),) = item.items()
        if name in CHECK_NAMES and isinstance(body, dict | None):
            return {"check": name, **(body or {})}
    return item


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
    backtest: Evaluation | None = None,
) -> list[CheckResult]:
    """Apply every check of the policy to the evaluations (and the measured extras). With a
    backtest (an evaluation pooled over folds), the improvement, difference and metric checks
    read it instead of the candidate's evaluation on the newest rows."""
    found = []
    pooled = backtest or candidate
    for check in policy.checks:
        if isinstance(check, ImprovementCheck | DifferenceCheck):
            found.append(_improvement(check, pooled, policy.against))
        elif isinstance(check, MetricCheck):
            found.append(_metric(check, pooled))
        elif isinstance(check, SlicesCheck):
            found.append(_slices(check, candidate, compared, policy.against))
        elif isinstance(check, FairnessCheck):
            found.append(_fairness(check, candidate))
        elif isinstance(check, ContractCheck):
            found.append(CheckResult("contract", bool(contract_passed), contract_detail))
        else:
            found.append(_latency(check, latency_p99_ms))
    return found


def _improvement(
    check: ImprovementCheck | DifferenceCheck, candidate: Evaluation, against: str
) -> CheckResult:
    name = f"improvement {check.metric} vs {against}"
    found = candidate.differences.get(against, {}).get(check.metric)
    if found is None:
        return CheckResult(name, True, f"no other version is {against}: not applicable")
    gain = Estimate(*improvement(check.metric, found.value, found.low, found.high))
    passed = gain.low > check.floor
    return CheckResult(name, passed, improvement_text(check.metric, gain, check.floor, passed))


def improvement_text(metric: str, gain: Estimate, floor: float, passed: bool) -> str:
    """'improves by 0.012 [0.004, 0.02] (higher is better; lower bound 0.004 > 0)'."""
    verb = "improves by" if gain.value >= 0 else "loses"
    shown = gain if gain.value >= 0 else Estimate(-gain.value, -gain.high, -gain.low)
    shown_text = interval(shown.value, shown.low, shown.high)
    rule = f"lower bound of the improvement {number(gain.low)} {'>' if passed else '≤'} "
    return f"{metric} {verb} {shown_text} ({direction(metric)}; {rule}{number(floor)})"


def _metric(check: MetricCheck, candidate: Evaluation) -> CheckResult:
    found = candidate.metrics[check.metric]
    passed, rules = True, []
    if check.lower_bound_above is not None:
        ok = found.low > check.lower_bound_above
        passed &= ok
        rules.append(
            f"lower bound {number(found.low)} {'>' if ok else '≤'} "
            f"{number(check.lower_bound_above)}"
        )
    if check.upper_bound_below is not None:
        ok = found.high < check.upper_bound_below
        passed &= ok
        rules.append(
            f"upper bound {number(found.high)} {'<' if ok else '≥'} "
            f"{number(check.upper_bound_below)}"
        )
    shown = interval(found.value, found.low, found.high)
    detail = f"{shown} ({direction(check.metric)}; {'; '.join(rules)})"
    return CheckResult(f"metric {check.metric}", passed, detail)


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
            worse.append(f"{item.column}={item.value}: {estimate} vs {number(other)}")
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
    if check.rate not in found.differences:
        return CheckResult(
            name,
            False,
            f"{check.rate} is not measured for this task: {', '.join(found.differences)}",
        )
    if check.gap_below is not None:
        name = f"fairness {check.rate} gap across {check.column}"
        gap = found.differences[check.rate]
        passed = gap.high < check.gap_below
        limit = f"upper bound {number(gap.high)} {'<' if passed else '≥'} {number(check.gap_below)}"
        return CheckResult(name, passed, f"largest gap {gap} ({limit})")
    ratio, least = found.ratios[check.rate], check.ratio_at_least or 0.8
    passed = ratio.value >= least
    return CheckResult(
        name,
        passed,
        f"{ratio} ({number(ratio.value)} {'≥' if passed else '<'} {number(least)})",
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
