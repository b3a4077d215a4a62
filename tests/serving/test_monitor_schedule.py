"""The loop's schedule, out of the web process: a scheduler monitors an endpoint's traffic
every period (windows one after the other, alert rules judged on each), the model server
shows the last window's values on /metrics as ``loopml_monitor_value``, a monitor that fails
stops neither, and however many schedulers run — threads or processes — each window is
monitored once, by the holder of the endpoint's lease, and a standby takes over when the
holder dies."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

import loopml.loop.schedule
from loopml.loop.schedule import Scheduler
from loopml.monitoring.timeseries import windows
from loopml.registry.reference import set_reference
from loopml.serving import create_app
from loopml.serving.deployments import alerts
from loopml.store import leases
from loopml.workspace import current_workspace

RULES = "rules:\n  - name: busy\n    metric: requests\n    above: 0\n"


def _until(condition: Callable[[], bool], seconds: float = 20) -> None:
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


@contextmanager
def scheduling(*schedulers: Scheduler) -> Iterator[None]:
    """Run the schedulers on threads of their own until the block ends."""
    stop = threading.Event()
    threads = [threading.Thread(target=s.run, args=(stop,), daemon=True) for s in schedulers]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)


def _contiguous(name: str) -> None:
    done = windows(name)
    assert all(w.start == before.end for before, w in itertools.pairwise(done)), done


def test_the_schedule_monitors_traffic_every_period_and_the_server_shows_it(churn: str) -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500)})
    set_reference(f"{churn}@1", reference)
    scheduler = Scheduler(churn, every=1, rules=RULES)
    with TestClient(create_app(churn)) as client, scheduling(scheduler):
        _until(lambda: len(windows(churn)) >= 1)  # the first window, before any traffic
        records = _records(120, shift=1.5)
        for start in range(0, 120, 40):
            assert client.post("/predict", json={"records": records[start : start + 40]}).is_success
        _until(lambda: sum(w.rows for w in windows(churn)) == 120)
        _until(lambda: bool(_psi_of_a(client.get("/metrics").text)))
        metrics = client.get("/metrics").text
    _contiguous(churn)
    done = windows(churn)
    assert {w.status for w in done} <= {"ok", "empty"} and "ok" in {w.status for w in done}
    assert _psi_of_a(metrics)[0] > 0.25
    assert 'loopml_monitor_window_end_seconds{endpoint="churn",status="ok"}' in metrics
    assert {a.kind for a in alerts(churn)} == {"rule:busy"}


def test_a_failing_monitor_stops_neither_the_schedule_nor_the_server(
    churn: str, monkeypatch, caplog
) -> None:
    calls = threading.Semaphore(0)

    def broken(*args, **kwargs):
        calls.release()
        raise RuntimeError("the monitor broke")

    monkeypatch.setattr(loopml.loop.schedule, "monitor", broken)
    scheduler = Scheduler(churn, every=0.5, lease_seconds=0.6)
    with (
        caplog.at_level(logging.ERROR, logger="loopml.loop"),
        TestClient(create_app(churn)) as client,
        scheduling(scheduler),
    ):
        assert calls.acquire(timeout=15) and calls.acquire(timeout=15)  # and tried again
        answer = client.post("/predict", json={"a": 0.5, "b": 1.0})
        assert answer.status_code == 200
        assert client.get("/metrics").status_code == 200
    assert "the monitor broke" in caplog.text
    assert windows(churn) == []


def test_many_schedulers_monitor_each_window_once(churn: str) -> None:
    """Four schedulers of one endpoint, each its own lease holder: the windows follow each
    other with no overlap and no gap; stopped, they release the lease, and schedulers
    started later carry on from the last window."""
    schedulers = [Scheduler(churn, every=0.3, lease_seconds=1.5) for _ in range(4)]
    with scheduling(*schedulers):
        _until(lambda: len(windows(churn)) >= 4)
    _contiguous(churn)
    with current_workspace().metadata.read() as connection:
        assert leases.holder(connection, f"loop:{churn}").expires_at == 0.0  # released
    first = len(windows(churn))
    with scheduling(*(Scheduler(churn, every=0.3) for _ in range(2))):
        _until(lambda: len(windows(churn)) >= first + 3)
    _contiguous(churn)


def test_a_standby_scheduler_process_takes_over_when_the_holder_is_killed(
    churn: str, tmp_path: Path
) -> None:
    """Two `loopml loop serve` processes: the holder is killed with SIGKILL (its lease is
    never released); the other takes over once the lease expires and carries on from the
    last window recorded."""
    env = {**os.environ, "LOOPML_HOME": str(tmp_path / ".loopml"), "LOOPML_LEASE_SECONDS": "2"}
    command = [sys.executable, "-m", "loopml.cli.main", "loop", "serve", churn, "--every", "1s"]
    started = []
    try:
        for index in range(2):
            with (tmp_path / f"schedule{index}.log").open("wb") as out:
                started.append(
                    subprocess.Popen(
                        command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
                    )
                )
        _until(lambda: len(windows(churn)) >= 2, seconds=60)
        with current_workspace().metadata.read() as connection:
            lease = leases.holder(connection, f"loop:{churn}")
        holder = next(p for p in started if lease.holder.split(":")[1] == str(p.pid))
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        killed_at = len(windows(churn))
        _until(lambda: len(windows(churn)) >= killed_at + 2, seconds=60)
        with current_workspace().metadata.read() as connection:
            taken = leases.holder(connection, f"loop:{churn}")
        assert taken.term == lease.term + 1 and taken.holder != lease.holder
    finally:
        for process in started:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
    _contiguous(churn)
    logs = [(tmp_path / f"schedule{index}.log").read_text() for index in range(2)]
    assert any("standing by" in text for text in logs), logs
