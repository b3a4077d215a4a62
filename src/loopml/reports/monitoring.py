"""The monitoring report of an endpoint: one HTML page of what its monitors stored — drift
per feature, the predictions' distribution, performance on feedback, latency, errors,
throughput and cost against the SLOs — beside its alerts (those that never resolve marked as
a mistake in the rules, with what to change), which version served when, and the decisions of
the retraining loop.

Plots over time have one point per monitored window, named by its label (``2013-03``) or
else by its end (UTC).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from loopml.reports.html import render
from loopml.store.deployments import AlertRecord
from loopml.store.monitoring import DecisionRecord, WindowRecord
from loopml.store.registry import RegistryEvent
from loopml.workspace import Workspace, current_workspace

if TYPE_CHECKING:
    from loopml.monitoring.persistent import PersistentAlert
    from loopml.serving.deployments import Deployment

HEATMAP_FEATURES = 40  # the most important (then most drifted) features in the heatmap
REPORTS_READ = 20  # newest window reports read for the latest histograms and top features
MONTH = re.compile(r"\d{4}-\d{2}")  # a window label naming a month: 2013-03
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")  # the start of a label naming a day or a moment
_NO_POINTS = pd.DataFrame(columns=["window_id", "metric", "key", "value", "low", "high"])


def monitoring_report(
    name: str,
    path: str | Path | None = None,
    *,
    since: float | None = None,
    self_contained: bool = False,
    workspace: Workspace | None = None,
) -> str:
    """The monitoring report of the endpoint NAME as HTML, written to path when given.

    since: only windows that end after this moment (seconds since 1970), and the alerts,
    registry events and loop decisions since then (alerts still open are always shown).
    self_contained: Plotly's script inside the page, to send it as one file; by default a
    page written to a path refers to one shared plotly.min.js written beside it.
    """
    from loopml.reports.monitoring_plots import figures

    workspace = workspace or current_workspace()
    facts = gather(name, since, workspace)
    made = figures(facts)
    heights = {key: figure.layout.height or 450 for key, figure in made.items()}
    return render(
        "monitoring.html.j2",
        path,
        self_contained=self_contained,
        figures=made,
        heights=heights,
        **context(facts),
    )


# What the report is made of ----------------------------------------------------------------


class Points:
    """The stored values of the report's windows, looked up by metric and key and aligned
    with the windows (None where a window has no value)."""

    def __init__(self, frame: pd.DataFrame, windows: list[WindowRecord]) -> None:
        self.ids = [w.id for w in windows]
        self.groups = {
            key: group.set_index("window_id") for key, group in frame.groupby(["metric", "key"])
        }

    def has(self, metric: str, key: str = "") -> bool:
        return (metric, key) in self.groups

    def metrics(self) -> list[str]:
        return sorted({metric for metric, _ in self.groups})

    def keys(self, metric: str) -> list[str]:
        return sorted(key for found, key in self.groups if found == metric)

    def values(self, metric: str, key: str = "", column: str = "value") -> list[float | None]:
        found = self.groups.get((metric, key))
        if found is None:
            return [None] * len(self.ids)
        return [None if pd.isna(v) else float(v) for v in found[column].reindex(self.ids)]

    def latest(self, metric: str, key: str = "") -> tuple[float | None, float | None, float | None]:
        """The newest window's value with its interval, when it has one."""
        columns = [self.values(metric, key, c) for c in ("value", "low", "high")]
        for index in reversed(range(len(self.ids))):
            if columns[0][index] is not None:
                return columns[0][index], columns[1][index], columns[2][index]
        return None, None, None


@dataclass
class Facts:
    """Everything the report shows, read once from the workspace."""

    name: str
    deployment: Deployment
    revision: int
    served: dict[str, int]
    windows: list[WindowRecord]
    points: Points
    latest: dict[str, tuple[WindowRecord, dict[str, Any]]]
    alerts: list[AlertRecord]
    events: list[RegistryEvent]
    decisions: list[DecisionRecord]
    since: float | None
    persistent: dict[str, PersistentAlert] = field(default_factory=dict)  # by alert id

    @cached_property
    def x(self) -> list[str]:
        """The windows' names on the x axis, in their order."""
        return window_names(self.windows)

    @cached_property
    def dates(self) -> list[float] | None:
        """The moment each window is as of, when every window's label is a date."""
        return window_dates(self.windows)


