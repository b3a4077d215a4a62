"""Deployments on a running server: alias changes followed without a restart, a broken new
version refused while the old one keeps serving, shadow and canary, guardrails that roll a
canary back by themselves. What the store keeps (deployments, refusals, alerts) is tested on
each metadata store: SQLite, PostgreSQL and a loopml server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.errors import DeploymentError, ModelNotFoundError
from loopml.events import read_events
from loopml.serving import Deployment, deploy, deployment, read_deployment
from loopml.serving.deployments import Guardrails, alerts, end_canary, raise_alert
from loopml.serving.guard import metric_breach, score_psi

ROW = {"a": 0.5, "b": 1.0}
FAST = {"reload_seconds": 0.1, "check_seconds": 0.1}


class Broken:
    """A model that loads but fails on every request."""

    classes_ = np.array([False, True])

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        raise RuntimeError("this version is broken")


class Unloadable(LogisticRegression):
    """A model whose saved bytes cannot be loaded back."""

    def __setstate__(self, state: dict) -> None:
        raise RuntimeError("cannot unpickle this version")


class Flaky(LogisticRegression):
    """Fails while its flag file exists: an artifact or a resource missing for a moment."""

    flag = ""

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        if Path(self.flag).exists():
            raise RuntimeError("a resource is missing for a moment")
        return super().predict_proba(frame)


class Gated(LogisticRegression):
    """Answers only once the test opens its gate: a shadow slower than any request."""

    gate = threading.Event()

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        assert Gated.gate.wait(30)
        return super().predict_proba(frame)


class Inverted(LogisticRegression):
    """Scores the opposite way: its predictions drift far from the champion's."""

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return super().predict_proba(frame)[:, ::-1]


def _fit(model: LogisticRegression) -> LogisticRegression:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    return model.fit(x, x["a"] - x["b"] > 0)


def _register(model) -> int:
    return loopml.models.register("churn", model, card=False).version


def _until(condition: Callable[[], bool], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.05)


def _model_answering(client: httpx.Client) -> str:
    answer = client.post("/predict", json=ROW)
    assert answer.status_code == 200, answer.text
    return answer.json()["model"]


def test_alias_moves_reach_a_running_server(serve, churn) -> None:
    deploy(churn, FAST)
    second = _register(_fit(LogisticRegression(C=0.01)))
    with httpx.Client(base_url=serve(churn), timeout=10) as client:
        assert _model_answering(client) == "churn@1"
        loopml.models.set_alias(churn, "champion", second)
        _until(lambda: _model_answering(client) == f"churn@{second}")
        loopml.models.rollback(churn, "champion")
        _until(lambda: _model_answering(client) == "churn@1")


@pytest.mark.parametrize("broken", [Broken(), _fit(Unloadable())], ids=["fails", "unloadable"])
def test_a_broken_version_is_refused_and_no_request_fails(serve, churn, broken) -> None:
    deploy(churn, FAST)
    bad = _register(broken)
    answers: list[httpx.Response] = []
    with httpx.Client(base_url=serve(churn), timeout=10) as client:
        answers.append(client.post("/predict", json=ROW))
        loopml.models.set_alias(churn, "champion", bad)
        deadline = time.monotonic() + 20
        while not alerts(churn) and time.monotonic() < deadline:
            answers.append(client.post("/predict", json=ROW))
        answers += [client.post("/predict", json=ROW) for _ in range(20)]
    assert len(answers) > 21 and all(a.status_code == 200 for a in answers)
    assert {a.json()["model"] for a in answers} == {"churn@1"}
    (alert,) = alerts(churn)
    assert alert.kind == "load_failed" and alert.details["version"] == bad


def test_a_version_that_failed_to_load_is_tried_again_later(
    endpoint, tmp_path, monkeypatch
) -> None:
    from loopml.serving import live as live_module
    from loopml.serving.live import Live

    clock = [1000.0]
    monkeypatch.setattr(live_module, "now", lambda: clock[0])
    flag = tmp_path / "missing"
    flag.touch()
    flaky = _fit(Flaky())
    flaky.flag = str(flag)
    served = Live(endpoint, loopml.current_workspace())
    served.sample = pa.table({"a": [0.5], "b": [1.0]})
    second = _register(flaky)
    loopml.models.set_alias(endpoint, "champion", second)
    served.refresh()
    assert served.champion.record.version == 1  # refused: the old version serves on
    flag.unlink()  # the resource is back
    served.refresh()
    assert served.champion.record.version == 1  # not before its backoff
    clock[0] += 5.5
    served.refresh()
    assert served.champion.record.version == second  # tried again, and loaded
    assert [a.kind for a in alerts(endpoint)] == ["load_failed"]


