"""Where alerts go when they fire or resolve: the log, a JSON webhook, Alertmanager's API.

A notifier is anything with ``send(alert) -> bool``, where ``alert`` is an ``Alert``. A
notifier that cannot deliver logs why and returns False; it never raises, so a failing
receiver cannot stop a monitor or a server.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

log = logging.getLogger("loopml.alerts")
TIMEOUT = 5.0
ATTEMPTS = 3


@dataclass
class Alert:
    """One alert as notifiers see it: ``status`` is ``firing`` or ``resolved``."""

    id: str
    endpoint: str
    rule: str
    status: str
    severity: str
    message: str
    at: float
    resolved_at: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Notifier(Protocol):
    """Delivers an alert; returns whether it was delivered."""

    def send(self, alert: Alert) -> bool: ...


class LogNotifier:
    """Writes alerts, firing and resolved, as warnings of the ``loopml.alerts`` logger (so a
    server that logs warnings only shows both)."""

    def send(self, alert: Alert) -> bool:
        log.warning("[%s] %s %s: %s", alert.status, alert.endpoint, alert.rule, alert.message)
        return True


class WebhookNotifier:
    """POSTs ``{"status": ..., "alerts": [alert]}`` as JSON to a URL, retrying twice."""

    def __init__(self, url: str, *, headers: dict[str, str] | None = None) -> None:
        self.url, self.headers = url, headers or {}

    def send(self, alert: Alert) -> bool:
        body = {"receiver": "loopml", "status": alert.status, "alerts": [alert.to_dict()]}
        return _post(self.url, body, self.headers)


class AlertmanagerNotifier:
    """Sends alerts to Alertmanager's API (``POST /api/v2/alerts``): labels name the rule,
    endpoint and severity; a resolved alert carries its end time, which resolves it there."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/") + "/api/v2/alerts"

    def send(self, alert: Alert) -> bool:
        item: dict[str, Any] = {
            "labels": {
                "alertname": alert.rule,
                "endpoint": alert.endpoint,
                "severity": alert.severity,
                "source": "loopml",
            },
            "annotations": {"summary": alert.message, "loopml_alert_id": alert.id},
            "startsAt": _iso(alert.at),
        }
        if alert.resolved_at is not None:
            item["endsAt"] = _iso(alert.resolved_at)
        return _post(self.url, [item], {})


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


def _post(url: str, body: Any, headers: dict[str, str]) -> bool:
    import httpx

    problem = ""
    for attempt in range(ATTEMPTS):
        try:
            answer = httpx.post(url, json=body, headers=headers, timeout=TIMEOUT)
            if answer.status_code < 300:
                return True
            problem = f"HTTP {answer.status_code}: {answer.text[:200]}"
            if answer.status_code < 500:
                break
        except httpx.HTTPError as error:
            problem = f"{type(error).__name__}: {error}"
        if attempt + 1 < ATTEMPTS:
            time.sleep(0.2 * (attempt + 1))
    log.error("Could not deliver an alert to %s: %s", url, problem)
    return False


def notifier_from(spec: Any) -> Notifier:
    """A notifier from its YAML form: ``log``, ``{webhook: URL}``, ``{alertmanager: URL}``."""
    from loopml.errors import AlertRuleError

    if spec == "log":
        return LogNotifier()
    if isinstance(spec, dict) and len(spec) == 1:
        ((kind, url),) = spec.items()
        if kind == "webhook" and isinstance(url, str):
            return WebhookNotifier(url)
        if kind == "alertmanager" and isinstance(url, str):
            return AlertmanagerNotifier(url)
    raise AlertRuleError(
        f"A notifier is 'log', {{webhook: URL}} or {{alertmanager: URL}}, not {spec!r}."
    )