def gather(name: str, since: float | None, workspace: Workspace) -> Facts:
    """Read the endpoint's deployment, windows, values, alerts, history and decisions."""
    from loopml.loop.history import decisions
    from loopml.monitoring.persistent import persistent_alerts
    from loopml.monitoring.timeseries import series, windows
    from loopml.registry.api import history
    from loopml.serving.deployments import alerts, deployment

    spec, revision = deployment(name, workspace=workspace)  # an unknown model stops here
    found = windows(name, since=since, workspace=workspace)
    # series() cannot merge when there is no point at all: no window, nothing to read
    frame = series(name, since=since, workspace=workspace) if found else _NO_POINTS
    after = since if since is not None else float("-inf")
    return Facts(
        name=name,
        deployment=spec,
        revision=revision,
        served=_served(name, spec, workspace),
        windows=found,
        points=Points(frame, found),
        latest=_latest_checks(found, workspace),
        alerts=[a for a in alerts(name, workspace=workspace) if a.at > after or not a.resolved_at],
        persistent={a.alert_id: a for a in persistent_alerts(name, workspace=workspace)},
        events=[e for e in history(name, workspace=workspace) if e.at > after],
        decisions=[d for d in decisions(name, workspace=workspace) if d.at > after],
        since=since,
    )


def _served(name: str, spec: Deployment, workspace: Workspace) -> dict[str, int]:
    """Role -> the version number it serves now (roles naming no version are left out)."""
    from loopml.registry.api import version_numbers

    roles = {"champion": spec.champion, "shadow": spec.shadow}
    if spec.canary is not None:
        roles["canary"] = spec.canary.version
    chosen = {role: str(ref) for role, ref in roles.items() if ref is not None}
    numbers = version_numbers(name, list(chosen.values()), workspace=workspace)
    return {role: numbers[ref] for role, ref in chosen.items() if ref in numbers}


def _latest_checks(
    windows: list[WindowRecord], workspace: Workspace
) -> dict[str, tuple[WindowRecord, dict[str, Any]]]:
    """For each check, the newest window where it ran (status ok) and what it found; only the
    newest REPORTS_READ windows with traffic are read."""
    from loopml.monitoring.timeseries import window_report

    found: dict[str, tuple[WindowRecord, dict[str, Any]]] = {}
    read = [w for w in reversed(windows) if w.status != "empty"][:REPORTS_READ]
    for window in read:
        for check in window_report(window, workspace=workspace).get("checks", []):
            if check["status"] == "ok" and check["name"] not in found:
                found[check["name"]] = (window, check)
    return found


def window_names(windows: list[WindowRecord]) -> list[str]:
    """Each window's name on the x axis: its label, else its end (UTC, to the minute, or to
    the second when minutes repeat); names still repeated get (2), (3), ..."""
    ends = [when(w.end) for w in windows]
    unnamed = [end for end, w in zip(ends, windows, strict=True) if not w.label]
    if len(set(unnamed)) < len(unnamed):
        ends = [when(w.end, seconds=True) for w in windows]
    seen: Counter[str] = Counter()
    names = []
    for window, end in zip(windows, ends, strict=True):
        name = window.label or end
        seen[name] += 1
        names.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return names


def window_dates(windows: list[WindowRecord]) -> list[float] | None:
    """Each window's as-of moment (seconds since 1970) when every window is labelled with a
    date: ``2013-03`` (its first day), ``2013-03-15`` or ``2013-03-15T06:00`` (UTC unless the
    label names a zone); None when some window has no such label, or there is no window."""
    found = [as_of(w.label) for w in windows]
    dates = [moment for moment in found if moment is not None]
    return dates if dates and len(dates) == len(found) else None


def as_of(label: str | None) -> float | None:
    """The moment a window label names, if it is an ISO date (or a year and month)."""
    text = f"{label}-01" if label and MONTH.fullmatch(label) else label or ""
    if not DATE.match(text):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:  # 2013-02-30, or a name that only starts like a date
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def when(timestamp: float | None, seconds: bool = False) -> str:
    """A moment in UTC to the minute (or the second), or '-'."""
    if timestamp is None:
        return "-"
    shape = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return datetime.fromtimestamp(timestamp, UTC).strftime(shape)


# What the template shows besides the plots -------------------------------------------------


def context(facts: Facts) -> dict[str, Any]:
    """The template's variables: the summary, the tables and the notes of each section."""
    return {
        "name": facts.name,
        "since": when(facts.since) if facts.since is not None else None,
        "deployment": deployment_lines(facts),
        "deployment_revision": facts.revision,
        "statuses": dict(Counter(w.status for w in facts.windows)),
        "open_alerts": sum(1 for a in facts.alerts if a.resolved_at is None),
        "never_resolve": len(facts.persistent),
        "tiles": tiles(facts) if facts.windows else [],
        "windows": window_rows(facts),
        "period": _period(facts.windows),
        "drift": drift_notes(facts),
        "histograms": histogram_rows(facts),
        "performance_metric": performance_metric(facts.points),
        "alerts": alert_rows(facts.alerts, facts.persistent, _names(facts)),
        "events": event_rows(facts.events),
        "decisions": decision_rows(facts.decisions),
        "promotions": promotion_rows(facts.decisions),
        "slos": _slos(facts.deployment),
    }