def test_every_server_process_follows_a_refusal_from_the_store(
    endpoint, tmp_path, monkeypatch
) -> None:
    """Two server processes of one endpoint (two Live objects, as two uvicorn workers hold):
    the first swaps the new champion in; it fails for the second, whose refusal is stored;
    the first goes back to the version the second kept, and a third that starts then serves
    that one too. After the backoff, the version loads for all of them, and is cleared."""
    from loopml.serving import live as live_module
    from loopml.serving.live import Live

    clock = [1000.0]
    monkeypatch.setattr(live_module, "now", lambda: clock[0])
    flag = tmp_path / "missing"
    flaky = _fit(Flaky())
    flaky.flag = str(flag)
    first, second = (Live(endpoint, loopml.current_workspace()) for _ in range(2))
    for worker in (first, second):
        worker.sample = pa.table({"a": [0.5], "b": [1.0]})
    new = _register(flaky)
    loopml.models.set_alias(endpoint, "champion", new)
    first.refresh()
    assert first.champion.record.version == new  # loaded fine here
    flag.touch()  # ... and fails in the other process
    second.refresh()
    assert second.champion.record.version == 1
    first.refresh()
    assert first.champion.record.version == 1  # it follows the refusal
    third = Live(endpoint, loopml.current_workspace())
    assert third.champion.record.version == 1
    refusal = third.refused[new]
    assert (refusal.instead, refusal.failures, refusal.role) == (1, 1, "champion")
    flag.unlink()
    clock[0] += 5.5
    for worker in (first, second, third):
        worker.refresh()
    assert {w.champion.record.version for w in (first, second, third)} == {new}
    assert first.refused == {} and [a.kind for a in alerts(endpoint)] == ["load_failed"]


def test_retries_back_off_and_alert_once(endpoint, tmp_path, monkeypatch) -> None:
    from loopml.serving import live as live_module
    from loopml.serving.live import Live

    clock = [0.0]
    monkeypatch.setattr(live_module, "now", lambda: clock[0])
    served = Live(endpoint, loopml.current_workspace())
    served.sample = pa.table({"a": [0.5], "b": [1.0]})
    loopml.models.set_alias(endpoint, "champion", _register(Broken()))
    tried = []
    for step in range(40):
        clock[0] = step * 10.0
        before = served.refused[2].failures if 2 in served.refused else 0
        served.refresh()
        if served.refused[2].failures > before:
            tried.append(clock[0])
    assert tried[:4] == [0.0, 10.0, 20.0, 40.0]  # waits of 5, 10, 20 s, rounded up to a step
    assert [a.kind for a in alerts(endpoint)] == ["load_failed"]  # said once
    assert served.champion.record.version == 1


def test_the_shadow_gets_a_copy_and_never_holds_the_answer_back(serve, churn) -> None:
    shadow = _register(_fit(Gated()))
    deploy(churn, {**FAST, "shadow": str(shadow)})
    Gated.gate.clear()
    with httpx.Client(base_url=serve(churn), timeout=10) as client:
        answers = [client.post("/predict", json={"records": [ROW, ROW]}) for _ in range(3)]
        assert all(a.status_code == 200 and a.json()["model"] == "churn@1" for a in answers)
        assert "shadow" not in set(read_events("predictions")["role"])  # still waiting
        Gated.gate.set()
        _until(lambda: (read_events("predictions")["role"] == "shadow").sum() == 6)
    logged = read_events("predictions")
    shadows, champions = logged[logged["role"] == "shadow"], logged[logged["role"] == "champion"]
    assert set(shadows["shadow_of"]) == set(champions["id"])
    assert set(shadows["version"]) == {shadow} and set(shadows["status"]) == {"ok"}
    assert set(shadows["request_id"]) == {a.json()["id"] for a in answers}


def test_a_failing_shadow_is_logged_and_the_champion_answers(serve, churn) -> None:
    deploy(churn, {**FAST, "shadow": str(_register(Broken()))})
    with httpx.Client(base_url=serve(churn), timeout=10) as client:
        assert all(client.post("/predict", json=ROW).status_code == 200 for _ in range(5))
        _until(lambda: (read_events("predictions")["role"] == "shadow").sum() == 5)
    shadows = read_events("predictions").query("role == 'shadow'")
    assert set(shadows["status"]) == {"error"}


