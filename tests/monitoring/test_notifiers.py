"""Notifiers deliver alerts to a real HTTP receiver on 127.0.0.1: a webhook gets the alert as
JSON, Alertmanager gets its API's body; a receiver failing with 5xx is retried, one that
cannot be reached is logged and reported, never raised."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from loopml.errors import AlertRuleError
from loopml.monitoring import notifiers
from loopml.monitoring.notifiers import (
    Alert,
    AlertmanagerNotifier,
    LogNotifier,
    WebhookNotifier,
    notifier_from,
)

FIRING = Alert(
    id="a1",
    endpoint="churn",
    rule="feature_drift",
    status="firing",
    severity="critical",
    message="psi breached: a=0.31",
    at=1_800_000_000.0,
    details={"values": {"a": 0.31}},
)
RESOLVED = Alert(**{**FIRING.to_dict(), "status": "resolved", "resolved_at": 1_800_000_600.0})


class Receiver:
    """An HTTP server on 127.0.0.1 that keeps every POST (path, JSON body) and answers with
    the status codes it is given, then 200."""

    def __init__(self) -> None:
        self.received: list[tuple[str, object]] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                receiver.received.append((self.path, json.loads(self.rfile.read(length))))
                code = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


@pytest.fixture
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retries do not wait; the pauses asked for are kept."""
    pauses: list[float] = []
    monkeypatch.setattr(notifiers, "time", SimpleNamespace(sleep=pauses.append))
    return pauses


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_webhook_gets_the_alert_as_json(receiver: Receiver) -> None:
    assert WebhookNotifier(f"{receiver.url}/hook").send(FIRING) is True
    assert WebhookNotifier(f"{receiver.url}/hook").send(RESOLVED) is True
    (path, firing), (_, resolved) = receiver.received
    assert path == "/hook"
    assert firing["status"] == "firing" and firing["alerts"] == [FIRING.to_dict()]
    assert resolved["status"] == "resolved"
    assert resolved["alerts"][0]["resolved_at"] == 1_800_000_600.0


def test_a_failing_receiver_is_retried(receiver: Receiver, no_waiting) -> None:
    receiver.answers = [500, 200]
    assert WebhookNotifier(receiver.url).send(FIRING) is True
    assert len(receiver.received) == 2 and receiver.received[0] == receiver.received[1]


def test_a_receiver_that_keeps_failing_is_given_up_and_logged(
    receiver: Receiver, no_waiting, caplog
) -> None:
    receiver.answers = [503, 503, 503, 503]
    with caplog.at_level(logging.ERROR, logger="loopml.alerts"):
        assert WebhookNotifier(receiver.url).send(FIRING) is False
    assert len(receiver.received) == 3
    assert "HTTP 503" in caplog.text and receiver.url in caplog.text


def test_a_refusal_is_not_retried(receiver: Receiver, no_waiting) -> None:
    receiver.answers = [400]
    assert WebhookNotifier(receiver.url).send(FIRING) is False
    assert len(receiver.received) == 1


def test_an_unreachable_receiver_is_logged_never_raised(no_waiting, caplog) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/hook"
    with caplog.at_level(logging.ERROR, logger="loopml.alerts"):
        assert WebhookNotifier(url).send(FIRING) is False
        assert AlertmanagerNotifier(url).send(FIRING) is False
    assert f"Could not deliver an alert to {url}" in caplog.text
    assert "ConnectError" in caplog.text


def test_alertmanager_gets_its_apis_body(receiver: Receiver) -> None:
    notifier = AlertmanagerNotifier(receiver.url + "/")
    assert notifier.send(FIRING) and notifier.send(RESOLVED)
    (path, [firing]), (_, [resolved]) = receiver.received
    assert path == "/api/v2/alerts"
    assert firing["labels"] == {
        "alertname": "feature_drift",
        "endpoint": "churn",
        "severity": "critical",
        "source": "loopml",
    }
    assert firing["annotations"]["summary"] == FIRING.message
    assert datetime.fromisoformat(firing["startsAt"]).timestamp() == FIRING.at
    assert firing["startsAt"].endswith("Z") and "endsAt" not in firing
    assert resolved["startsAt"] == firing["startsAt"]
    assert datetime.fromisoformat(resolved["endsAt"]).timestamp() == RESOLVED.resolved_at


def test_the_log_notifier_writes_alerts_as_warnings(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="loopml.alerts"):
        assert LogNotifier().send(FIRING) and LogNotifier().send(RESOLVED)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "[firing] churn feature_drift: psi breached: a=0.31"),
        ("WARNING", "[resolved] churn feature_drift: psi breached: a=0.31"),
    ]


def test_notifiers_are_made_from_their_yaml_form() -> None:
    assert isinstance(notifier_from("log"), LogNotifier)
    hook = notifier_from({"webhook": "http://127.0.0.1:9/hook"})
    assert isinstance(hook, WebhookNotifier) and hook.url == "http://127.0.0.1:9/hook"
    manager = notifier_from({"alertmanager": "http://127.0.0.1:9093"})
    assert manager.url == "http://127.0.0.1:9093/api/v2/alerts"
    with pytest.raises(AlertRuleError, match="not 'email'"):
        notifier_from("email")
