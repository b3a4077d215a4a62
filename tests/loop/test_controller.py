"""One step of the loop at a time, on the tiny pipeline's endpoint: what triggers a retrain and
what keeps it back, the gate letting a candidate in or keeping it out, the rollout from shadow
to canary to champion on real traffic through the app, a rolled-back canary, a failing
pipeline, and every decision in the record.

The loop's clock is July 2013 (the data ends on June 30): a retrain trains on May and is
judged on June, where the January-February champion has fallen behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

import loopml
from loopml.events import read_events
from loopml.loop import decisions, run_loop
from loopml.monitoring.window import monitor
from loopml.registry.reference import get_reference
from loopml.serving import create_app, deploy, deployment
from loopml.serving.deployments import alerts, end_canary, raise_alert
from loopml.store import deployments as alerts_repo
from loopml.workspace import current_workspace

DAY = 86400.0
JULY = pd.Timestamp("2013-07-01", tz="UTC").timestamp()
MAY_JUNE = {"train_from": "2013-05-01", "split_at": "2013-06-01", "data_end": "2013-07-01"}
DRIFT_RULES = "rules:\n  - name: drift\n    metric: psi\n    features: [a]\n    above: 0.25\n"


def _drift_alert(name: str) -> None:
    """What the monitor's alert rule 'drift' records when it fires."""
    raise_alert(name, "rule:drift", "psi breached: a=3.1 (psi > 0.25 for 1 window)")


def _resolve_drift(name: str) -> None:
    with current_workspace().metadata.write() as connection:
        alerts_repo.resolve_alerts(connection, name, "rule:drift", time.time())


def _june(tiny, rows: int) -> list[dict[str, float]]:
    """Feature records of June (fresh draws), as callers would send them."""
    frame = tiny.rows(seed=1)
    return frame.loc[frame["time"].dt.month == 6, tiny.FEATURES].head(rows).to_dict("records")


def _answered(role: str) -> int:
    """Requests the prediction log shows answered in a role."""
    logged = read_events("predictions")
    if "role" not in logged:
        return 0
    return logged.loc[logged["role"] == role, "request_id"].nunique()


def _until(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.02)


