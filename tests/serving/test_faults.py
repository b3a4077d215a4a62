"""Faults on a real `loopml serve` process: killed with SIGKILL under load, it loses no
prediction it acknowledged."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from loopml.events import read_events, seal

ROW = {"a": 0.5, "b": 1.0}
CLIENTS = 4
REQUESTS = 150  # per client, at most: the load is bounded


def _start(home: Path, port: int) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "loopml"), "serve", "churn", "--port", str(port)]
    env = {**os.environ, "LOOPML_HOME": str(home)}
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        assert time.monotonic() < deadline and process.poll() is None, "the server did not start"
        try:
            httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2)
            return process
        except httpx.TransportError:
            time.sleep(0.1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_a_killed_server_loses_no_acknowledged_prediction(churn, sqlite_workspace) -> None:
    port = _free_port()
    process = _start(sqlite_workspace.home, port)
    acknowledged: list[str] = []
    lock, enough = threading.Lock(), threading.Event()

    def client() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            for _ in range(REQUESTS):
                try:
                    answer = http.post("/predict", json={"records": [ROW, ROW]})
                except httpx.TransportError:
                    return  # the server is gone
                if answer.status_code == 200:
                    with lock:
                        acknowledged.extend(p["id"] for p in answer.json()["predictions"])
                        if len(acknowledged) >= 200:
                            enough.set()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    try:
        for thread in threads:
            thread.start()
        assert enough.wait(60), "the load did not get going"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        for thread in threads:
            thread.join(30)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
    assert len(acknowledged) >= 200
    assert set(acknowledged) <= set(read_events("predictions")["id"])
    restarted = _start(sqlite_workspace.home, port)
    try:
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json=ROW, timeout=5)
        assert answer.status_code == 200
    finally:
        os.kill(restarted.pid, signal.SIGTERM)
        restarted.wait(30)
    seal("predictions")  # the dead server's segment, torn last line and all, seals too
    logged = read_events("predictions")
    assert set(acknowledged) <= set(logged["id"]) and logged["id"].is_unique
