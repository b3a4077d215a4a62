"""--wait on `loopml deploy`, `models promote`, `models alias` and `models rollback`: the
command returns once every named server serves the change, and fails on one line, saying what
a server serves, when one does not answer or does not follow in time.

A real `loopml serve` process follows the changes; servers that never follow are played by a
small HTTP server in the test that always answers the same GET /deployment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.serving import deployment

STARTUP_SECONDS = 60
GATE = """\
target: y
resamples: 50
checks:
  - {check: metric, metric: roc_auc, lower_bound_above: 0.6}
"""


@pytest.fixture
def churn(sqlite_workspace, tmp_path: Path) -> str:
    """churn@1 (champion) and churn@2, logistic regressions on a and b; the snapshot "valid"
    and gate.yaml, which both versions pass."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    frame["y"] = frame["a"] + frame["b"] + rng.normal(size=400) > 0
    for c in (1.0, 0.1):
        model = LogisticRegression(C=c).fit(frame[["a", "b"]], frame["y"])
        loopml.models.register("churn", model, card=False)
    loopml.models.set_alias("churn", "champion", 1)
    loopml.data.add("valid", frame)
    (tmp_path / "gate.yaml").write_text(GATE)
    return "churn"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_deployment(url: str) -> dict[str, Any] | None:
    """The server's GET /deployment, or None while it does not answer."""
    try:
        with urlopen(f"{url}/deployment", timeout=3) as response:
            return json.load(response)
    except OSError:
        return None


