"""Alert rules, judged on the time series monitors store.

    rules:
      - name: feature_drift
        metric: psi
        features: top 10          # keys: a list, 'any' (default), or 'top N' by importance
        above: 0.25
        for: 2 windows            # or a duration: 10m, 1h
      - name: sudden_shift
        metric: psi
        against: previous window  # or 'reference' (default), 'last 3 windows'
        above: 0.25
      - name: auc_low
        metric: roc_auc
        bound: low                # judge the interval's lower bound
        below: 0.65
    notifiers: [log, {webhook: "http://127.0.0.1:9000/hook"}, {alertmanager: "http://127.0.0.1:9093"}]

A rule breaches when, for some key, every window it looks at breaches: the last N windows,
or the newest windows covering the duration. An open alert is not raised again while the
rule keeps breaching (deduplication); it is resolved, and notifiers told, the first time the
rule is judged and holds. A rule without values to judge (a window with no traffic) leaves
its alert as it is. A drift rule judges the window against the serving version's training
reference, or against earlier windows (``against``, see rolling.py): then it judges the
metric stored with the suffix, ``psi_previous`` or ``psi_last3``.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from loopml.durations import seconds
from loopml.errors import AlertRuleError, LoopmlError
from loopml.evaluation.wording import number
from loopml.monitoring import operations as ops
from loopml.monitoring.checks import metric_key, monitored_metrics
from loopml.monitoring.notifiers import Alert, LogNotifier, Notifier, notifier_from
from loopml.monitoring.operations import PREFIX as PREFIX  # the kind of a rule's alerts
from loopml.monitoring.rolling import METRICS as ROLLING_METRICS
from loopml.monitoring.rolling import PREVIOUS, Against, split_metric
from loopml.workspace import Workspace, current_workspace
from loopml.yamltext import located_problems, read_yaml

WINDOWS = re.compile(r"^\s*(\d+)\s*windows?\s*$")
TOP = re.compile(r"^\s*top\s+(\d+)\s*$")


class Rule(BaseModel):
    """One alert rule."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
    metric: str
    keys: str | list[str] = Field("any", validation_alias=AliasChoices("keys", "features"))
    above: float | None = None
    below: float | None = None
    bound: Literal["value", "low", "high"] = "value"
    against: str = "reference"
    for_: str | int = Field("1 window", alias="for")
    severity: Literal["info", "warning", "critical"] = "warning"
    message: str | None = None

    @field_validator("against", mode="before")
    @classmethod
    def _against(cls, value: Any) -> str:
        return str(Against.read(value))

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if metric_key(self.metric) is None:
            raise ValueError(_unknown(self.metric))
        if self.judged_against.rolling and self.metric not in ROLLING_METRICS:
            raise ValueError(
                f"{self.metric} is judged against the training reference only; "
                f"'against: {self.against}' takes one of {', '.join(ROLLING_METRICS)}"
            )
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of 'above' and 'below'")
        if isinstance(self.keys, str) and self.keys != "any" and not TOP.match(self.keys):
            self.keys = [self.keys]
        if self.keys != "any" and not metric_key(self.metric):
            raise ValueError(f"{self.metric} has one value per window; it takes no keys")
        self.span  # noqa: B018 - checks 'for' now, with the rule's line
        return self

    @property
    def judged_against(self) -> Against:
        return Against.read(self.against)

    @property
    def series_metric(self) -> str:
        """The metric as stored: psi, or psi_previous when judged against the previous window."""
        return self.judged_against.metric(self.metric)

    @property
    def span(self) -> tuple[str, float]:
        """('windows', N) or ('seconds', S)."""
        if isinstance(self.for_, int) and not isinstance(self.for_, bool):
            if self.for_ < 1:
                raise ValueError("'for' counts at least 1 window")
            return "windows", float(self.for_)
        match = WINDOWS.match(str(self.for_))
        if match:
            if int(match.group(1)) < 1:
                raise ValueError("'for' counts at least 1 window")
            return "windows", float(match.group(1))
        try:
            return "seconds", seconds(self.for_)
        except LoopmlError as error:
            raise ValueError(
                f"'for' is a number of windows ('2 windows') or a duration: {error}"
            ) from None

    def breaches(self, value: Any) -> bool:
        if value is None or pd.isna(value):
            return False
        return value > self.above if self.above is not None else value < self.below

    def condition(self) -> str:
        side = f"> {number(self.above)}" if self.above is not None else f"< {number(self.below)}"
        what = self.metric if self.bound == "value" else f"{self.metric} ({self.bound} bound)"
        if self.judged_against.rolling:
            what += f" against {self.judged_against.phrase()}"
        return f"{what} {side} for {self.for_}"