def _predict(client: TestClient, records: list[dict], key: str | None = None) -> dict:
    headers = {"X-Loopml-Key": key} if key else {}
    answer = client.post("/predict", json={"records": records}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _actions(name: str) -> list[str]:
    return [found.action for found in decisions(name)]


def _versions(name: str) -> list[int]:
    return [record.version for record in loopml.models.versions(name)]


def _champion(name: str) -> int:
    return loopml.models.get_version(f"{name}@champion").version


def test_without_a_trigger_a_step_changes_nothing(endpoint, policy) -> None:
    step = run_loop(endpoint, policy(), as_of=JULY)
    assert (step.state, step.decisions) == ("idle", [])
    assert step.message == "no trigger holds; nothing to do"
    assert decisions(endpoint) == [] and _versions(endpoint) == [1]
    assert deployment(endpoint)[1] == 0


def test_an_alert_of_another_rule_is_no_trigger(endpoint, policy) -> None:
    raise_alert(endpoint, "rule:latency_high", "p99 above 50 ms")
    raise_alert(endpoint, "drift", "not raised by a rule")
    assert run_loop(endpoint, policy(), as_of=JULY).decisions == []
    assert _versions(endpoint) == [1]


def test_a_drift_alert_from_monitoring_retrains_and_the_candidate_shadows(
    endpoint, policy, tiny
) -> None:
    started = time.time()
    with TestClient(create_app(endpoint)) as client:
        records = _june(tiny, 200)
        for first in range(0, len(records), 50):
            _predict(client, records[first : first + 50])
    found = monitor(endpoint, since=started, until=time.time() + 1, rules=DRIFT_RULES)
    assert [alert["rule"] for alert in found.fired] == ["drift"]

    step = run_loop(endpoint, policy(), as_of=JULY)

    assert step.state == "shadow" and step.message == "candidate 2 is shadowing"
    assert [d.action for d in step.decisions] == ["retrain", "gate_passed", "shadow"]
    assert [d.to_dict() for d in decisions(endpoint)] == [d.to_dict() for d in step.decisions]
    retrain, gate, _ = step.decisions
    assert retrain.version == gate.version == 2 and retrain.as_of == JULY
    assert retrain.message == "retrained as version 2 because alert drift is firing"
    assert retrain.evidence["params"] == MAY_JUNE
    assert retrain.evidence["triggers"] == ["alert drift is firing"]
    assert loopml.get_run(retrain.evidence["run"]).status == "finished"
    assert gate.message == "candidate 2 passed the gate against tiny@1"
    assert [c["passed"] for c in gate.evidence["checks"]] == [True, True]
    assert gate.evidence["rows"] == 30 * 6  # June, a row every four hours
    assert loopml.models.get_version("tiny@challenger").version == 2
    assert _champion(endpoint) == 1
    spec, _ = deployment(endpoint)
    assert (spec.champion, spec.shadow, spec.canary) == ("champion", "2", None)
    reference = get_reference("tiny@2")
    assert reference.rows == 31 * 6 and reference.target == "y"  # May's rows


def test_a_candidate_the_gate_refuses_stays_registered_and_unserved(endpoint, policy) -> None:
    _drift_alert(endpoint)
    step = run_loop(endpoint, policy(gate="strict_gate.yaml"), as_of=JULY)
    assert step.state == "idle" and step.message == "candidate 2 was refused by the gate"
    assert _actions(endpoint) == ["retrain", "gate_failed"]
    refused = step.decisions[-1]
    assert refused.version == 2 and "lower bound" in refused.message
    assert [c["passed"] for c in refused.evidence["checks"]] == [False]
    assert _versions(endpoint) == [1, 2]
    assert loopml.models.get_version("tiny@2").aliases == ()
    assert deployment(endpoint)[1] == 0  # never deployed
    assert _champion(endpoint) == 1


def test_the_cooldown_holds_a_second_retrain_back_until_it_has_passed(endpoint, policy) -> None:
    rules = policy(gate="strict_gate.yaml", cooldown="20d")
    _drift_alert(endpoint)
    assert [d.action for d in run_loop(endpoint, rules, as_of=JULY).decisions] == [
        "retrain",
        "gate_failed",
    ]
    held = run_loop(endpoint, rules, as_of=JULY + 9 * DAY)
    assert (held.state, held.decisions) == ("idle", [])
    assert held.message == (
        "alert drift is firing, but the cooldown after the last retrain has 11.0 days left"
    )
    assert _versions(endpoint) == [1, 2]
    again = run_loop(endpoint, rules, as_of=JULY + 20 * DAY)
    assert [d.action for d in again.decisions] == ["retrain", "gate_failed"]
    assert again.decisions[0].version == 3
    assert again.decisions[0].evidence["params"]["data_end"] == "2013-07-21"
    assert _actions(endpoint) == ["retrain", "gate_failed"] * 2


def test_the_schedule_retrains_once_the_last_retrain_is_old_enough(endpoint, policy) -> None:
    rules = policy(gate="strict_gate.yaml", triggers={"every": "30d"})
    _drift_alert(endpoint)
    run_loop(endpoint, rules, as_of=JULY)
    _resolve_drift(endpoint)
    assert run_loop(endpoint, rules, as_of=JULY + 29 * DAY).decisions == []
    aged = run_loop(endpoint, rules, as_of=JULY + 30 * DAY).decisions
    assert [d.action for d in aged] == ["retrain", "gate_failed"]
    assert aged[0].evidence["triggers"] == ["the last retrain is older than the schedule allows"]


def test_the_schedule_retrains_a_champion_that_was_never_retrained(endpoint, policy) -> None:
    rules = policy(gate="strict_gate.yaml", triggers={"alerts": [], "every": "30d"})
    step = run_loop(endpoint, rules, as_of=time.time() + 31 * DAY)  # the champion is 31 days old
    assert step.decisions and step.decisions[0].action.startswith("retrain")


def test_a_candidate_shadows_then_canaries_then_becomes_champion(endpoint, policy, tiny) -> None:
    rules = policy()
    records = _june(tiny, 40)
    _drift_alert(endpoint)
    assert run_loop(endpoint, rules, as_of=JULY).state == "shadow"

    with TestClient(create_app(endpoint)) as client:
        for first in range(3):
            _predict(client, records[first * 5 : first * 5 + 5])
        _until(lambda: _answered("shadow") == 3)
        waiting = run_loop(endpoint, rules, as_of=JULY)
        assert (waiting.state, waiting.decisions) == ("shadow", [])
        assert waiting.message == "candidate 2 shadowed 3 of 4 requests"
        _predict(client, records[15:20])
        _until(lambda: _answered("shadow") == 4)
    canary = run_loop(endpoint, rules, as_of=JULY)
    assert canary.state == "canary" and [d.action for d in canary.decisions] == ["canary"]
    shadowed = canary.decisions[0].evidence["shadow"]
    assert shadowed["requests"] == 4 and shadowed["error_rate"] == 0
    spec, _ = deployment(endpoint)
    assert spec.shadow is None and spec.canary.version == "2" and spec.canary.fraction == 0.5

    with TestClient(create_app(endpoint)) as client:
        served = [_predict(client, records[i : i + 1], key=f"caller-{i}") for i in range(40)]
    by_canary = [i for i, answer in enumerate(served) if answer["model"] == "tiny@2"]
    assert 4 <= len(by_canary) <= 36  # half the callers, give or take
    assert _answered("canary") == len(by_canary)
    promoted = run_loop(endpoint, rules, as_of=JULY + DAY)

    assert promoted.state == "idle" and promoted.message == "version 2 is champion"
    (promote,) = promoted.decisions
    assert promote.action == "promote" and promote.version == 2
    assert promote.evidence["previous"] == 1
    assert promote.evidence["canary"]["requests"] == len(by_canary)
    assert promote.evidence["champion"]["requests"] == 40 - len(by_canary)
    assert _champion(endpoint) == 2
    spec, _ = deployment(endpoint)
    assert (spec.shadow, spec.canary) == (None, None)
    assert _actions(endpoint) == ["retrain", "gate_passed", "shadow", "canary", "promote"]
    assert [d.version for d in decisions(endpoint)] == [2] * 5
    moves = [(e.action, e.alias, e.to_version) for e in loopml.models.history(endpoint)]
    assert ("promote", "challenger", 2) in moves
    # the canary ends first, then the alias moves: a failed move leaves the old champion
    assert moves[-2:] == [("deploy", None, None), ("promote", "champion", 2)]
    with TestClient(create_app(endpoint)) as client:
        assert _predict(client, records[:1])["model"] == "tiny@2"


def test_a_promoted_canary_serves_where_the_champion_was_pinned(endpoint, policy, tiny) -> None:
    deploy(endpoint, {"champion": "1"})
    rules = policy(
        rollout={
            "shadow_requests": 0,
            "canary_requests": 1,
            "guardrails": {
                "min_requests": 1,
                "max_latency_ratio": None,
                "max_prediction_psi": None,
            },
        }
    )
    _drift_alert(endpoint)
    assert run_loop(endpoint, rules, as_of=JULY).state == "canary"
    with TestClient(create_app(endpoint)) as client:
        served = [_predict(client, _june(tiny, 1), key=f"caller-{i}") for i in range(20)]
    assert "tiny@2" in {answer["model"] for answer in served}
    assert run_loop(endpoint, rules, as_of=JULY).message == "version 2 is champion"
    with TestClient(create_app(endpoint)) as client:
        assert _predict(client, _june(tiny, 1))["model"] == "tiny@2"


def test_a_shadow_without_traffic_yet_waits(endpoint, policy) -> None:
    _drift_alert(endpoint)
    assert run_loop(endpoint, policy(), as_of=JULY).state == "shadow"
    waiting = run_loop(endpoint, policy(), as_of=JULY)  # no server has answered anything yet
    assert (waiting.state, waiting.decisions) == ("shadow", [])
    assert waiting.message == "candidate 2 shadowed 0 of 4 requests"


def test_a_canary_without_traffic_yet_waits(endpoint, policy) -> None:
    rules = policy(rollout={"shadow_requests": 0})
    _drift_alert(endpoint)
    started = run_loop(endpoint, rules, as_of=JULY)
    assert [d.action for d in started.decisions] == ["retrain", "gate_passed", "canary"]
    waiting = run_loop(endpoint, rules, as_of=JULY)
    assert (waiting.state, waiting.decisions) == ("canary", [])
    assert waiting.message == "canary 2 answered 0 of 4 requests"
    assert _champion(endpoint) == 1


def test_a_rolled_back_canary_is_recorded_once(endpoint, policy) -> None:
    rules = policy(cooldown="30d", rollout={"shadow_requests": 0})
    _drift_alert(endpoint)
    assert run_loop(endpoint, rules, as_of=JULY).state == "canary"
    end_canary(endpoint, "error rate 0.5 > 0.05 over 60 requests")

    step = run_loop(endpoint, rules, as_of=JULY + DAY)
    assert step.state == "idle" and "cooldown" in step.message
    (rolled,) = step.decisions
    assert rolled.action == "rolled_back" and rolled.version == 2
    assert rolled.message == (
        "canary 2 was rolled back by its guardrails: error rate 0.5 > 0.05 over 60 requests"
    )
    assert rolled.evidence["reason"] == "error rate 0.5 > 0.05 over 60 requests"
    assert run_loop(endpoint, rules, as_of=JULY + 2 * DAY).decisions == []
    assert _actions(endpoint).count("rolled_back") == 1
    assert _champion(endpoint) == 1
    assert "canary_rolled_back" in [alert.kind for alert in alerts(endpoint)]


def test_a_failing_pipeline_is_recorded_and_the_champion_serves_on(endpoint, policy) -> None:
    rules = policy()
    rules["retrain"]["params"]["fail"] = True
    _drift_alert(endpoint)
    step = run_loop(endpoint, rules, as_of=JULY)
    assert step.state == "idle" and step.message == "the retrain failed; see the decision log"
    (failed,) = step.decisions
    assert failed.action == "retrain_failed" and failed.version is None
    assert "the training data is broken today" in failed.message
    assert failed.evidence["params"] == {**MAY_JUNE, "fail": True}
    assert failed.evidence["triggers"] == ["alert drift is firing"]
    assert _actions(endpoint) == ["retrain_failed"]
    assert _versions(endpoint) == [1] and _champion(endpoint) == 1
    assert deployment(endpoint)[1] == 0


def test_new_labels_count_the_feedback_since_the_last_retrain(endpoint, policy, tiny) -> None:
    rules = policy(gate="strict_gate.yaml", triggers={"alerts": [], "new_labels": 10})
    labels = np.random.default_rng(5).random(30) < 0.5

    def label(client: TestClient, first: int, count: int) -> None:
        items = [{"id": ids[i], "label": bool(labels[i])} for i in range(first, first + count)]
        assert client.post("/feedback", json=items).json()["accepted"] == count

    with TestClient(create_app(endpoint)) as client:
        ids = [p["id"] for p in _predict(client, _june(tiny, 30))["predictions"]]
        label(client, 0, 9)
        assert run_loop(endpoint, rules, as_of=JULY).message == "no trigger holds; nothing to do"
        label(client, 9, 1)
        first = run_loop(endpoint, rules, as_of=JULY).decisions
        assert [d.action for d in first] == ["retrain", "gate_failed"]
        assert first[0].evidence["triggers"] == ["10 new labels since the last retrain"]
        assert run_loop(endpoint, rules, as_of=JULY).decisions == []  # none since
        label(client, 10, 12)
        second = run_loop(endpoint, rules, as_of=JULY).decisions
    assert second[0].evidence["triggers"] == ["12 new labels since the last retrain"]
    assert _versions(endpoint) == [1, 2, 3]


def test_a_retrain_that_reproduces_the_champion_is_unchanged_and_not_rolled_out(
    endpoint, policy
) -> None:
    # on April 1st, three months back with one for validation are the champion's own dates
    rules = policy(retrain={"window": "3 months"})
    _drift_alert(endpoint)
    april = pd.Timestamp("2013-04-01", tz="UTC").timestamp()
    step = run_loop(endpoint, rules, as_of=april)
    assert [d.action for d in step.decisions] == ["retrain", "unchanged"]
    unchanged = step.decisions[1]
    assert unchanged.version == 2 and unchanged.evidence["champion"] == 1
    assert unchanged.evidence["max_difference"] <= 1e-9
    assert step.state == "idle" and "scores as the champion does" in step.message
    spec, _ = deployment(endpoint)
    assert (spec.shadow, spec.canary) == (None, None) and _champion(endpoint) == 1
    # a retrain on other months differs, and goes on to the gate
    later = run_loop(endpoint, policy(), as_of=JULY)
    assert [d.action for d in later.decisions] == ["retrain", "gate_passed", "shadow"]


def test_a_gated_recipe_is_refit_on_the_whole_window_and_the_refit_rolls_out(
    endpoint, policy
) -> None:
    _drift_alert(endpoint)
    step = run_loop(endpoint, policy(refit={"enabled": True}), as_of=JULY)
    assert [d.action for d in step.decisions] == ["retrain", "gate_passed", "refit", "shadow"]
    retrain, gate, refit, shadow = step.decisions
    assert gate.version == 2 and refit.version == shadow.version == 3
    assert refit.evidence["gated"] == 2 and refit.evidence["gated_run"] == retrain.evidence["run"]
    assert refit.evidence["gate"] == gate.evidence["checks"]
    # the gated run trained on May and validated on June; the refit trains on both
    assert refit.evidence["params"] == {**MAY_JUNE, "split_at": "2013-07-01"}
    assert get_reference("tiny@3").rows == (31 + 30) * 6
    described = loopml.models.get_version("tiny@3").description
    assert described.startswith("refit of version 2 (gated in run " + retrain.evidence["run"])
    assert loopml.models.get_version("tiny@challenger").version == 3
    assert deployment(endpoint)[0].shadow == "3"


def test_a_refit_that_fails_or_is_not_sane_leaves_the_gated_model_to_roll_out(
    endpoint, policy
) -> None:
    _drift_alert(endpoint)
    failing = policy(refit={"enabled": True, "params": {"fail": True}})
    step = run_loop(endpoint, failing, as_of=JULY)
    assert [d.action for d in step.decisions] == [
        "retrain",
        "gate_passed",
        "refit_failed",
        "shadow",
    ]
    assert "the training data is broken today" in step.decisions[2].message
    assert deployment(endpoint)[0].shadow == "2"
    deploy(endpoint, {"champion": "champion"})  # take the shadow out, try again
    constant = policy(refit={"enabled": True, "pipeline": "tiny_pipeline:constant"}, cooldown="0s")
    again = run_loop(endpoint, constant, as_of=JULY)
    actions = [d.action for d in again.decisions]
    assert actions == ["retrain", "gate_passed", "refit_refused", "shadow"], again.decisions
    refused = again.decisions[2]
    assert "gives every row the same score" in refused.message
    assert deployment(endpoint)[0].shadow == str(again.decisions[1].version)


def test_the_schedule_counts_from_the_first_step_when_the_champion_is_newer_than_the_clock(
    endpoint, policy
) -> None:
    rules = policy(gate="strict_gate.yaml", triggers={"alerts": [], "every": "30d"})
    first = run_loop(endpoint, rules, as_of=JULY)  # a replay of 2013: the champion is from now
    assert [d.action for d in first.decisions] == ["schedule_started"]
    assert first.message == "no trigger holds; nothing to do"
    assert run_loop(endpoint, rules, as_of=JULY + 29 * DAY).decisions == []
    due = run_loop(endpoint, rules, as_of=JULY + 30 * DAY).decisions
    assert due[0].action == "retrain"
    assert due[0].evidence["triggers"] == ["the champion is older than the schedule allows"]
    assert _actions(endpoint).count("schedule_started") == 1


def test_a_canary_ended_while_its_promotion_is_decided_is_not_promoted(
    endpoint, policy, monkeypatch
) -> None:
    """The canary's guardrails end it (on a server) between the step reading the deployment
    and moving the alias: the promotion sees the deployment changed and moves nothing."""
    import loopml.loop.controller as controller

    rules = policy(rollout={"shadow_requests": 0})
    _drift_alert(endpoint)
    assert run_loop(endpoint, rules, as_of=JULY).state == "canary"
    answered = controller._answered

    def meanwhile(name, role, version, since, workspace):
        seen = answered(name, role, version, since, workspace)
        if role == "champion":  # the promotion is being decided: a guardrail ends the canary
            end_canary(endpoint, "error rate 0.5 > 0.05 over 60 requests")
        return {**seen, "requests": 99} if role == "canary" else seen

    monkeypatch.setattr(controller, "_answered", meanwhile)
    step = run_loop(endpoint, rules, as_of=JULY + DAY)
    assert (step.state, [d.action for d in step.decisions]) == ("idle", ["promote_skipped"])
    assert step.decisions[0].message.startswith("the deployment changed while the canary of")
    assert _champion(endpoint) == 1
    spec, _ = deployment(endpoint)
    assert spec.canary is None
    assert "promote" not in [e.action for e in loopml.models.history(endpoint)][-2:]
