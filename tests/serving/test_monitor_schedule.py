"""A server that monitors its own traffic: windows recorded one after the other while it
serves, their values on /metrics as ``loopml_monitor_value``, alert rules judged on each;
and a monitor that fails does not stop the server from answering."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

import loopml.monitoring.window
from loopml.monitoring.reference import set_reference
from loopml.monitoring.timeseries import windows
from loopml.serving import create_app
from loopml.serving.deployments import alerts

RULES = "rules:\n  - name: busy\n    metric: requests\n    above: 0\n"


def _until(condition: Callable[[], bool], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.05)


def _records(rows: int, shift: float) -> list[dict]:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"a": rng.normal(shift, 1, rows), "b": rng.normal(size=rows)})
    return frame.to_dict("records")


def _psi_of_a(metrics: str) -> list[float]:
    line = 'loopml_monitor_value{bound="value",endpoint="churn",key="a",metric="psi"} '
    return [float(found.split()[-1]) for found in metrics.splitlines() if found.startswith(line)]


def test_the_server_monitors_its_traffic_every_period(churn: str) -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500)})
    set_reference(f"{churn}@1", reference)
    with TestClient(create_app(churn, monitor_every=1, rules=RULES)) as client:
        _until(lambda: len(windows(churn)) >= 1)  # the first window, before any traffic
        records = _records(120, shift=1.5)
        for start in range(0, 120, 40):
            assert client.post("/predict", json={"records": records[start : start + 40]}).is_success
        _until(lambda: sum(w.rows for w in windows(churn)) == 120)
        _until(lambda: bool(_psi_of_a(client.get("/metrics").text)))
        metrics = client.get("/metrics").text
    done = windows(churn)
    assert all(w.start == before.end for before, w in itertools.pairwise(done))
    assert {w.status for w in done} <= {"ok", "empty"} and "ok" in {w.status for w in done}
    assert _psi_of_a(metrics)[0] > 0.25
    assert 'loopml_monitor_windows_total{endpoint="churn",status="ok"}' in metrics
    assert {a.kind for a in alerts(churn)} == {"rule:busy"}


def test_a_failing_monitor_does_not_stop_the_server(churn: str, monkeypatch, caplog) -> None:
    calls = threading.Semaphore(0)

    def broken(*args, **kwargs):
        calls.release()
        raise RuntimeError("the monitor broke")

    monkeypatch.setattr(loopml.monitoring.window, "monitor", broken)
    app = create_app(churn, monitor_every=0.5)
    with caplog.at_level(logging.ERROR, logger="loopml.serving"), TestClient(app) as client:
        assert calls.acquire(timeout=15) and calls.acquire(timeout=15)  # and tried again
        answer = client.post("/predict", json={"a": 0.5, "b": 1.0})
        assert answer.status_code == 200
        assert client.get("/metrics").status_code == 200
    assert "the monitor broke" in caplog.text
    assert windows(churn) == []