def test_a_canary_answers_its_share_and_sticks_to_a_key(serve, churn) -> None:
    canary = _register(_fit(LogisticRegression(C=0.5)))
    rails = {"min_requests": 10_000}
    deploy(
        churn, {**FAST, "canary": {"version": str(canary), "fraction": 0.3, "guardrails": rails}}
    )
    with httpx.Client(base_url=serve(churn), timeout=10) as client:
        models = [_model_answering(client) for _ in range(300)]
        for key in ("alice", "bob", "carol"):
            sticky = {
                client.post("/predict", json=ROW, headers={"X-Loopml-Key": key}).json()["model"]
                for _ in range(10)
            }
            assert len(sticky) == 1
    share = models.count(f"churn@{canary}") / len(models)
    assert 0.2 < share < 0.4  # 300 draws at 0.3: a standard deviation is 0.026
    assert set(read_events("predictions")["role"]) == {"champion", "canary"}


@pytest.mark.parametrize(
    "model, expected",
    [(Broken(), "error rate"), (_fit(Inverted()), "prediction drift")],
    ids=["errors", "drift"],
)
def test_a_canary_breaching_a_guardrail_is_rolled_back(serve, churn, model, expected) -> None:
    canary = _register(model)
    rails = {"min_requests": 20, "max_latency_ratio": None}
    deploy(
        churn, {**FAST, "canary": {"version": str(canary), "fraction": 0.5, "guardrails": rails}}
    )
    rng = np.random.default_rng(3)
    with httpx.Client(base_url=serve(churn), timeout=10) as client:
        answers = []
        deadline = time.monotonic() + 60  # the guardrail judges what was logged, in its own time
        while deployment(churn)[0].canary is not None and time.monotonic() < deadline:
            row = {"a": float(rng.normal()), "b": float(rng.normal())}
            answers.append(client.post("/predict", json=row))
        assert deployment(churn)[0].canary is None, f"no rollback after {len(answers)} requests"
        _until(lambda: client.get("/deployment").json()["serving"].keys() == {"champion"})
    assert all(a.status_code == 200 for a in answers)  # a failing canary never fails a caller
    spec, _ = deployment(churn)
    assert spec.canary is None and expected in spec.last_rollback["reason"]
    assert spec.last_rollback["version"] == str(canary)
    assert [a.kind for a in alerts(churn)] == ["canary_rolled_back"]
    assert loopml.models.history(churn)[-1].action == "canary-off"


def test_the_metric_guardrail_judges_the_interval_of_the_difference() -> None:
    rng = np.random.default_rng(0)
    label = rng.random(4000) < 0.4
    good = np.clip(label * 0.6 + rng.normal(0.2, 0.2, 4000), 0, 1)
    noise = rng.random(4000)
    rails = Guardrails(min_labels=500)

    def frame(canary: np.ndarray) -> pd.DataFrame:
        half = len(label) // 2
        return pd.DataFrame(
            {
                "role": ["champion"] * half + ["canary"] * half,
                "score": np.r_[good[:half], canary[half:]],
                "label": label,
            }
        )

    assert "roc_auc is worse" in metric_breach(rails, frame(noise), "classification")
    assert metric_breach(rails, frame(good), "classification") is None
    few = frame(noise).iloc[::10]
    assert metric_breach(rails, few, "classification") is None  # under min_labels: no verdict


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_another() -> None:
    rng = np.random.default_rng(0)
    reference = rng.beta(2, 5, 20_000)
    assert score_psi(reference, rng.beta(2, 5, 20_000)) < 0.01
    assert score_psi(reference, rng.beta(5, 2, 20_000)) > 1


def test_deployment_files_are_checked_with_their_line(endpoint, tmp_path) -> None:
    path = tmp_path / "deployment.yaml"
    path.write_text("champion: champion\ncanary:\n  version: challenger\n  fraction: 1.5\n")
    with pytest.raises(DeploymentError, match=r"canary.fraction \(line 4\)"):
        read_deployment(path)
    path.write_text("champion: champion\nshadow: 7\n")
    with pytest.raises(DeploymentError, match="shadow 'churn@7'"):
        deploy(endpoint, path)
    path.write_text("champion: champion\nshadow: 1\n")
    assert deploy(endpoint, path) == 1 and deployment(endpoint) == (read_deployment(path), 1)


def test_a_deployment_changes_only_from_the_revision_it_expects(endpoint) -> None:
    second = _register(_fit(LogisticRegression(C=0.01)))
    assert deployment(endpoint) == (Deployment(), 0)  # never set: the champion alone
    assert deploy(endpoint, {"shadow": str(second)}, expected=0) == 1
    assert deploy(endpoint, {"champion": str(second)}, expected=0) is None  # moved on since
    spec, revision = deployment(endpoint)
    assert (spec.champion, spec.shadow, revision) == ("champion", str(second), 1)
    before = time.time()
    canary = {"version": str(second), "fraction": 0.1}
    assert deploy(endpoint, {"canary": canary}, reason="try it") == 2
    assert deployment(endpoint)[0].canary.started_at >= before - 1  # it starts now
    events = [(e.action, e.reason) for e in loopml.models.history(endpoint)[-2:]]
    assert events == [("deploy", f"champion champion, shadow {second}"), ("deploy", "try it")]


