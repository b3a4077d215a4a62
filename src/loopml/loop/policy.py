"""A retraining policy: when to retrain, on which data window, and how to roll out.

    retrain:
      pipeline: flights_pipeline:train   # MODULE:PIPELINE
      params: {source: flights, train_from: $window_start, split_at: $validation_start}
      window: 3 months                   # the data the pipeline trains and validates on ...
      validation: 1 month                # ... the newest part of it is validation
      label_delay: 1 month               # ... ending this long before the loop's clock
      model: model                       # the run's outputs: the model,
      reference: train_rows              # the reference data stored with the version,
      evaluation: valid_rows             # and the newest labelled window the gate judges on
      target: delayed
      served:                            # train on what was served: before each retrain the
        dataset: flights.served          # logged requests joined with their labels become a
        base: flights.base               # snapshot (appended to a base), the $served param
        time_column: time_hour
    refit:                               # after the gate, train the same recipe again on the
      enabled: true                      # whole window, its newest month included, and roll
      params: {}                         # that out ($validation_start becomes $data_end)
    harm:                                # a promotion judged on the labels of what it served:
      enabled: true                      # worse than the version it replaced beyond the
      min_rows: 500                      # paired interval is rolled back, with an alert
      rollback: true
    pool:                                # the champion against the 5 latest past champions
      enabled: true                      # on the labels that arrived since the last look;
      size: 5                            # one better beyond the interval (by more than
      min_rows: 500                      # min_gain) goes through the gate and the rollout
      min_gain: 0
    backtest:                            # the gate pools 3 rolling-origin folds: the newest
      folds: 3                           # window and the 2 before it (1: the newest alone)
    triggers:                            # any one starts a retrain
      alerts: [feature_drift, auc_low]   # one of these alert rules is firing
      every: 90d                         # the last retrain is this old
      new_labels: 20000                  # this many labels arrived since the last retrain
    cooldown: 25d                        # no retrain sooner than this after the last
    gate: flights_gate.yaml              # promotion gate, judged against the champion
    rollout:
      shadow_requests: 0                 # the candidate shadows this many requests,
      canary_fraction: 0.5               # then answers this share of traffic
      canary_requests: 5                 # for this many requests, guarded,
      guardrails: {min_requests: 5, max_error_rate: 0.02}  # champion if none breached
      unchanged_tolerance: 1e-9          # a candidate scoring the gate's rows as the champion
                                         # does (relative difference) is not rolled out

``$as_of``, ``$window_start``, ``$validation_start`` and ``$data_end`` in params are replaced
by dates of the loop's clock (``as_of``, now unless given): data_end = as_of − label_delay,
window_start = data_end − window, validation_start = data_end − validation. Spans are
durations (``30d``) or calendar months (``1 month``, ``3 months``). ``$served`` is replaced by
the snapshot made from the log (``retrain.served``, see ``loopml.data.from_log``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from loopml.durations import PATTERN, seconds
from loopml.errors import LoopmlError, PolicyError
from loopml.serving.deployments import Guardrails
from loopml.yamltext import located_problems, read_yaml

PLACEHOLDERS = ("$as_of", "$window_start", "$validation_start", "$data_end", "$served")


MONTHS = re.compile(r"^\s*(\d+)\s*(?:mo|months?)\s*$")


def _duration(value: Any) -> float:
    try:
        return seconds(value)
    except LoopmlError as error:
        raise ValueError(str(error)) from None


def _zero(value: Any) -> bool:
    """Whether a span is no time at all: 0, '0', '0s', '0d', ..."""
    match = PATTERN.match(str(value))
    return match is not None and float(match.group(1)) == 0


def _span(value: Any) -> str:
    """A span of the loop's clock: calendar months ('1 month', '3mo') or a duration."""
    if _zero(value):
        return "0s"
    if not MONTHS.match(str(value)):
        _duration(value)
    return str(value)


def back(moment: float, span: str) -> float:
    """The moment a span before another (calendar months counted as such)."""
    match = MONTHS.match(span)
    if match is None:
        return moment - (0.0 if span == "0s" else seconds(span))
    when = pd.Timestamp(moment, unit="s", tz="UTC") - pd.DateOffset(months=int(match.group(1)))
    return when.timestamp()


