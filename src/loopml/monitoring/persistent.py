"""Alerts that never resolve: a drift rule whose alert stays open window after window is a
mistake in the policy, not news about the traffic.

A drift rule judged against the training reference cannot tell a season from a change: a
summer window drifts from a January reference every month, and the alert fired in month two
stays open. When it has stayed open over ``PERSISTENT_WINDOWS`` judged windows (windows that
hold a value of its metric), and a change of the serving version (a new champion, judged
against its own reference) did not resolve it either, retraining cannot resolve it: the rule
should judge against a rolling reference (``against: previous window``). A drift rule
already judged against earlier windows does not depend on the model at all; open over as
many windows, it sees a steady trend, and should pool more windows or take a higher
threshold.

Only drift rules are judged so (the metrics of ``rolling.METRICS``): a performance or
latency alert that stays open is a problem that lasts, and is left to be a trigger.

Three windows by default: the window the alert fired in, the one the retrained champion
took over in (its traffic mixed with the old version's), and one whole window served by the
new champion alone. Fewer cannot see a new champion fail to resolve it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from loopml.errors import InvalidValueError
from loopml.monitoring import operations as ops
from loopml.monitoring.rolling import METRICS as DRIFT_METRICS
from loopml.monitoring.rules import Rule
from loopml.store.deployments import AlertRecord
from loopml.store.monitoring import WindowRecord
from loopml.workspace import Workspace, current_workspace

PERSISTENT_WINDOWS = 3


@dataclass(frozen=True)
class PersistentAlert:
    """An open drift alert that never resolves.

    alert_id, rule: the alert and its rule's name (the alert's kind is ``rule:<rule>``);
    metric: the series it judges (``psi``, ``psi_previous``); against: what it judges drift
    against (``reference``, ``previous window``, ``last 3 windows``); windows: the judged
    windows it has stayed open over, the one it fired in included; since: when it fired
    (seconds since 1970); window, label: the window it fired in and that window's label;
    versions: the versions that served those windows, in the order they came; hint: what
    to change in the rule.
    """

    alert_id: str
    rule: str
    metric: str
    against: str
    windows: int
    since: float
    window: str | None
    label: str | None
    versions: tuple[int, ...]
    hint: str


def persistent_alerts(
    name: str, *, windows: int = PERSISTENT_WINDOWS, workspace: Workspace | None = None
) -> list[PersistentAlert]:
    """The endpoint's open drift alerts that never resolve, oldest first.

    An open alert of a drift rule is one when it has stayed open over at least ``windows``
    judged windows and, for a rule judged against the training reference, across a change of
    the serving version. The retraining loop should not take such an alert as a fresh
    reason to retrain: a new model did not, or cannot, resolve it.
    """
    from loopml.monitoring.timeseries import windows as stored_windows

    if isinstance(windows, bool) or not isinstance(windows, int) or windows < 1:
        raise InvalidValueError(f"windows is a whole number of at least 1, not {windows!r}.")
    workspace = workspace or current_workspace()
    opened = ops.open_rule_alerts(workspace.metadata, name)
    ruled = [(alert, rule) for alert in opened if (rule := _rule(alert))]
    if not ruled:
        return []
    done = stored_windows(name, workspace=workspace)
    judged = _judged(name, {rule.series_metric for _, rule in ruled}, workspace)
    found = (_persistent(a, rule, done, judged, windows) for a, rule in ruled)
    return [alert for alert in found if alert is not None]


def _rule(alert: AlertRecord) -> Rule | None:
    """The alert's drift rule as the alert stored it; None for other rules."""
    try:
        rule = Rule.model_validate(alert.details.get("rule") or {})
    except ValidationError:  # a rule this version no longer reads: not judged
        return None
    return rule if rule.metric in DRIFT_METRICS else None


def _judged(name: str, metrics: set[str], workspace: Workspace) -> dict[str, set[str]]:
    """For each metric, the windows that hold a value of it."""
    from loopml.monitoring.timeseries import series

    points = series(name, metrics, workspace=workspace)
    points = points[points["value"].notna()]
    return {
        metric: set(group["window_id"]) for metric, group in points.groupby("metric", sort=False)
    }


def _persistent(
    alert: AlertRecord,
    rule: Rule,
    done: list[WindowRecord],
    judged: dict[str, set[str]],
    count: int,
) -> PersistentAlert | None:
    since = _since(alert, done)
    if since is None:
        return None
    kept = [w for w in done[since:] if w.id in judged.get(rule.series_metric, set())]
    versions = tuple(dict.fromkeys(w.versions[0] for w in kept if w.versions))
    reference = not rule.judged_against.rolling
    if len(kept) < count or (reference and len(versions) < 2):
        return None
    first = done[since]
    return PersistentAlert(
        alert_id=alert.id,
        rule=rule.name,
        metric=rule.series_metric,
        against=rule.against,
        windows=len(kept),
        since=alert.at,
        window=first.id,
        label=first.label,
        versions=versions,
        hint=_hint(rule, len(kept), versions),
    )


def _since(alert: AlertRecord, done: list[WindowRecord]) -> int | None:
    """The index of the window the alert fired in: the one it names, else the newest window
    stored before it fired."""
    named = alert.details.get("window")
    for index, window in enumerate(done):
        if window.id == named:
            return index
    before = [index for index, window in enumerate(done) if window.at <= alert.at]
    return before[-1] if before else None


def _hint(rule: Rule, windows: int, versions: tuple[int, ...]) -> str:
    if not rule.judged_against.rolling:
        served = " → ".join(f"v{v}" for v in versions)
        return (
            f"open over {windows} windows and across a new champion "
            f"({served}), so retraining does not resolve it; judge it against a rolling "
            "reference ('against: previous window' or 'against: last 3 windows')"
        )
    return (
        f"open over {windows} windows though it judges each window against "
        f"{rule.judged_against.phrase()}, so the traffic keeps moving that much; pool more "
        "windows ('against: last N windows') or raise its threshold"
    )