@pytest.fixture
def served(churn: str, tmp_path: Path) -> Iterator[str]:
    """`loopml serve churn` in a subprocess on a free port of 127.0.0.1; its base URL. The
    process is stopped by its PID afterwards."""
    port = free_port()
    url, log = f"http://127.0.0.1:{port}", tmp_path / "serve.log"
    command = [sys.executable, "-m", "loopml.cli.main", "serve", churn, "--port", str(port)]
    env = {**os.environ, "LOOPML_HOME": str(tmp_path / ".loopml")}
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while get_deployment(url) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"loopml serve did not start:\n{log.read_text()}", pytrace=False)
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def stale() -> Iterator[Callable[[dict[str, Any]], str]]:
    """Start a server that answers GET /deployment with this body, always; its base URL."""
    started: list[ThreadingHTTPServer] = []

    def start(body: dict[str, Any]) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = json.dumps(body).encode()
                self.send_response(200 if self.path == "/deployment" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def _still_at_revision_0(endpoint: str = "churn") -> dict[str, Any]:
    return {
        "endpoint": endpoint,
        "revision": 0,
        "deployment": {"champion": "champion"},
        "serving": {"champion": f"{endpoint}@1"},
    }


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_each_change_returns_once_the_server_serves_it(cli, served: str) -> None:
    deployed = cli("deploy", "churn", "--shadow", "2", "--wait", served)
    assert deployed.code == 0, deployed.err
    assert "churn (revision 1): champion champion" in deployed.out
    wanted = "revision 1: champion churn@1, shadow churn@2"
    assert (
        deployed.err.splitlines()[0] == f"Waiting up to 60s for {served} to serve churn {wanted}."
    )
    assert deployed.err.splitlines()[-1] == f"{served} serves {wanted}."
    assert get_deployment(served)["serving"] == {"champion": "churn@1", "shadow": "churn@2"}

    gate = ["--policy", "gate.yaml", "--data", "valid"]
    promoted = cli(
        "models", "promote", "churn", "2", *gate, "--wait", served, "--wait-timeout", "30"
    )
    assert promoted.code == 0, promoted.err
    assert (
        promoted.err.splitlines()[-1]
        == f"{served} serves revision 1: champion churn@2, shadow churn@2."
    )
    assert get_deployment(served)["serving"]["champion"] == "churn@2"

    rolled = cli("models", "rollback", "churn", "--json", "--wait", served)
    assert rolled.code == 0, rolled.err
    assert json.loads(rolled.out)["to_version"] == 1  # stdout stays JSON; progress is on stderr
    assert get_deployment(served)["serving"]["champion"] == "churn@1"

    moved = cli("models", "alias", "churn", "champion", "2", "--wait", f"{served},{served}/")
    assert moved.code == 0, moved.err
    assert get_deployment(served)["serving"]["champion"] == "churn@2"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_server_that_does_not_follow_is_named_with_what_it_serves(cli, served, stale) -> None:
    behind = stale(_still_at_revision_0())
    waited = cli(
        "deploy", "churn", "--shadow", "2", "--wait", f"{served},{behind}", "--wait-timeout", "6"
    )
    assert waited.code == 1
    error = waited.err.splitlines()[-1]
    assert error.startswith("Error: Waited 6s for churn revision 1: champion churn@1, shadow")
    assert f"but {behind} serves revision 0: champion churn@1." in error
    assert f"{served} serves" not in error  # the real server followed
    assert f"{served} serves revision 1: champion churn@1, shadow churn@2." in waited.err
    assert deployment("churn")[1] == 1  # the change is stored all the same


def test_the_timeout_passes_for_a_server_that_never_follows(cli, churn, stale) -> None:
    behind = stale(_still_at_revision_0())
    started = time.monotonic()
    waited = cli("deploy", "churn", "--shadow", "2", "--wait", behind, "--wait-timeout", "1")
    assert waited.code == 1 and time.monotonic() - started < 15
    lines = waited.err.splitlines()
    assert lines[1] == f"{behind} serves revision 0: champion churn@1; waiting."
    assert lines[-1] == (
        f"Error: Waited 1s for churn revision 1: champion churn@1, shadow churn@2, but {behind} "
        "serves revision 0: champion churn@1. A version that fails to load is not swapped in "
        "(see 'loopml alerts churn'), and a server of another workspace never follows this one."
    )


def test_a_port_nothing_listens_on_is_a_clear_error(cli, churn) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    rolled = cli("models", "alias", "churn", "champion", "2", "--wait", nobody)
    assert rolled.code == 1
    error = rolled.err.splitlines()[-1]
    assert error.startswith(f"Error: {nobody} does not answer GET /deployment (")
    assert error.endswith("): is 'loopml serve churn' running there?")
    assert loopml.models.get_version("churn@champion").version == 2  # the alias moved


def test_a_server_of_another_endpoint_is_refused_at_once(cli, churn, stale) -> None:
    other = stale(_still_at_revision_0("flights"))
    waited = cli("deploy", "churn", "--wait", other)
    assert waited.code == 1
    assert waited.err.splitlines()[-1] == (
        f"Error: {other} serves the endpoint 'flights', not 'churn': give --wait the URL of a "
        "server of churn."
    )


def test_an_answer_that_is_not_a_deployment_is_refused(cli, churn, stale) -> None:
    other = stale({"endpoint": "churn", "status": "ok"})
    waited = cli("deploy", "churn", "--wait", other)
    assert waited.code == 1
    assert waited.err.splitlines()[-1] == (
        f"Error: {other} answered GET /deployment with something other than a loopml "
        "server's deployment: give --wait the URL of 'loopml serve churn'."
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--wait", "127.0.0.1:8080"], "--wait takes a server's base URL"),
        (["--wait", "http://127.0.0.1:8080,ftp://host"], "not 'ftp://host'"),
        (["--wait", "http://127.0.0.1:8080", "--wait-timeout", "0"], "--wait-timeout is"),
    ],
)
def test_bad_wait_options_are_refused_before_anything_changes(
    cli, one_line_error, churn, args, fragment
) -> None:
    one_line_error(cli("deploy", "churn", "--shadow", "2", *args), 2, fragment)
    one_line_error(cli("models", "rollback", "churn", *args), 2, fragment)
    assert deployment("churn")[1] == 0
    assert loopml.models.get_version("churn@champion").version == 1