class Served(BaseModel):
    """Training data from what was served: before each retrain, the endpoint's logged requests
    joined with their labels become a snapshot of ``dataset``, appended to ``base`` when given
    (``loopml.data.from_log``); the pipeline reads it through the ``$served`` param."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    base: str | None = None
    time_column: str | None = None

    @field_validator("dataset")
    @classmethod
    def _name(cls, value: str) -> str:
        from loopml.data.snapshots import check_name

        try:
            check_name(value)
        except LoopmlError as error:
            raise ValueError(str(error)) from None
        return value


class Retrain(BaseModel):
    """How a candidate is trained."""

    model_config = ConfigDict(extra="forbid")

    pipeline: str
    params: dict[str, Any] = Field(default_factory=dict)
    window: str = "3 months"
    validation: str = "1 month"
    label_delay: str = "0s"
    model: str = "model"
    reference: str | None = None
    evaluation: str = "valid_rows"
    target: str | None = None
    served: Served | None = None

    _spans = field_validator("window", "validation", "label_delay", mode="before")(_span)

    @model_validator(mode="after")
    def _reads_served(self) -> Retrain:
        reads = "$served" in self.params.values()
        if self.served is not None and not reads:
            raise ValueError(
                "'served' makes a snapshot the pipeline never reads: pass it with a param "
                "such as 'source: $served'"
            )
        if reads and self.served is None:
            raise ValueError("'$served' needs a 'served:' section saying which data to make")
        if self.served is not None and not self.target:
            raise ValueError("'served' needs 'target:', the column its labels go in")
        return self


class Refit(BaseModel):
    """After the gate: the gated recipe trained again on the whole window, its newest part
    included, and rolled out in place of the gated model."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    pipeline: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    max_latency_ratio: float = Field(3.0, gt=0)


class Harm(BaseModel):
    """After a promotion: once enough of what the new champion served is labelled, it is
    compared with the version it replaced on those rows; worse beyond the paired interval is
    harmful, rolled back and alerted on."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    min_rows: int = Field(500, ge=10)
    rollback: bool = True


class Pool(BaseModel):
    """At a step with enough new labels: the champion against the versions that were champion
    before (the `size` most recent) on those labelled rows; a version better beyond the
    paired interval is proposed, gated and rolled out as a retrained candidate would be."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    size: int = Field(5, ge=1)
    min_rows: int = Field(500, ge=10)
    min_gain: float = 0.0


class Backtest(BaseModel):
    """The gate judges the recipe on ``folds`` rolling-origin folds: the newest labelled
    window and the ones before it, each trained on the window before it and compared with the
    version that was champion when it began, pooled in one paired bootstrap."""

    model_config = ConfigDict(extra="forbid")

    folds: int = Field(1, ge=1, le=24)


class Triggers(BaseModel):
    """When to retrain; any one suffices."""

    model_config = ConfigDict(extra="forbid")

    alerts: list[str] = Field(default_factory=list)
    every: float | None = None
    new_labels: int | None = Field(None, ge=1)

    @field_validator("every", mode="before")
    @classmethod
    def _every(cls, value: Any) -> float | None:
        return None if value is None else _duration(value)


def _operational_guardrails() -> Guardrails:
    """The loop's default guardrails: errors and latency on the canary's first requests. A
    retrained model is expected to move its scores (the gate judged that it scores better),
    so the guardrail on scores unlike the champion's is off."""
    return Guardrails(min_requests=5, max_prediction_psi=None)


class Rollout(BaseModel):
    """How a candidate that passed the gate reaches the traffic. The defaults are the loop
    benchmark's (benchmarks/results/loop.md): the gate has judged accuracy on labelled data,
    so no shadow, and a canary of half the traffic for 5 requests, which at 30 to 80 requests
    a month costs a tenth to a third of a month."""

    model_config = ConfigDict(extra="forbid")

    unchanged_tolerance: float = Field(1e-9, ge=0)
    shadow_requests: int = Field(0, ge=0)
    canary_fraction: float = Field(0.5, gt=0, lt=1)
    canary_requests: int = Field(5, ge=1)
    guardrails: Guardrails = Field(default_factory=_operational_guardrails)

    @model_validator(mode="after")
    def _judged_before_promotion(self) -> Rollout:
        if "guardrails" not in self.model_fields_set:  # the default judges a shorter canary too
            wait = min(self.guardrails.min_requests, self.canary_requests)
            self.guardrails = self.guardrails.model_copy(update={"min_requests": wait})
        if self.guardrails.min_requests > self.canary_requests:
            raise ValueError(
                f"the guardrails wait for {self.guardrails.min_requests} canary requests but "
                f"the canary is promoted after {self.canary_requests}: it would become "
                "champion unjudged. Lower guardrails.min_requests or raise canary_requests"
            )
        return self


