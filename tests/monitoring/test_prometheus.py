"""A real Prometheus and Alertmanager around a real `loopml serve --monitor-every`.

Prometheus scrapes the server's ``loopml_monitor_value`` gauges and evaluates the rule file
that ``loopml alerts --prometheus`` prints; Alertmanager routes every alert to a webhook
receiver in this process. loopml's own AlertmanagerNotifier posts to the same Alertmanager.

They need Debian's ``prometheus`` and ``prometheus-alertmanager`` and are skipped without
them, unless LOOPML_TEST_PROMETHEUS_REQUIRED=1 (set by .ci/run), which turns the skip into a
failure. Every process listens on 127.0.0.1, on a free port, with its own configuration and
storage in the test's folder, and is stopped by its PID afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.monitoring.notifiers import Alert, AlertmanagerNotifier

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

REQUIRED = os.environ.get("LOOPML_TEST_PROMETHEUS_REQUIRED") == "1"
STARTUP = 30.0  # seconds a program may take to answer
SCENARIO = 60.0  # seconds everything a test waits for may take, all told
EVERY = "2s"
NAME = "trips"
FEATURE = "delay-min"  # PromQL has to escape re.escape's backslash in the key's regex
RULE = "feature_drift"


def binary(*names: str) -> str | None:
    return next(filter(None, map(shutil.which, names)), None)


@pytest.fixture(scope="module")
def binaries() -> dict[str, str]:
    """The Prometheus and Alertmanager programs, or a skip (a failure when required)."""
    found = {
        "prometheus": binary("prometheus"),
        "alertmanager": binary("prometheus-alertmanager", "alertmanager"),
    }
    missing = [name for name, path in found.items() if path is None]
    if missing:
        reason = (
            f"{' and '.join(missing)} not found on PATH; install them with "
            "'apt-get install prometheus prometheus-alertmanager'"
        )
        if REQUIRED:
            pytest.fail(f"{reason} (LOOPML_TEST_PROMETHEUS_REQUIRED=1)")
        pytest.skip(reason)
    return found


# Processes, ports, waiting


@dataclass
class Process:
    """A program this test started, where it answers and where its output goes."""

    popen: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://")

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.log.name} (exit {self.popen.poll()}) ---\n" + "\n".join(text)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, **params: str) -> httpx.Response | None:
    """What a GET answers 200, or None while the server does not."""
    try:
        answer = httpx.get(url, params=params, timeout=3)
    except httpx.HTTPError:
        return None
    return answer if answer.status_code == 200 else None


def get_json(url: str, **params: str) -> Any:
    answer = get(url, **params)
    return answer.json() if answer else None


class Patience:
    """Waits for things to happen, all of them before one deadline, while the watched
    processes run; fails with their logs when one exits or time runs out."""

    def __init__(self, seconds: float, *watched: Process) -> None:
        self.seconds, self.watched = seconds, watched
        self.deadline = time.monotonic() + seconds

    def until(self, check: Callable[[], Any], what: str) -> Any:
        """Poll check until it returns something true, and return that."""
        while not (found := check()):
            dead = [process for process in self.watched if process.popen.poll() is not None]
            if dead or time.monotonic() > self.deadline:
                why = "a process it needs exited" if dead else f"not within {self.seconds:.0f} s"
                logs = "\n".join(process.tail() for process in self.watched)
                pytest.fail(f"Waited for {what}: {why}.\n{logs}", pytrace=False)
            time.sleep(0.25)
        return found


def stop(popen: subprocess.Popen[bytes]) -> None:
    """Terminate a process this test started, by its PID; kill it if it lingers."""
    if popen.poll() is None:
        popen.terminate()
        try:
            popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            popen.kill()
    popen.wait(timeout=10)


@contextmanager
def running(
    command: list[str], url: str, ready: str, log: Path, **options: Any
) -> Iterator[Process]:
    """Start command, wait until GET url+ready answers 200, stop it on the way out."""
    with log.open("wb") as out:
        popen = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, **options
        )
    process = Process(popen, url, log)
    try:
        Patience(STARTUP, process).until(lambda: get(url + ready), f"{url}{ready} to answer")
        yield process
    finally:
        stop(popen)


# The webhook receiver and Alertmanager, shared by the tests of this module


class Receiver:
    """Records the JSON bodies POSTed to it: Alertmanager's webhook notifications."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", 0))
                receiver.bodies.append(json.loads(self.rfile.read(size)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_port}/hook"

    def alerts(
        self, alertname: str, status: str, sent_by: Callable[[dict[str, Any]], bool] | None = None
    ) -> list[dict[str, Any]]:
        """The notified alerts of that name in that status (that sent_by accepts, if given)."""
        return [
            alert
            for body in list(self.bodies)
            for alert in body["alerts"]
            if alert["labels"].get("alertname") == alertname
            and alert["status"] == status
            and (sent_by is None or sent_by(alert))
        ]


def by_loopml(alert: dict[str, Any]) -> bool:
    """Whether loopml's AlertmanagerNotifier sent the alert (Prometheus sends no id)."""
    return "loopml_alert_id" in alert["annotations"]


@pytest.fixture(scope="module")
def webhook() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.http.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.http.shutdown()
    receiver.http.server_close()
    thread.join(10)


@pytest.fixture(scope="module")
def alertmanager(
    binaries: dict[str, str], webhook: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    """Alertmanager routing every alert, one notification each, to the webhook at once."""
    folder = tmp_path_factory.mktemp("alertmanager")
    config = {
        "route": {
            "receiver": "hook",
            "group_by": ["..."],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {"name": "hook", "webhook_configs": [{"url": webhook.url, "send_resolved": True}]}
        ],
    }
    (folder / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    command = [
        binaries["alertmanager"],
        f"--config.file={folder / 'alertmanager.yml'}",
        f"--storage.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with running(command, f"http://127.0.0.1:{port}", "/-/ready", folder / "log") as process:
        yield process


def alertmanager_alerts(alertmanager: Process, alertname: str) -> list[dict[str, Any]] | None:
    """The alerts of that name Alertmanager holds as not yet resolved (None: no answer)."""
    return get_json(f"{alertmanager.url}/api/v2/alerts", filter=f'alertname="{alertname}"')


def loopml_held(alertmanager: Process) -> list[dict[str, Any]]:
    """The alerts loopml's notifier raised in Alertmanager for the rule, as it holds them."""
    held = alertmanager_alerts(alertmanager, RULE) or []
    return [alert for alert in held if by_loopml(alert) and alert["labels"]["endpoint"] == NAME]


# The served model and its traffic


def features(rng: np.random.Generator, rows: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({FEATURE: rng.normal(shift, 1.0, rows), "b": rng.normal(size=rows)})


@pytest.fixture
def trips(sqlite_workspace) -> str:
    """Register "trips": late when FEATURE is high; monitored against its training data."""
    rng = np.random.default_rng(0)
    x = features(rng, 2000)
    late = x[FEATURE] + 0.3 * rng.normal(size=len(x)) > 0
    model = LogisticRegression().fit(x, late)
    version = loopml.models.register(
        NAME, model, reference=x.assign(late=late), target="late", card=False
    )
    loopml.models.set_alias(NAME, "champion", version.version)
    return NAME


def loopml_env(folder: Path) -> dict[str, str]:
    """The environment of a `loopml` subprocess working in the test's workspace."""
    return {**os.environ, "LOOPML_HOME": str(folder / ".loopml")}


@pytest.fixture
def rules(alertmanager: Process, tmp_path: Path) -> Path:
    """Drift of the most important feature over two windows; alerts to the log and to
    Alertmanager."""
    rule = {"name": RULE, "metric": "psi", "features": "top 1", "above": 1.0, "for": "2 windows"}
    notifiers = ["log", {"alertmanager": alertmanager.url}]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"rules": [rule], "notifiers": notifiers}))
    return path


@pytest.fixture
def server(trips: str, rules: Path, tmp_path: Path) -> Iterator[Process]:
    """`loopml serve trips --monitor-every 2s --rules rules.yaml` in a subprocess."""
    port = free_port()
    command = [sys.executable, "-m", "loopml.cli.main", "serve", trips, "--port", str(port)]
    command += ["--monitor-every", EVERY, "--rules", str(rules)]
    url, log = f"http://127.0.0.1:{port}", tmp_path / "serve.log"
    options = {"cwd": tmp_path, "env": loopml_env(tmp_path)}
    with running(command, url, "/v2/health/ready", log, **options) as process:
        yield process


@dataclass
class Traffic:
    """What the traffic thread sends: FEATURE shifted by this many standard deviations."""

    shift: float


@contextmanager
def traffic(server: Process, shift: float) -> Iterator[Traffic]:
    """Five requests a second of 100 fresh rows each, until the block ends."""
    sending, done, rng = Traffic(shift), threading.Event(), np.random.default_rng(1)

    def records() -> list[dict[str, float]]:
        return features(rng, 100, sending.shift).to_dict("records")

    first = httpx.post(f"{server.url}/predict", json={"records": records()}, timeout=10)
    assert first.status_code == 200, first.text

    def send() -> None:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            while not done.wait(0.2):
                with suppress(httpx.HTTPError):
                    client.post("/predict", json={"records": records()})

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    try:
        yield sending
    finally:
        done.set()
        thread.join(10)


# Prometheus


@contextmanager
def prometheus(
    binaries: dict[str, str], target: Process, alertmanager: Process, rule_file: Path
) -> Iterator[Process]:
    """Prometheus scraping target's /metrics every second, evaluating rule_file every second
    and sending its alerts to alertmanager."""
    folder = rule_file.parent
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rule_file)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager.address]}]}]},
        "scrape_configs": [
            {"job_name": "loopml", "static_configs": [{"targets": [target.address]}]}
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    url = f"http://{address}"
    command = [
        binaries["prometheus"],
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address={address}",
        f"--web.external-url={url}",
    ]
    with running(command, url, "/-/ready", folder / "prometheus.log") as process:
        yield process


def prometheus_rule_file(rules: Path, folder: Path) -> Path:
    """The rule file `loopml alerts NAME --prometheus rules.yaml --every 2s` prints."""
    command = [sys.executable, "-m", "loopml.cli.main", "alerts", NAME, "--prometheus"]
    command += [str(rules), "--every", EVERY]
    done = subprocess.run(
        command, cwd=folder, env=loopml_env(folder), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    path = folder / "prometheus" / "loopml.rules.yml"
    path.parent.mkdir()
    path.write_text(done.stdout)
    return path


def prometheus_api(prometheus: Process, what: str, **params: str) -> Any:
    found = get_json(f"{prometheus.url}/api/v1/{what}", **params)
    return found["data"] if found else None


def scraped(prometheus: Process, target: Process) -> bool:
    data = prometheus_api(prometheus, "targets") or {"activeTargets": []}
    return any(
        found["scrapeUrl"] == f"{target.url}/metrics" and found["health"] == "up"
        for found in data["activeTargets"]
    )


def drift_series(prometheus: Process) -> list[dict[str, Any]]:
    query = f'loopml_monitor_value{{endpoint="{NAME}", metric="psi", bound="value"}}'
    data = prometheus_api(prometheus, "query", query=query)
    return data["result"] if data else []


def prometheus_firing(prometheus: Process) -> list[dict[str, Any]]:
    data = prometheus_api(prometheus, "alerts") or {"alerts": []}
    return [
        alert
        for alert in data["alerts"]
        if alert["labels"]["alertname"] == RULE and alert["state"] == "firing"
    ]


# The tests


def test_prometheus_and_the_server_alert_on_drift_through_alertmanager_and_resolve(
    binaries: dict[str, str],
    server: Process,
    rules: Path,
    alertmanager: Process,
    webhook: Receiver,
    tmp_path: Path,
) -> None:
    rule_file = prometheus_rule_file(rules, tmp_path)
    with (
        traffic(server, shift=3.0) as sending,
        prometheus(binaries, server, alertmanager, rule_file) as prom,
    ):
        wait = Patience(SCENARIO, server, alertmanager, prom)

        def by_prometheus(alert: dict[str, Any]) -> bool:
            return alert["generatorURL"].startswith(prom.url)

        wait.until(lambda: scraped(prom, server), "Prometheus to scrape the server")
        series = wait.until(lambda: drift_series(prom), "the PSI gauges in Prometheus")
        assert {found["metric"]["key"] for found in series} >= {FEATURE, "b"}
        firing = wait.until(lambda: prometheus_firing(prom), f"{RULE} to fire in Prometheus")
        assert firing[0]["labels"]["key"] == FEATURE  # 'top 1': the feature that moved
        assert float(firing[0]["value"]) > 1.0
        notified = wait.until(
            lambda: webhook.alerts(RULE, "firing", by_prometheus), "Prometheus' alert notified"
        )
        assert notified[0]["labels"]["key"] == FEATURE
        assert notified[0]["labels"]["endpoint"] == NAME
        # The server judged the rule on its own windows and told the same Alertmanager.
        held = wait.until(lambda: loopml_held(alertmanager), "the server's alert held")
        assert FEATURE in held[0]["annotations"]["summary"]
        wait.until(lambda: webhook.alerts(RULE, "firing", by_loopml), "the server's notified")

        sending.shift = 0.0  # the traffic looks like the training data again
        wait.until(lambda: webhook.alerts(RULE, "resolved", by_prometheus), "Prometheus' end")
        wait.until(lambda: webhook.alerts(RULE, "resolved", by_loopml), "the server's end")
        assert not prometheus_firing(prom)
        assert alertmanager_alerts(alertmanager, RULE) == []


def test_loopml_alerts_reach_alertmanager_and_resolve_there(
    alertmanager: Process, webhook: Receiver
) -> None:
    notifier = AlertmanagerNotifier(alertmanager.url)
    alert = Alert(
        id="a1b2c3d4e5f60718",
        endpoint="checkout",
        rule="notifier_check",
        status="firing",
        severity="critical",
        message="psi breached: basket=0.41 (psi > 0.25 for 1 window)",
        at=time.time(),
    )
    wait = Patience(SCENARIO, alertmanager)
    assert notifier.send(alert)
    held = wait.until(lambda: alertmanager_alerts(alertmanager, alert.rule), "the alert held")
    assert held[0]["status"]["state"] == "active"
    assert held[0]["labels"] == {
        "alertname": "notifier_check",
        "endpoint": "checkout",
        "severity": "critical",
        "source": "loopml",
    }
    assert held[0]["annotations"] == {"summary": alert.message, "loopml_alert_id": alert.id}
    wait.until(lambda: webhook.alerts(alert.rule, "firing"), "the alert notified")

    assert notifier.send(replace(alert, status="resolved", resolved_at=time.time()))
    wait.until(lambda: alertmanager_alerts(alertmanager, alert.rule) == [], "it to resolve")
    resolved = wait.until(lambda: webhook.alerts(alert.rule, "resolved"), "its end notified")
    assert resolved[0]["annotations"]["loopml_alert_id"] == alert.id