def deployment_lines(facts: Facts) -> list[str]:
    """What serves the endpoint now, one role a line."""
    spec, served = facts.deployment, facts.served
    lines = [f"champion: {_ref(spec.champion, served.get('champion'))}"]
    if spec.canary is not None:
        ref = _ref(spec.canary.version, served.get("canary"))
        lines.append(f"canary: {ref}, answering {spec.canary.fraction:.0%} of requests")
    if spec.shadow:
        lines.append(f"shadow: {_ref(spec.shadow, served.get('shadow'))}, sent a copy of each")
    if spec.last_rollback:
        last = spec.last_rollback
        lines.append(f"last canary rollback: {last['version']} at {when(last['at'])} UTC")
    return lines


def _ref(selector: str, version: int | None) -> str:
    """An alias with the version it points at (@champion → v3), or a version (v3)."""
    if selector.isdigit():
        return f"v{selector}"
    return f"@{selector} → v{version}" if version is not None else f"@{selector} (not set)"


def _slos(spec: Deployment) -> list[str]:
    names = {
        "max_p99_latency_ms": "p99 latency ≤ {:g} ms",
        "max_p95_latency_ms": "p95 latency ≤ {:g} ms",
        "max_error_rate": "error rate ≤ {:.2%}",
        "max_cost_per_1k": "cost per 1,000 predictions ≤ {:.4g}",
        "min_throughput_rps": "throughput ≥ {:g} requests/s",
    }
    slos = spec.slos.model_dump()
    return [text.format(slos[key]) for key, text in names.items() if slos.get(key) is not None]


def _period(windows: list[WindowRecord]) -> str | None:
    if not windows:
        return None
    return f"{when(windows[0].start)} to {when(windows[-1].end)} UTC"


TILES = (  # metric, key, title, format
    ("drifted_share", "", "features drifted", "{:.0%}"),
    ("max_psi", "", "largest feature PSI", "{:.3f}"),
    ("label_coverage", "", "predictions labelled", "{:.0%}"),
    ("latency_p99_ms", "", "p99 latency", "{:.1f} ms"),
    ("error_rate", "", "error rate", "{:.2%}"),
    ("throughput_rps", "", "requests per second", "{:.3g}"),
    ("cost_per_1k", "", "cost per 1,000 predictions", "{:.3g}"),
)


def tiles(facts: Facts) -> list[dict[str, str]]:
    """The latest value of each headline metric, with the window it comes from."""
    names = dict(zip([w.id for w in facts.windows], facts.x, strict=True))
    found = []
    metric = performance_metric(facts.points)
    if metric:
        found += _estimate_tile(facts, metric, names)
    busy = [w for w in facts.windows if w.status != "empty"]
    for version in [str(v) for v in (busy[-1].versions if busy else [])]:
        value = facts.points.latest("prediction_psi", version)[0]
        if value is not None:
            where = _window_of(facts, "prediction_psi", names, version)
            found.append(_tile(f"prediction PSI of v{version}", f"{value:.3f}", where))
    for metric, key, title, shape in TILES:
        value = facts.points.latest(metric, key)[0]
        if value is not None:
            found.append(_tile(title, shape.format(value), _window_of(facts, metric, names, key)))
    return found


def _estimate_tile(facts: Facts, metric: str, names: dict[str, str]) -> list[dict[str, str]]:
    value, low, high = facts.points.latest(metric)
    if value is None:
        return []
    where = _window_of(facts, metric, names)
    if low is not None and high is not None:
        where = f"[{low:.3f}, {high:.3f}] · {where}"
    return [_tile(f"{metric} on feedback", f"{value:.3f}", where)]


def _tile(title: str, value: str, where: str | None) -> dict[str, str]:
    return {"title": title, "value": value, "where": where or ""}


def _window_of(facts: Facts, metric: str, names: dict[str, str], key: str = "") -> str | None:
    values = facts.points.values(metric, key)
    index = max((i for i, v in enumerate(values) if v is not None), default=None)
    return None if index is None else names[facts.windows[index].id]