def _unknown(metric: str) -> str:
    """Why a metric name is refused, with the closest known names."""
    rolling = split_metric(metric)
    if rolling is not None:
        base, against = rolling
        return f"write 'metric: {base}' with 'against: {against}', not metric {metric!r}"
    known = monitored_metrics()
    close = difflib.get_close_matches(metric, known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return (
        f"unknown metric {metric!r}.{hint} Known: {', '.join(known)}; register your own "
        "with loopml.register_metric"
    )


class RuleSet(BaseModel):
    """Alert rules and the notifiers their alerts go to."""

    model_config = ConfigDict(extra="forbid")

    rules: list[Rule]
    notifiers: list[Any] = Field(default_factory=lambda: ["log"])

    def make_notifiers(self) -> list[Notifier]:
        return [notifier_from(spec) for spec in self.notifiers]

    def rolling(self) -> list[Against]:
        """The rolling references a monitor measures drift against for these rules: the
        previous window always, and every other one a rule names."""
        named = {rule.judged_against for rule in self.rules if rule.judged_against.rolling}
        return sorted(named | {PREVIOUS}, key=lambda against: against.windows)


def read_rules(source: str | Path | dict[str, Any] | list[Any] | RuleSet) -> RuleSet:
    """Alert rules from a YAML file, YAML text, a dict or a list of rules; errors say where."""
    if isinstance(source, RuleSet):
        return source
    if isinstance(source, list):
        source = {"rules": source}
    data, text, where = read_yaml(source, "the alert rules", AlertRuleError)
    try:
        found = RuleSet.model_validate(data)
        found.make_notifiers()
    except ValidationError as error:
        raise AlertRuleError(f"{where}: {located_problems(error.errors(), text)}") from None
    names = [rule.name for rule in found.rules]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise AlertRuleError(
            f"{where}: each rule needs its own name; {', '.join(twice)} is used twice."
        )
    return found


@dataclass
class Verdict:
    """A rule's judgement: None when there was nothing to judge; the breaching keys' values."""

    breaching: bool | None
    values: dict[str, float]
    window: str | None


def verdict(rule: Rule, points: pd.DataFrame, windows: list[Any], top: list[str]) -> Verdict:
    """Judge a rule on the series (points of its metric) over the windows, oldest first."""
    mine = points[(points["metric"] == rule.series_metric) & points[rule.bound].notna()]
    if not windows or mine.empty:
        return Verdict(None, {}, None)
    chosen = _windows(rule, windows)
    latest = windows[-1]
    keys = _keys(rule, mine, top)
    values = mine[mine["key"].isin(keys)].set_index(["window_id", "key"])[rule.bound]
    if not any((latest.id, key) in values.index for key in keys):
        return Verdict(None, {}, latest.id)
    if chosen is None:
        return Verdict(False, {}, latest.id)
    breaching = {}
    for key in keys:
        found = [values.get((w.id, key)) for w in chosen]
        if all(rule.breaches(value) for value in found):
            breaching[key] = float(found[-1])
    return Verdict(bool(breaching), breaching, latest.id)


def _windows(rule: Rule, windows: list[Any]) -> list[Any] | None:
    """The newest windows the rule looks at, or None when there are not enough yet."""
    unit, size = rule.span
    if unit == "windows":
        count = int(size)
        return windows[-count:] if len(windows) >= count else None
    end = windows[-1].end
    for first in range(len(windows) - 1, -1, -1):
        if end - windows[first].start >= size:
            return windows[first:]
    return None


def _keys(rule: Rule, points: pd.DataFrame, top: list[str]) -> list[str]:
    if not metric_key(rule.metric):
        return [""]
    if rule.keys == "any":
        return sorted(points["key"].unique())
    match = TOP.match(rule.keys) if isinstance(rule.keys, str) else None
    if match:
        return top[: int(match.group(1))]
    return list(rule.keys)


def judge(
    name: str,
    rules: Any,
    notifiers: list[Notifier] | None = None,
    *,
    workspace: Workspace | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Judge every rule on the endpoint's stored series; raise and resolve its alerts and
    tell the notifiers. Returns (fired, resolved) alerts as dicts."""
    from loopml.monitoring.timeseries import series, windows

    workspace = workspace or current_workspace()
    found = read_rules(rules)
    sends = notifiers if notifiers is not None else found.make_notifiers() or [LogNotifier()]
    done = [w for w in windows(name, workspace=workspace) if w.status != "failed" or w.rows]
    points = series(name, {rule.series_metric for rule in found.rules}, workspace=workspace)
    top = _top(name, done, workspace)
    fired, resolved = [], []
    for rule in found.rules:
        judged = verdict(rule, points, done, top)
        outcome = _act(name, rule, judged, workspace)
        if outcome is not None:
            for notifier in sends:
                notifier.send(outcome)
            (fired if outcome.status == "firing" else resolved).append(outcome.to_dict())
    return fired, resolved


def _top(name: str, windows: list[Any], workspace: Workspace) -> list[str]:
    from loopml.registry.reference import get_reference

    if not windows or not windows[-1].versions:
        return []
    try:
        return get_reference(f"{name}@{windows[-1].versions[0]}", workspace=workspace).top_features(
            100
        )
    except LoopmlError:
        return []


def _act(name: str, rule: Rule, judged: Verdict, workspace: Workspace) -> Alert | None:
    """Raise or resolve the rule's alert as its verdict says: the alert to tell notifiers."""
    if judged.breaching is None:  # nothing to judge: the alert stays as it is
        return None
    rule_dump = rule.model_dump(by_alias=True)
    details = {"rule": rule_dump, "values": judged.values, "window": judged.window}
    message = rule.message or _message(rule, judged)
    change = ops.record_verdict(
        workspace.metadata, name, rule.name, judged.breaching, message, details
    )
    if change is None:
        return None
    found = change.alert
    if change.status == "resolved":
        message = f"resolved: {rule.condition()} holds no longer"
    return Alert(
        found.id,
        name,
        rule.name,
        change.status,
        rule.severity,
        message,
        found.at,
        found.resolved_at,
        found.details,
    )


def _message(rule: Rule, judged: Verdict) -> str:
    shown = ", ".join(
        f"{key}={number(value)}" if key else number(value)
        for key, value in list(judged.values.items())[:5]
    )
    return f"{rule.metric} breached: {shown} ({rule.condition()})"


def prometheus_rules(
    name: str, rules: Any, *, every: float, top: list[str] | None = None
) -> dict[str, Any]:
    """The rules as a Prometheus rule group over the ``loopml_monitor_value`` gauges a server
    with ``--monitor-every`` exposes: a count of windows becomes that many periods of
    ``every`` seconds; 'top N' keys become the N features named in ``top``."""
    found = read_rules(rules)
    group = []
    for rule in found.rules:
        labels = [
            f"endpoint={_promql(name)}",
            f'metric="{rule.series_metric}"',
            f'bound="{rule.bound}"',
        ]
        keys = _prometheus_keys(rule, top or [])
        if keys is not None:
            labels.append(f"key=~{_promql('|'.join(re.escape(k) for k in keys))}")
        side = f"> {rule.above!r}" if rule.above is not None else f"< {rule.below!r}"
        unit, size = rule.span
        duration = size * every if unit == "windows" else size
        group.append(
            {
                "alert": rule.name,
                "expr": f"loopml_monitor_value{{{', '.join(labels)}}} {side}",
                "for": f"{max(int(duration - every), 0)}s",
                "labels": {"severity": rule.severity, "endpoint": name, "source": "loopml"},
                "annotations": {"summary": rule.message or f"{name}: {rule.condition()}"},
            }
        )
    return {"groups": [{"name": f"loopml-{name}", "rules": group}]}


def _promql(text: str) -> str:
    """text as a PromQL string: JSON's escapes are Go's, which PromQL's strings take (a
    feature 'delay-min' is the regex 'delay\\-min', written "delay\\\\-min")."""
    return json.dumps(text, ensure_ascii=False)


def _prometheus_keys(rule: Rule, top: list[str]) -> list[str] | None:
    if not metric_key(rule.metric) or rule.keys == "any":
        return None
    match = TOP.match(rule.keys) if isinstance(rule.keys, str) else None
    if match and not top:
        raise AlertRuleError(
            f"Rule {rule.name!r} watches the top {match.group(1)} features, but the champion "
            "has no reference data to rank them. Store one with 'loopml models reference', "
            "or name the features."
        )
    return top[: int(match.group(1))] if match else list(rule.keys)