class RetrainingPolicy(BaseModel):
    """When to retrain and how to roll out (see the module's docstring)."""

    model_config = ConfigDict(extra="forbid")

    retrain: Retrain
    refit: Refit = Field(default_factory=Refit)
    harm: Harm = Field(default_factory=Harm)
    pool: Pool = Field(default_factory=Pool)
    backtest: Backtest = Field(default_factory=Backtest)
    triggers: Triggers = Field(default_factory=Triggers)
    cooldown: float = 0.0
    gate: Path
    rollout: Rollout = Field(default_factory=Rollout)

    @field_validator("cooldown", mode="before")
    @classmethod
    def _cooldown(cls, value: Any) -> float:
        return 0.0 if _zero(value) else _duration(value)

    def params(self, as_of: float, served: str | None = None) -> dict[str, Any]:
        """The pipeline's params, placeholders replaced by the dates they stand for (and
        ``$served`` by the snapshot made from the log)."""
        return self._dated(self.retrain.params, as_of, served)

    def refit_params(self, as_of: float, served: str | None = None) -> dict[str, Any]:
        """The refit's params: the retrain's with the validation's start moved to the data's
        end (so the whole window trains), then the refit's own."""
        moved = {
            key: "$data_end" if value == "$validation_start" else value
            for key, value in self.retrain.params.items()
        }
        return self._dated(moved | self.refit.params, as_of, served)

    def window(self, as_of: float) -> tuple[float, float, float]:
        """The data window of a retrain at the loop's clock ``as_of``: its start, the start
        of its validation, and its end (label_delay before the clock)."""
        end = back(as_of, self.retrain.label_delay)
        return back(end, self.retrain.window), back(end, self.retrain.validation), end

    def _dated(
        self, params: dict[str, Any], as_of: float, served: str | None = None
    ) -> dict[str, Any]:
        start, validation, end = self.window(as_of)
        dates = {
            "$as_of": _date(as_of),
            "$data_end": _date(end),
            "$window_start": _date(start),
            "$validation_start": _date(validation),
            **({"$served": served} if served is not None else {}),
        }
        return {
            key: dates.get(value, value) if isinstance(value, str) else value
            for key, value in params.items()
        }


def _date(moment: float) -> str:
    when = datetime.fromtimestamp(moment, UTC)
    return when.strftime("%Y-%m-%d" if when.time() == datetime.min.time() else "%Y-%m-%dT%H:%M:%S")


def _folder(source: Any) -> Path:
    """The folder of a policy file (relative gate paths start there), else the working one."""
    if isinstance(source, Path) or (isinstance(source, str) and Path(source).is_file()):
        return Path(source).resolve().parent
    return Path.cwd()


def read_policy(source: str | Path | dict[str, Any] | RetrainingPolicy) -> RetrainingPolicy:
    """A retraining policy from a YAML file, YAML text or a dict. Errors name the line; a gate
    file that does not exist is an error too (relative paths are taken from the policy's
    folder)."""
    if isinstance(source, RetrainingPolicy):
        return source
    data, text, where = read_yaml(source, "the retraining policy", PolicyError)
    try:
        found = RetrainingPolicy.model_validate(data)
    except ValidationError as error:
        raise PolicyError(f"{where}: {located_problems(error.errors(), text)}") from None
    gate = found.gate if found.gate.is_absolute() else _folder(source) / found.gate
    if not gate.exists():
        raise PolicyError(
            f"{where}: the gate file {str(found.gate)!r} does not exist (looked for {gate}). "
            "Point 'gate:' at a promotion gate (see docs/gates.md)."
        )
    from loopml.registry.gates import load_policy

    load_policy(gate)  # a broken gate fails now, not after a retrain
    return found.model_copy(update={"gate": gate})