def window_rows(facts: Facts) -> list[dict[str, Any]]:
    """The windows, newest first, for the summary's table."""
    rows = [
        {
            "name": name,
            "start": when(w.start),
            "end": when(w.end),
            "rows": w.rows,
            "versions": ", ".join(f"v{v}" for v in w.versions) or "-",
            "status": w.status,
            "message": w.message or "",
        }
        for name, w in zip(facts.x, facts.windows, strict=True)
    ]
    return rows[::-1]


def drift_notes(facts: Facts) -> dict[str, Any]:
    """How the drift heatmap was made: the significance level and the feature order."""
    found = facts.latest.get("data_drift")
    details = found[1]["details"] if found else {}
    features = facts.points.keys("psi")
    return {
        "alpha": details.get("alpha", 0.05),
        "ranked": bool(details.get("top_features")),
        "features": len(features),
        "shown": min(len(features), HEATMAP_FEATURES),
    }


def histogram_rows(facts: Facts) -> list[dict[str, Any]]:
    """Per version of the newest window with prediction drift: its test against the
    reference, for the table under the histograms."""
    found = facts.latest.get("prediction_drift")
    if found is None:
        return []
    window, check = found
    name = facts.x[facts.windows.index(window)]
    return [
        {
            "version": version,
            "window": name,
            "psi": item["psi"],
            "ks": item["ks"],
            "p_value": item["p_value"],
            "drifted": item["drifted"],
        }
        for version, item in sorted(check["details"].get("versions", {}).items())
    ]


def performance_metric(points: Points) -> str | None:
    """The primary metric the windows measured on feedback, if any."""
    return next((m for m in ("roc_auc", "rmse") if points.has(m)), None)


def alert_rows(
    alerts: list[AlertRecord],
    persistent: dict[str, PersistentAlert] | None = None,
    names: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The alerts, newest first; one that never resolves (persistent, by alert id) says so,
    since which window (names: window id -> its name in the report) and what to change."""
    rows = [
        {
            "kind": a.kind,
            "severity": (a.details.get("rule") or {}).get("severity", ""),
            "message": a.message,
            "fired": when(a.at),
            "resolved": when(a.resolved_at) if a.resolved_at else None,
            "never_resolves": _never_resolves((persistent or {}).get(a.id), names or {}),
        }
        for a in alerts
    ]
    return rows[::-1]


def _never_resolves(found: PersistentAlert | None, names: dict[str, str]) -> str | None:
    if found is None:
        return None
    since = names.get(found.window or "") or found.label or when(found.since)
    return f"open since {since}: {found.hint}"


def _names(facts: Facts) -> dict[str, str]:
    return dict(zip([w.id for w in facts.windows], facts.x, strict=True))


def event_rows(events: list[RegistryEvent]) -> list[dict[str, Any]]:
    """The registry's audit log, newest first: registrations, alias moves, deployments."""
    rows = [
        {
            "at": when(e.at),
            "action": e.action,
            "alias": e.alias or "",
            "change": change(e),
            "actor": e.actor,
            "reason": e.reason or "",
        }
        for e in events
    ]
    return rows[::-1]


def change(event: RegistryEvent) -> str:
    """The versions an event moved between: v1 → v2, or the version it made."""
    if event.to_version is None:
        return ""
    if event.from_version is None:
        return f"v{event.to_version}"
    return f"v{event.from_version} → v{event.to_version}"


def promotion_rows(decisions: list[DecisionRecord]) -> list[dict[str, Any]]:
    """Every promotion the loop made, oldest first, with the verdict on the labels of what it
    served: held, harmful (then rolled back), or not judged yet."""
    verdicts = {
        d.evidence.get("promotion"): d
        for d in decisions
        if d.action in ("held", "harmful", "harm_unjudged")
    }
    rows = []
    for d in decisions:
        if d.action != "promote":
            continue
        verdict = verdicts.get(d.id)
        rows.append(
            {
                "at": when(d.at),
                "as_of": when(d.as_of),
                "version": f"v{d.version}",
                "previous": f"v{d.evidence.get('previous')}",
                "verdict": verdict.action if verdict is not None else "not judged yet",
                "detail": verdict.message if verdict is not None else "",
            }
        )
    return rows


def decision_rows(decisions: list[DecisionRecord]) -> list[dict[str, Any]]:
    """The loop's decisions, newest first, with their evidence as indented JSON."""
    rows = [
        {
            "at": when(d.at),
            "as_of": when(d.as_of),
            "action": d.action,
            "version": f"v{d.version}" if d.version is not None else "",
            "message": d.message,
            "outline": ", ".join(d.evidence) or "none",
            "evidence": json.dumps(d.evidence, indent=2, sort_keys=True, default=str),
        }
        for d in decisions
    ]
    return rows[::-1]
