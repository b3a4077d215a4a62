"""A seasonal regression replayed month by month through the served model, unattended:
requests to the server, their outcomes posted as feedback, each month monitored with an alert
rule on MAE, and the loop stepping after every part of a month. The alert fires once the
January-February model errs too much; the loop retrains, the gate judges the candidate's MAE
in MAE's direction, and the candidate goes from shadow to canary to champion, after which the
server's answers err less than the static model's would have."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

import loopml
from loopml.events import read_events
from loopml.loop import decisions, run_loop
from loopml.monitoring.window import monitor
from loopml.serving import create_app, deployment

HERE = Path(__file__).parent
RULES = "rules:\n  - name: mae_high\n    metric: mae\n    bound: low\n    above: 25\n"
GATE = """\
target: y
resamples: 200
checks:
  - {improvement: {metric: mae, at_least: 0}}
"""
POLICY = {
    "retrain": {
        "pipeline": "seasonal_pipeline:train",
        "params": {
            "train_from": "$window_start",
            "split_at": "$validation_start",
            "data_end": "$data_end",
        },
        "window": "2 months",
        "validation": "1 month",
        "reference": "train_rows",
        "target": "y",
    },
    "triggers": {"alerts": ["mae_high"]},
    "cooldown": "25d",
    "gate": "regression_gate.yaml",
    "rollout": {
        "shadow_requests": 4,
        "canary_fraction": 0.5,
        "canary_requests": 4,
        "guardrails": {"min_requests": 4, "max_latency_ratio": None, "max_prediction_psi": None},
    },
}
PARTS, REQUESTS, ROWS = 4, 6, 5  # each part of a month: 6 requests of 5 rows


@pytest.fixture
def seasonal(sqlite_workspace, monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(HERE))
    module = importlib.import_module("seasonal_pipeline")
    (tmp_path / "regression_gate.yaml").write_text(GATE)
    assert module.champion("demand") == 1
    return module


def _month_start(month: int) -> float:
    return pd.Timestamp(year=2013, month=month, day=1, tz="UTC").timestamp()


def _shadowed() -> int:
    logged = read_events("predictions")
    return 0 if "role" not in logged else int((logged["role"] == "shadow").sum())


def _until(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.02)


def _send(rows: pd.DataFrame, features: list[str], part: int) -> list[dict]:
    """One part of a month through a server that reads the deployment as it is now."""
    shadowing = deployment("demand")[0].shadow is not None
    before = _shadowed()
    answered = []
    with TestClient(create_app("demand")) as client:
        for index in range(REQUESTS):
            chunk = rows.iloc[index * ROWS : (index + 1) * ROWS]
            body = {"records": chunk[features].to_dict("records")}
            headers = {"X-Loopml-Key": f"caller-{part}-{index}"}
            answer = client.post("/predict", json=body, headers=headers)
            assert answer.status_code == 200, answer.text
            answered += answer.json()["predictions"]
        if shadowing:
            _until(lambda: _shadowed() >= before + REQUESTS * ROWS)
    return answered


def test_a_seasonal_regression_is_monitored_on_mae_and_the_loop_recovers(seasonal) -> None:
    frame = seasonal.rows(seed=1)
    static = loopml.models.load("demand@1")
    served_error, static_error, fired, since = {}, {}, {}, time.time()
    for month in (3, 4, 5, 6):
        rows = frame[frame["time"].dt.month == month].sample(
            PARTS * REQUESTS * ROWS, random_state=month
        )
        rows = rows.reset_index(drop=True)
        answered = []
        for part in range(PARTS):
            share = rows.iloc[part * REQUESTS * ROWS : (part + 1) * REQUESTS * ROWS]
            answered += _send(share, seasonal.FEATURES, part)
            run_loop("demand", POLICY, as_of=_month_start(month))
        with TestClient(create_app("demand")) as client:
            items = [
                {"id": a["id"], "label": float(y)} for a, y in zip(answered, rows["y"], strict=True)
            ]
            assert client.post("/feedback", json=items).json()["accepted"] == len(items)
        until = time.time()
        found = monitor("demand", since=since, until=until, label=f"2013-{month:02d}", rules=RULES)
        since = until
        fired[month] = [alert["rule"] for alert in found.fired]
        mae = next(p for p in found.check("performance").points if (p.metric, p.key) == ("mae", ""))
        assert mae.low < mae.value < mae.high
        assert found.value("r2") is not None and found.value("rmse") is not None
        run_loop("demand", POLICY, as_of=_month_start(month + 1))
        scores = np.array([a["score"] for a in answered])
        assert all("label" not in a for a in answered)
        served_error[month] = float(np.mean(np.abs(scores - rows["y"])))
        static_error[month] = float(
            np.mean(np.abs(static.predict(rows[seasonal.FEATURES]) - rows["y"]))
        )

    assert fired[3] == [] and fired[4] == ["mae_high"]  # the January model errs too much
    actions = [d.action for d in decisions("demand")]
    assert actions[:6] == ["retrain", "gate_passed", "refit", "shadow", "canary", "promote"]
    gate = next(d for d in decisions("demand") if d.action == "gate_passed")
    (check,) = gate.evidence["checks"]
    assert "mae improves by" in check["detail"] and "lower is better" in check["detail"]
    assert loopml.models.get_version("demand@champion").version > 1
    # June: answered by retrained versions only, which err far less than the static model
    assert served_error[6] < 0.7 * static_error[6], (served_error, static_error)
    assert served_error[3] == pytest.approx(static_error[3])  # before the loop acted
