"""Alert rules: invalid rule files refused with where and why; rules judged on stored windows
(for N windows or a duration, on an interval's bound, on the most important features); an
alert raised once while its rule keeps breaching, resolved when it holds, left alone when a
window has nothing to judge; and the same rules written for Prometheus."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.data.profile import Profile
from loopml.errors import AlertRuleError
from loopml.ids import new_id
from loopml.monitoring import operations as ops
from loopml.monitoring.notifiers import Alert
from loopml.monitoring.rules import judge, prometheus_rules, read_rules
from loopml.registry.reference import Reference, set_reference
from loopml.serving.deployments import alerts
from loopml.store.monitoring import Point, WindowRecord

T0 = 1_800_000_000.0
FIVE_MINUTES = 300.0
IMPORTANCE = {"b": 0.3, "a": 0.1, "c": 0.01}  # b matters most, c hardly at all


class Collected:
    """A notifier that keeps every alert it is sent."""

    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> bool:
        self.sent.append(alert)
        return True


@pytest.fixture
def churn(any_workspace) -> str:
    """churn@1 with a reference whose importance ranks b, a, c."""
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(100, 3)), columns=["a", "b", "c"])
    loopml.models.register("churn", LogisticRegression().fit(frame, frame["b"] > 0), card=False)
    reference = Reference(Profile().fit(frame), None, frame, 100, importance=IMPORTANCE)
    set_reference("churn@1", reference)
    return "churn"


@pytest.fixture
def add(churn, any_workspace) -> Callable[..., WindowRecord]:
    """Store the next monitored window of churn (five minutes long) with these points."""
    clock = [T0]

    def add_window(*points: Point, status: str = "ok") -> WindowRecord:
        start = clock[0]
        clock[0] += FIVE_MINUTES
        record = WindowRecord(
            new_id(), churn, start, clock[0], clock[0], None, [1], 100 if points else 0, status
        )
        record.points.extend(points)
        ops.add_window(any_workspace.metadata, record.endpoint, record)
        return record

    return add_window


def _errors(rate: float) -> Point:
    return Point("error_rate", "", rate)


def _rules(*lines: str) -> str:
    return "rules:\n" + "".join(f"{line}\n" for line in lines)


ERROR_RATE = _rules("  - name: errors", "    metric: error_rate", "    above: 0.05")


VALID = ("  - name: fine", "    metric: psi", "    above: 0.2")


@pytest.mark.parametrize(
    ("rule", "fragments"),
    [
        (
            ("  - name: typo", "    metric: psii", "    above: 1"),
            ["rules.1 (line 5)", "unknown metric 'psii'", "Did you mean psi"],
        ),
        (
            ("  - name: both", "    metric: psi", "    above: 1", "    below: 0"),
            ["rules.1 (line 5)", "exactly one of 'above' and 'below'"],
        ),
        (("  - name: neither", "    metric: psi"), ["exactly one of 'above' and 'below'"]),
        (
            ("  - name: keyed", "    metric: error_rate", "    features: [a]", "    above: 0.1"),
            ["error_rate has one value per window; it takes no keys"],
        ),
        (
            ("  - name: weeks", "    metric: psi", "    above: 1", "    for: 3 weeks"),
            ["'for' is a number of windows", "'3 weeks' is not a duration"],
        ),
        (
            ("  - name: never", "    metric: psi", "    above: 1", "    for: 0"),
            ["'for' counts at least 1 window"],
        ),
        (("  - name: fine", "    metric: js", "    above: 1"), ["fine is used twice"]),
        (("  - name: typo", "    metric: psi", "    abve: 1"), ["rules.1.abve (line 7)"]),
        (
            ("  - name: loud", "    metric: psi", "    above: 1", "    severity: page"),
            ["rules.1.severity (line 8)", "'info', 'warning' or 'critical'"],
        ),
        (("notifiers: [{slack: 'http://127.0.0.1:1/'}]",), ["A notifier is 'log'", "slack"]),
        (
            ("  - name: rolling", "    metric: psi", "    above: 1", "    against: yesterday"),
            [
                "rules.1.against (line 8)",
                "'reference', 'previous window' or 'last N windows'",
                "not 'yesterday'",
            ],
        ),
        (
            ("  - name: rolling", "    metric: psi", "    above: 1", "    against: last 0 windows"),
            ["rules.1.against (line 8)", "N at least 1"],
        ),
        (
            (
                "  - name: auc",
                "    metric: roc_auc",
                "    below: 1",
                "    against: previous window",
            ),
            ["rules.1 (line 5)", "roc_auc is judged against the training reference only"],
        ),
        (
            ("  - name: spelled", "    metric: psi_previous", "    above: 1"),
            ["rules.1 (line 5)", "write 'metric: psi' with 'against: previous window'"],
        ),
        (("  - name: [",), ["not valid YAML"]),
    ],
)
def test_invalid_rules_are_refused_saying_where(rule: tuple[str, ...], fragments) -> None:
    with pytest.raises(AlertRuleError) as raised:
        read_rules(_rules(*VALID, *rule))
    for fragment in fragments:
        assert fragment in str(raised.value)


def test_rules_are_read_from_a_file_and_name_it(tmp_path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(_rules("  - name: x", "    metric: nope", "    above: 1"))
    with pytest.raises(AlertRuleError, match="rules.yaml: rules.0"):
        read_rules(path)
    path.write_text(ERROR_RATE + "notifiers: [log, {webhook: 'http://127.0.0.1:9/hook'}]\n")
    found = read_rules(path)
    assert [r.name for r in found.rules] == ["errors"] and len(found.make_notifiers()) == 2


def test_an_alert_fires_once_then_resolves_and_no_data_changes_nothing(churn, add) -> None:
    notifier = Collected()

    def judged() -> tuple[list, list]:
        return judge(churn, ERROR_RATE, [notifier])

    add(_errors(0.01))
    assert judged() == ([], [])
    add(_errors(0.10))
    fired, resolved = judged()
    assert [a["rule"] for a in fired] == ["errors"] and resolved == []
    assert "error_rate breached: 0.1" in fired[0]["message"]
    add(_errors(0.20))  # still breaching: no second alert, nothing sent
    assert judged() == ([], [])
    add(status="empty")  # nothing to judge: the alert stays open
    assert judged() == ([], [])
    assert [a.kind for a in alerts(churn, open_only=True)] == ["rule:errors"]
    add(_errors(0.01))
    fired, resolved = judged()
    assert fired == [] and [a["id"] for a in resolved] == [notifier.sent[0].id]
    assert [(a.status, a.rule) for a in notifier.sent] == [
        ("firing", "errors"),
        ("resolved", "errors"),
    ]
    assert notifier.sent[1].resolved_at is not None
    assert alerts(churn, open_only=True) == []
    add(_errors(0.01))
    assert judged() == ([], []) and len(notifier.sent) == 2


def test_for_n_windows_needs_n_breaching_windows_in_a_row(churn, add) -> None:
    rules = ERROR_RATE + "    for: 3 windows\n"
    notifier = Collected()
    for rate in (0.1, 0.1, 0.01, 0.1, 0.1):
        add(_errors(rate))
        assert judge(churn, rules, [notifier]) == ([], [])
    add(_errors(0.1))
    fired, _ = judge(churn, rules, [notifier])
    assert len(fired) == 1 and len(notifier.sent) == 1


def test_for_a_duration_needs_windows_covering_it(churn, add) -> None:
    rules = ERROR_RATE + "    for: 10m\n"
    add(_errors(0.01))
    add(_errors(0.1))  # five minutes of breaching: not yet
    assert judge(churn, rules, [Collected()]) == ([], [])
    add(_errors(0.1))  # ten minutes
    assert len(judge(churn, rules, [Collected()])[0]) == 1


@pytest.mark.parametrize(("bound", "fires"), [("low", True), ("value", False), ("high", False)])
def test_a_rule_can_judge_an_intervals_bound(churn, add, bound: str, fires: bool) -> None:
    add(Point("roc_auc", "", 0.8, 0.6, 0.9))
    rules = _rules("  - name: auc", "    metric: roc_auc", f"    bound: {bound}", "    below: 0.65")
    assert len(judge(churn, rules, [Collected()])[0]) == int(fires)


def test_top_features_follow_the_references_importance(churn, add) -> None:
    rules = _rules("  - name: drift", "    metric: psi", "    features: top 2", "    above: 0.25")
    add(Point("psi", "a", 0.1), Point("psi", "b", 0.1), Point("psi", "c", 0.9))
    assert judge(churn, rules, [Collected()]) == ([], [])  # c is not among the top 2
    add(Point("psi", "a", 0.3), Point("psi", "b", 0.4), Point("psi", "c", 0.9))
    fired, _ = judge(churn, rules, [Collected()])
    assert fired[0]["details"]["values"] == {"a": 0.3, "b": 0.4}


def test_keys_are_any_key_by_default_or_the_ones_named(churn, add) -> None:
    add(Point("psi", "a", 0.1), Point("psi", "c", 0.9))
    anyone = _rules("  - name: anyone", "    metric: psi", "    above: 0.25")
    named = _rules("  - name: named", "    metric: psi", "    features: a", "    above: 0.25")
    assert judge(churn, anyone, [Collected()])[0][0]["details"]["values"] == {"c": 0.9}
    assert judge(churn, named, [Collected()]) == ([], [])


def test_rules_become_a_prometheus_rule_group() -> None:
    rules = _rules(
        *("  - name: drift", "    metric: psi", "    features: top 2"),
        *("    above: 0.25", "    for: 3 windows"),
        *("  - name: auc", "    metric: roc_auc", "    bound: low", "    below: 0.65"),
        *("    for: 10m", "    severity: critical"),
        *("  - name: errors", "    metric: error_rate", "    above: 0.05"),
    )
    group = prometheus_rules("churn", rules, every=60, top=["b", "a", "c"])["groups"][0]
    assert group["name"] == "loopml-churn"
    drift, auc, errors = group["rules"]
    assert drift["expr"] == (
        'loopml_monitor_value{endpoint="churn", metric="psi", bound="value", key=~"b|a"} > 0.25'
    )
    assert drift["for"] == "120s"  # the third window in a row is two periods after the first
    assert auc["expr"] == (
        'loopml_monitor_value{endpoint="churn", metric="roc_auc", bound="low"} < 0.65'
    )
    assert auc["for"] == "540s" and auc["labels"]["severity"] == "critical"
    assert errors["for"] == "0s"


def test_every_evaluation_metric_and_a_registered_one_can_be_alerted_on(churn, add) -> None:
    loopml.register_metric(
        "within_10", lambda y, s, w: 0.0, task="regression", higher_is_better=True
    )
    try:
        rules = _rules(
            "  - name: mae_high",
            "    metric: mae",
            "    bound: low",
            "    above: 10",
            "  - name: near",
            "    metric: within_10",
            "    below: 0.5",
        )
        add(Point("mae", "", 12.0, 11.0, 13.0), Point("within_10", "", 0.4))
        fired, _ = judge(churn, rules, [Collected()])
        assert {alert["rule"] for alert in fired} == {"mae_high", "near"}
    finally:
        loopml.unregister_metric("within_10")
    with pytest.raises(AlertRuleError, match="unknown metric 'within_10'.*register_metric"):
        read_rules(_rules("  - name: gone", "    metric: within_10", "    below: 0.5"))


def test_a_rule_against_earlier_windows_judges_the_metric_stored_for_them(churn, add) -> None:
    rules = _rules(
        "  - name: step",
        "    metric: psi",
        "    against: Last 1 window",  # the previous window, however it is written
        "    above: 0.25",
        "  - name: pooled",
        "    metric: max_psi",
        "    against: last 3 windows",
        "    above: 0.25",
    )
    found = read_rules(rules)
    assert [(r.against, r.series_metric) for r in found.rules] == [
        ("previous window", "psi_previous"),
        ("last 3 windows", "max_psi_last3"),
    ]
    assert [str(a) for a in found.rolling()] == ["previous window", "last 3 windows"]
    add(Point("psi", "a", 0.9), Point("psi_previous", "a", 0.1), Point("max_psi_last3", "", 0.1))
    assert judge(churn, rules, [Collected()]) == ([], [])  # psi against the reference is high
    add(Point("psi", "a", 0.9), Point("psi_previous", "a", 0.3), Point("max_psi_last3", "", 0.1))
    fired, _ = judge(churn, rules, [Collected()])
    assert [a["rule"] for a in fired] == ["step"]
    assert "psi against the previous window > 0.25" in fired[0]["message"]
    group = prometheus_rules("churn", rules, every=60)["groups"][0]["rules"]
    assert 'metric="psi_previous"' in group[0]["expr"]
    assert 'metric="max_psi_last3"' in group[1]["expr"]


def test_a_rule_with_the_longest_name_raises_its_alert(workspace) -> None:
    name = "r" * 64  # its alerts' kind is rule:<name>, longer than a name
    raised = ops.record_verdict(workspace.metadata, "api", name, True, "breached", {})
    assert raised is not None and raised.status == "firing"
    assert [a.kind for a in ops.open_rule_alerts(workspace.metadata, "api")] == ["rule:" + name]
