"""A monitor run end to end: a model registered with its reference, served, sent shifted
traffic and labels; one window of that traffic checked for data and prediction drift, data
quality, performance, latency, errors, cost and SLOs, stored, and read back as time series.

Traffic goes through the real app (fastapi's TestClient), so the log is what a server writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

import loopml
import loopml.serving.feedback
from loopml.errors import InvalidValueError
from loopml.events import read_events, traffic, writer
from loopml.monitoring import checks
from loopml.monitoring.timeseries import series, window_report, windows
from loopml.monitoring.window import monitor
from loopml.serving import create_app, deploy
from loopml.workspace import use_workspace

PRICE = 3.0  # the workspace's cpu_hour_price
LABEL_DELAY = 120.0


class Fragile(Pipeline):
    """Fails to score any row whose a is above 100: a model error the server answers with 500."""

    def predict_proba(self, X):
        if (X["a"] > 100).any():
            raise RuntimeError("a is far out of range")
        return super().predict_proba(X)


def _frame(rng: np.random.Generator, rows: int, shift: float = 0.0, categories="xyz"):
    return pd.DataFrame(
        {
            "a": rng.normal(shift, 1, rows),
            "b": rng.normal(size=rows),
            "c": rng.choice(list(categories), rows),
        }
    )


def _register(name: str = "churn", reference: bool = True) -> None:
    rng = np.random.default_rng(0)
    x = _frame(rng, 2000)
    y = x["a"] + x["b"] + rng.normal(scale=0.5, size=2000) > 0
    encode = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["c"]), remainder="passthrough"
    )
    model = Fragile([("encode", encode), ("model", LogisticRegression())]).fit(x, y)
    data = x.assign(y=y) if reference else None
    version = loopml.models.register(name, model, reference=data, target="y", card=False)
    loopml.models.set_alias(name, "champion", version.version)


def _post(client: TestClient, frame: pd.DataFrame, per_request: int = 50) -> list[str]:
    ids = []
    for start in range(0, len(frame), per_request):
        records = frame.iloc[start : start + per_request].to_dict("records")
        answer = client.post("/predict", json={"records": records})
        assert answer.status_code == 200, answer.text
        ids += [p["id"] for p in answer.json()["predictions"]]
    return ids


@dataclass
class Sent:
    """What a test sent: the window it fits in, and the traffic."""

    start: float
    end: float
    rows: int
    requests: int
    errors: int
    labelled: int


SLOS = {"max_p99_latency_ms": 60_000, "max_error_rate": 0.01, "min_throughput_rps": 1e6}


@pytest.fixture
def priced(new_workspace):
    """A SQLite workspace with a CPU hour priced at PRICE, current for the test."""
    ws = new_workspace(cpu_hour_price=PRICE)
    with use_workspace(ws):
        yield ws


@pytest.fixture
def shifted(priced, monkeypatch) -> Sent:
    """churn (with SLOS) served 400 rows in 8 requests, whose a moved by one standard
    deviation and whose c has a category never seen, then one rejected and one failed
    request; the first 200 predictions labelled LABEL_DELAY seconds after they were made."""
    _register()
    deploy("churn", {"champion": "champion", "slos": SLOS})
    sent = _frame(np.random.default_rng(1), 400, shift=1.0, categories="xyzw")
    start = time.time()
    with TestClient(create_app("churn")) as client:
        ids = _post(client, sent)
        assert client.post("/predict", json={"a": 1.0, "b": 2.0}).status_code == 422
        assert client.post("/predict", json={"a": 1e3, "b": 0.0, "c": "x"}).status_code == 500
        labels = (sent["a"] + sent["b"] > 0).tolist()
        feedback = [{"id": i, "label": y} for i, y in zip(ids[:200], labels[:200], strict=True)]
        with monkeypatch.context() as patch:
            later = SimpleNamespace(time=lambda: time.time() + LABEL_DELAY)
            patch.setattr(loopml.serving.feedback, "time", later)
            assert client.post("/feedback", json=feedback).json()["accepted"] == 200
    end = time.time() + 2 * LABEL_DELAY
    return Sent(start, end, rows=400, requests=10, errors=1, labelled=200)


def _monitor(sent: Sent, **options):
    return monitor("churn", since=sent.start, until=sent.end, **options)


def test_drift_is_found_in_the_shifted_feature_and_the_scores(shifted: Sent) -> None:
    found = _monitor(shifted, exact=True)
    assert found.status == "ok" and found.window.rows == shifted.rows
    drift = found.check("data_drift")
    assert drift.status == "ok" and "a" in drift.details["drifted"]
    assert found.value("drifted", "a") == 1.0 and found.value("drifted", "b") == 0.0
    assert found.value("psi", "a") > 0.25 > found.value("psi", "b")
    assert found.value("drift_p", "a") < 0.05 < found.value("drift_p", "b")
    top = drift.details["top_features"]
    assert set(top[:2]) == {"a", "b"} and top[2] == "c"  # y depends on a and b, not c
    exact = drift.details["exact"]
    assert (exact["a"]["test"], exact["c"]["test"]) == ("ks", "chi-square")
    assert found.value("exact_p", "a") < 0.05 < found.value("exact_p", "b")
    scores = found.check("prediction_drift")
    assert scores.details["versions"]["1"]["drifted"] is True
    assert found.value("prediction_p", "1") < 0.05 and found.value("prediction_psi", "1") > 0.1
    assert "scores of version 1 moved" in scores.message


def test_quality_reports_new_categories_and_rejected_requests(shifted: Sent) -> None:
    found = _monitor(shifted)
    quality = found.check("quality")
    new = quality.details["new_categories"]
    assert list(new) == ["c"] and new["c"]["values"] == ["w"]
    assert found.value("new_category_share", "c") == pytest.approx(new["c"]["share"])
    assert 0.15 < new["c"]["share"] < 0.35  # one in four categories sent is new
    assert found.value("rejected_requests") == 1
    assert found.value("violation_rate") == pytest.approx(1 / shifted.requests)
    assert found.value("violations", "missing_column") == 1
    assert "new categories in c" in quality.message


def test_performance_has_an_interval_label_coverage_and_delay(shifted: Sent) -> None:
    found = _monitor(shifted)
    performance = found.check("performance")
    assert performance.status == "ok" and performance.details["metric"] == "roc_auc"
    auc = next(p for p in found.window.points if p.metric == "roc_auc" and p.key == "")
    assert 0.5 < auc.low < auc.value < auc.high <= 1.0
    assert found.value("roc_auc", "v1") == pytest.approx(auc.value)
    assert found.value("labelled_rows") == shifted.labelled
    assert found.value("label_coverage") == pytest.approx(shifted.labelled / shifted.rows)
    assert LABEL_DELAY <= found.value("label_delay_p50") < LABEL_DELAY + 30
    assert found.value("label_delay_p90") >= found.value("label_delay_p50")


def test_operations_measure_requests_latency_errors_and_cost(shifted: Sent) -> None:
    found = _monitor(shifted)
    assert found.value("requests") == shifted.requests
    assert found.value("predictions") == shifted.rows
    assert found.value("error_rate") == pytest.approx(shifted.errors / shifted.requests)
    p50, p95, p99 = (found.value(f"latency_p{q}_ms") for q in (50, 95, 99))
    assert 0 < p50 <= p95 <= p99
    logged = read_events("predictions")
    answered = logged[logged["status"] == "ok"]
    cpu_hours = answered["cpu_ms"].sum() / 3.6e6
    assert found.value("cpu_seconds") == pytest.approx(logged["cpu_ms"].sum() / 1000)
    assert found.value("cost_per_1k") > 0
    assert found.value("cost_per_1k") == pytest.approx(cpu_hours * PRICE / shifted.rows * 1000)


def test_slos_are_judged_on_each_window(shifted: Sent) -> None:
    found = _monitor(shifted)
    operations = found.check("operations")
    assert operations.details["slo_met"] == {
        "max_p99_latency_ms": True,
        "max_error_rate": False,  # 1 request in 10 failed
        "min_throughput_rps": False,
    }
    assert found.value("slo_met", "max_error_rate") == 0.0
    assert found.value("slo_met", "max_p99_latency_ms") == 1.0
    assert "SLOs broken: max_error_rate, min_throughput_rps" in operations.message


def test_values_are_stored_as_series_and_the_report_with_the_window(shifted: Sent) -> None:
    found = _monitor(shifted, label="after-release")
    stored = windows("churn")
    assert [w.id for w in stored] == [found.window.id]
    assert stored[0].versions == [1] and stored[0].rows == shifted.rows
    assert (stored[0].start, stored[0].end) == (shifted.start, shifted.end)
    psi = series("churn", ["psi"])
    assert set(psi["key"]) == {"a", "b", "c"} and set(psi["label"]) == {"after-release"}
    assert psi.set_index("key").loc["a", "value"] == found.value("psi", "a")
    auc = series("churn", ["roc_auc"]).set_index("key").loc[""]
    assert auc["low"] < auc["value"] < auc["high"]
    report = window_report(stored[0])
    assert [c["name"] for c in report["checks"]] == [c.name for c in found.checks]


def test_the_next_monitor_starts_where_the_last_window_ended(shifted: Sent) -> None:
    first = _monitor(shifted)
    second = monitor("churn", until=shifted.end + 600)
    assert second.window.start == first.window.end == shifted.end
    assert second.status == "empty" and second.window.rows == 0
    assert [w.status for w in windows("churn")] == ["ok", "empty"]
    with pytest.raises(InvalidValueError, match="not before its end"):
        monitor("churn", until=shifted.end + 300)


def test_a_window_without_traffic_is_stored_as_empty(shifted: Sent) -> None:
    found = monitor("churn", since=shifted.end + 10, until=shifted.end + 70)
    assert found.status == "empty" and found.window.message == "no traffic in the window"
    assert found.value("requests") == 0 and found.value("psi", "a") is None
    assert windows("churn")[-1].status == "empty"


def test_an_endpoint_that_never_had_traffic_gives_an_empty_window(priced) -> None:
    _register()
    found = monitor("churn", window="1h")
    assert found.status == "empty", found.window.message
    assert {c.status for c in found.checks} <= {"ok", "skipped"}


def test_a_failing_check_fails_the_window_and_the_others_still_run(shifted, monkeypatch) -> None:
    def broken(*args):
        raise RuntimeError("the correlation check broke")

    monkeypatch.setattr(checks, "correlation", broken)
    found = _monitor(shifted)
    assert found.status == "failed"
    assert found.window.message == "correlation failed: RuntimeError: the correlation check broke"
    assert found.check("correlation").status == "failed"
    others = {c.name: c.status for c in found.checks if c.name != "correlation"}
    assert others.pop("estimated_performance") == "skipped"  # no earlier labelled answers
    assert others.pop("rolling_drift") == "skipped"  # no earlier window to compare with
    assert list(others.values()) == ["ok"] * 5
    stored = windows("churn")[-1]
    assert stored.status == "failed" and "the correlation check broke" in stored.message
    assert series("churn", ["psi"])["value"].notna().all()


def test_a_version_without_reference_skips_data_drift_only(priced) -> None:
    _register(reference=False)
    start = time.time()
    with TestClient(create_app("churn")) as client:
        _post(client, _frame(np.random.default_rng(2), 100, shift=1.0))
    found = monitor("churn", since=start)
    assert found.status == "ok"
    statuses = {c.name: c.status for c in found.checks}
    assert statuses["data_drift"] == "skipped"
    assert found.check("data_drift").message == "the version has no reference data"
    assert statuses["operations"] == "ok" and statuses["quality"] == "ok"
    assert statuses["prediction_drift"] == "ok" and found.value("score_mean", "1") is not None
    assert found.value("prediction_psi", "1") is None and found.value("requests") == 2


def test_a_window_of_a_few_rows_is_not_judged_for_drift(priced) -> None:
    _register()
    start = time.time()
    with TestClient(create_app("churn")) as client:
        _post(client, _frame(np.random.default_rng(3), 2, shift=5.0))  # far off, but 2 rows
    rules = "rules:\n  - name: drift\n    metric: psi\n    above: 0.25\n"
    found = monitor("churn", since=start, rules=rules)
    assert found.check("data_drift").status == "skipped"
    assert "only 2 answered rows" in found.check("data_drift").message
    assert found.value("prediction_psi", "1") is None and found.fired == []
    judged = monitor("churn", since=start, until=time.time() + 1, rules=rules, min_rows=2)
    assert judged.check("data_drift").status == "ok" and judged.fired[0]["rule"] == "drift"
    with pytest.raises(InvalidValueError, match="min_rows"):
        monitor("churn", since=start, min_rows=0)


def test_sealed_and_unsealed_events_are_both_counted(priced) -> None:
    _register()
    start = time.time()
    with TestClient(create_app("churn")) as client:
        rng = np.random.default_rng(3)
        _post(client, _frame(rng, 120), per_request=40)
        writer(priced, "predictions").close()  # a closed segment, sealed by the monitor
        _post(client, _frame(rng, 30), per_request=10)
        found = monitor("churn", since=start)
    sealed = list((priced.home / "events" / "predictions").rglob("*.parquet"))
    assert sealed, "the monitor sealed the closed segment"
    assert found.window.rows == 150 and found.value("requests") == 6
    assert found.value("predictions") == 150


def test_the_traffic_is_read_in_batches_with_the_same_result(priced, monkeypatch) -> None:
    _register()
    start = time.time()
    with TestClient(create_app("churn")) as client:
        _post(client, _frame(np.random.default_rng(4), 300, shift=0.5), per_request=100)
    whole = monitor("churn", since=start, until=time.time() + 1)
    batches = []
    original = traffic.Traffic.batches

    def counted(self, query):
        for batch in original(self, query):
            batches.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(traffic, "BATCH_ROWS", 64)
    monkeypatch.setattr(traffic.Traffic, "batches", counted)
    pieces = monitor("churn", since=whole.window.start, until=whole.window.end)
    assert len(batches) >= 5 and max(batches) <= 64 and sum(batches) == 300
    assert pieces.window.rows == whole.window.rows == 300
    for metric in ("psi", "drift_p", "new_category_share", "null_rate"):
        for key in ("a", "b", "c"):
            assert pieces.value(metric, key) == pytest.approx(whole.value(metric, key)), metric
    for metric in ("score_mean", "prediction_psi", "prediction_p"):
        assert pieces.value(metric, "1") == pytest.approx(whole.value(metric, "1"))
    assert pieces.value("max_correlation_change") == pytest.approx(
        whole.value("max_correlation_change")
    )


def test_the_packages_names_are_the_functions_whatever_was_imported_first() -> None:
    import loopml.monitoring
    import loopml.monitoring.drift
    import loopml.monitoring.timeseries
    import loopml.monitoring.window

    assert loopml.monitoring.monitor is monitor
    assert loopml.monitoring.series is series
    assert callable(loopml.monitoring.drift)


def test_a_model_error_answers_an_id_not_the_exception(priced) -> None:
    _register()
    with TestClient(create_app("churn")) as client:
        answer = client.post("/predict", json={"a": 1e3, "b": 0.0, "c": "x"})
    assert answer.status_code == 500
    told = answer.json()
    assert "far out of range" not in answer.text and "RuntimeError" not in answer.text
    assert told["id"] == answer.headers["X-Request-Id"] and told["id"] in told["error"]
    logged = read_events("predictions").set_index("id").loc[told["id"]]
    assert logged["status"] == "error" and "a is far out of range" in str(logged["problems"])


def test_a_champion_that_fails_every_request_is_not_ready(priced) -> None:
    _register()
    bad, good = {"a": 1e3, "b": 0.0, "c": "x"}, {"a": 1.0, "b": 0.0, "c": "x"}
    with TestClient(create_app("churn")) as client:
        assert client.get("/v2/health/ready").status_code == 200  # no answer yet
        for _ in range(4):
            client.post("/predict", json=bad)
        assert client.get("/v2/health/ready").status_code == 200  # too few to say
        client.post("/predict", json=bad)
        unready = client.get("/v2/health/ready")
        assert unready.status_code == 503
        assert unready.json() == {"ready": False, "reason": "version 1 failed its last 5 requests"}
        assert client.post("/predict", json=good).status_code == 200
        assert client.get("/v2/health/ready").json() == {"ready": True}
        for _ in range(5):
            client.post("/predict", json=bad)
        # it still answers the rows it answered well: the probe says ready, so a server no
        # caller reaches any more does not stay unready for ever
        assert client.get("/v2/health/ready").json() == {"ready": True}