def test_a_deployment_that_names_no_version_changes_nothing(endpoint) -> None:
    with pytest.raises(DeploymentError, match="canary 'churn@challenger' names no version"):
        deploy(endpoint, {"canary": {"version": "challenger", "fraction": 0.1}})
    with pytest.raises(ModelNotFoundError, match="No model is registered as 'nobody'"):
        deploy("nobody", {})
    with pytest.raises(ModelNotFoundError, match="nobody"):
        deployment("nobody")
    assert deployment(endpoint) == (Deployment(), 0)


def test_ending_a_canary_records_why_in_the_history_and_an_alert(endpoint) -> None:
    second = _register(_fit(LogisticRegression(C=0.01)))
    deploy(endpoint, {"canary": {"version": str(second), "fraction": 0.2}})
    assert end_canary(endpoint, "too slow", expected=0) is None  # not the stored revision
    assert end_canary(endpoint, "too slow", expected=1) == 2
    spec, revision = deployment(endpoint)
    assert (spec.canary, revision) == (None, 2)
    assert spec.last_rollback["reason"] == "too slow"
    assert end_canary(endpoint, "again") is None  # no canary left to end
    (alert,) = alerts(endpoint)
    assert alert.kind == "canary_rolled_back" and alert.details["version"] == str(second)
    assert alert.message == f"Canary {second} rolled back: too slow"
    assert loopml.models.history(endpoint)[-1].action == "canary-off"


def test_alerts_are_kept_per_endpoint_with_their_details(endpoint) -> None:
    first = raise_alert(endpoint, "rule:drift", "psi breached", {"psi": 0.4, "features": ["a"]})
    raise_alert("other", "load_failed", "other@2 failed to load")
    second = raise_alert(endpoint, "load_failed", "churn@2 failed to load")
    assert alerts(endpoint) == [first, second] == alerts(endpoint, open_only=True)
    assert first.details == {"psi": 0.4, "features": ["a"]} and first.resolved_at is None
    assert [a.endpoint for a in alerts("other")] == ["other"]


class HalfBroken(LogisticRegression):
    """Fails on every row with a positive ``a``: a champion that passes a smoke test on
    some rows and then fails on much of the traffic."""

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        if (frame["a"] > 0).any():
            raise RuntimeError("this version fails on positive a")
        return super().predict_proba(frame)


@pytest.mark.parametrize(
    ("slos", "limit"), [({"max_error_rate": 0.1}, "0.1"), ({}, "0.05")], ids=["slo", "default"]
)
def test_a_new_champion_breaking_its_error_slo_is_rolled_back(serve, churn, slos, limit) -> None:
    """With the deployment's max_error_rate, or without one the default of 5%."""
    deploy(churn, {**FAST, "slos": slos})
    second = _register(_fit(HalfBroken()))
    with httpx.Client(base_url=serve(churn), timeout=10) as client:

        def answering() -> str:  # with a row both versions answer
            return client.post("/predict", json={"a": -1.0, "b": 0.0}).json()["model"]

        answering()  # the last rows, which the smoke test of a new version uses
        loopml.models.set_alias(churn, "champion", second)
        _until(lambda: answering() == f"churn@{second}")
        for number in range(40):
            client.post("/predict", json={"a": 1.0 if number % 2 else -1.0, "b": 0.0})
            if loopml.models.get_version(f"{churn}@champion").version == 1:
                break
        _until(lambda: answering() == "churn@1")
    last = loopml.models.history(churn)[-1]
    assert (last.action, last.from_version, last.to_version) == ("rollback", second, 1)
    assert f"max_error_rate {limit}" in last.reason
    raised = [a for a in alerts(churn) if a.kind == "champion_rolled_back"]
    assert len(raised) == 1 and raised[0].details["version"] == second


def test_a_rollback_that_expects_another_version_changes_nothing(churn) -> None:
    second = _register(_fit(LogisticRegression(C=0.01)))
    loopml.models.set_alias(churn, "champion", second)
    assert loopml.models.rollback(churn, "champion", expected=1) is None
    assert loopml.models.get_version(f"{churn}@champion").version == second
    assert loopml.models.rollback(churn, "champion", expected=second).to_version == 1
