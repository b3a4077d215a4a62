"""A monitor run: one window of an endpoint's logged traffic, every check on it, the values
stored as time series in the workspace, and the alert rules judged on those series.
Drift is measured against the serving version's training reference and against the windows
before (rolling.py): the previous window always, and the last N when a rule asks for them.

The window's answered rows are read once, in record batches, into a profile of the inputs,
a profile of each version's scores and a random sample; the checks then work from those and
from aggregates DuckDB computes over the log. Memory stays bounded however long the window.
A check that fails is recorded as failed with its error, the other checks still run, and the
window is stored as ``failed`` with the reason; a window without traffic is stored as
``empty``. Nothing here raises on bad traffic: a server's scheduler keeps serving.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.data.profile import Profile
from loopml.durations import seconds
from loopml.errors import InvalidValueError, LoopmlError
from loopml.events.traffic import Traffic, quoted_column, seal_all
from loopml.ids import new_id
from loopml.monitoring import checks, rolling
from loopml.monitoring import operations as ops
from loopml.monitoring.checks import SCORE, Check, Seen
from loopml.monitoring.estimate import estimated_performance
from loopml.registry.reference import SAMPLE, Reference, Reservoir, get_reference
from loopml.store.monitoring import WindowRecord
from loopml.store.pages import every
from loopml.workspace import Workspace, current_workspace

if TYPE_CHECKING:
    from loopml.monitoring.persistent import PersistentAlert

log = logging.getLogger("loopml.monitoring")
DEFAULT_WINDOW = 86_400.0
MIN_ROWS = 100  # drift is not judged on fewer answered rows: PSI of a handful means nothing


@dataclass
class MonitorResult:
    """One monitored window: its record, every check, and what the alert rules did;
    persistent: the endpoint's open alerts that never resolve (persistent.py)."""

    window: WindowRecord
    checks: list[Check]
    fired: list[dict[str, Any]] = field(default_factory=list)
    resolved: list[dict[str, Any]] = field(default_factory=list)
    persistent: list[PersistentAlert] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.window.status

    def check(self, name: str) -> Check:
        return next(found for found in self.checks if found.name == name)

    def value(self, metric: str, key: str = "") -> float | None:
        """A point's value in this window, or None when it was not measured."""
        for found in self.window.points:
            if found.metric == metric and found.key == key:
                return found.value
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window.to_dict(),
            "checks": [found.to_dict() for found in self.checks],
            "points": [asdict(found) for found in self.window.points],
            "fired": self.fired,
            "resolved": self.resolved,
        }


def monitor(
    name: str,
    *,
    window: str | float | None = None,
    since: float | None = None,
    until: float | None = None,
    label: str | None = None,
    exact: bool = False,
    alpha: float = 0.05,
    rules: Any = None,
    notifiers: Sequence[Any] | None = None,
    seed: int = 0,
    min_rows: int = MIN_ROWS,
    workspace: Workspace | None = None,
) -> MonitorResult:
    """Monitor one window of the endpoint NAME's traffic and store what was found.

    The window ends at ``until`` (now) and starts at ``since``, or ``window`` before its end
    (``'15m'``, ``'1d'``, seconds), or where the last monitored window ended (else a day
    before). exact: also run exact two-sample tests on samples. rules: alert rules (a YAML
    file, text or dict, or a list of rules), judged on the stored series (drift against the
    last N windows is measured when a rule asks for it; the result's ``persistent`` lists
    the open alerts that never resolve); notifiers: where fired and resolved alerts are sent
    (the log when none are given). min_rows: a window
    with fewer answered rows is not judged for drift (its drift checks are skipped, so drift
    rules leave their alerts as they are), nor used as a rolling reference by later windows.
    """
    from loopml.serving.deployments import deployment

    workspace = workspace or current_workspace()
    if not 0 < alpha < 1:
        raise InvalidValueError(f"alpha is a probability between 0 and 1, not {alpha}.")
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
        raise InvalidValueError(f"min_rows is a whole number of at least 1, not {min_rows!r}.")
    spec, _ = deployment(name, workspace=workspace)
    ruleset = _rules(rules)  # bad rules are refused before anything is stored
    end = float(until if until is not None else time.time())
    start = _start(name, since, window, end, workspace)
    against = ruleset.rolling() if ruleset is not None else [rolling.PREVIOUS]
    found = _run_checks(
        name, start, end, spec, _Options(exact, alpha, seed, min_rows, against), workspace
    )
    result = _store(name, start, end, label, found, workspace)
    if ruleset is not None:
        from loopml.monitoring.persistent import persistent_alerts
        from loopml.monitoring.rules import judge

        result.fired, result.resolved = judge(name, ruleset, notifiers, workspace=workspace)
        result.persistent = persistent_alerts(name, workspace=workspace)
    return result


def _rules(rules: Any) -> Any:
    if rules is None:
        return None
    from loopml.monitoring.rules import read_rules

    return read_rules(rules)


def _start(
    name: str, since: float | None, window: str | float | None, end: float, workspace: Workspace
) -> float:
    if since is not None and window is not None:
        raise InvalidValueError("Give the window's start or its length, not both.")
    if since is not None:
        start = float(since)
    elif window is not None:
        start = end - seconds(window)
    else:
        done = list(every(ops.list_windows, workspace.metadata, name))
        start = done[-1].end if done else end - DEFAULT_WINDOW
    if start >= end:
        raise InvalidValueError(
            f"The window would start at {start:.0f}, not before its end at {end:.0f}. "
            "Give --since or --window."
        )
    return start


@dataclass
class _Options:
    exact: bool
    alpha: float
    seed: int
    min_rows: int
    against: list[rolling.Against]


@dataclass
class _Found:
    checks: list[Check]
    versions: list[int]
    rows: int
    status: str
    message: str | None
    seen: Seen | None = None


def _run_checks(
    name: str, start: float, end: float, spec: Any, options: _Options, workspace: Workspace
) -> _Found:
    try:
        seal_all(workspace)
        traffic = Traffic(name, start, end, workspace)
    except Exception as error:  # the log cannot be read: the window is recorded as failed
        log.exception("Monitoring %s failed before any check ran", name)
        return _Found([], [], 0, "failed", f"the log could not be read: {_text(error)}")
    with traffic:
        versions = _versions(traffic)
        references = {v: _reference(name, v, workspace) for v in versions}
        main = references.get(versions[0]) if versions else None
        try:
            seen = _scan(traffic, main, versions, options.seed)
        except Exception as error:  # recorded as a failed window, like a failed check
            log.exception("Reading the traffic of %s failed", name)
            return _Found(
                [], versions, 0, "failed", f"the traffic could not be read: {_text(error)}"
            )
        window = _Window(name, start, spec, traffic, seen, versions, references, workspace)
        plan = _plan(window, options)
        found = [_guarded(check, make) for check, make in plan.items()]
    failed = [f.name for f in found if f.status == "failed"]
    if failed:
        status = "failed"
        message = "; ".join(f"{f.name} failed: {f.message}" for f in found if f.status == "failed")
    elif not seen.rows and not found[-1].details.get("requests"):
        status, message = "empty", "no traffic in the window"
    else:
        status, message = "ok", None
    return _Found(found, versions, seen.rows, status, message, seen)


@dataclass
class _Window:
    """What the checks of one window work from."""

    name: str
    start: float
    spec: Any
    traffic: Traffic
    seen: Seen
    versions: list[int]
    references: dict[int, Reference | None]
    workspace: Workspace


def _plan(w: _Window, o: _Options) -> dict[str, Callable[[], Check]]:
    """Each check by name, to run in this order (operations last: it tells an empty window)."""
    task, price = _task(w.name, w.workspace), w.workspace.settings.cpu_hour_price
    main = w.references.get(w.versions[0]) if w.versions else None
    top = main.top_features(10) if main is not None else []
    few = w.seen.rows < o.min_rows
    deepest = max(against.windows for against in o.against)
    return {
        "data_drift": lambda: (
            checks.too_few(Check("data_drift"), w.seen, o.min_rows)
            or checks.data_drift(w.seen, main, o.alpha, o.exact, top)
        ),
        "correlation": lambda: (
            checks.too_few(Check("correlation"), w.seen, o.min_rows)
            or checks.correlation(w.seen, main, o.alpha)
        ),
        "prediction_drift": lambda: checks.prediction_drift(
            w.seen, {} if few else w.references, o.alpha
        ),
        "rolling_drift": lambda: rolling.rolling_drift(
            w.seen,
            [] if few else rolling.earlier(w.name, w.start, deepest, o.min_rows, w.workspace),
            o.against,
            o.alpha,
            o.min_rows,
        ),
        "quality": lambda: checks.quality(w.traffic, w.seen, main, o.alpha),
        "performance": lambda: checks.performance(w.traffic, task, 1 - o.alpha, o.seed),
        "estimated_performance": lambda: estimated_performance(
            w.seen, w.traffic, w.versions[0] if w.versions else None, task
        ),
        "operations": lambda: checks.operations(w.traffic, w.spec.slos.model_dump(), price),
    }


def _guarded(name: str, make: Callable[[], Check]) -> Check:
    try:
        return make()
    except Exception as error:  # one check failing must not stop the others
        log.exception("The monitoring check %s failed", name)
        return Check(name, status="failed", message=_text(error))


def _text(error: BaseException) -> str:
    return str(error) if isinstance(error, LoopmlError) else f"{type(error).__name__}: {error}"


def _task(name: str, workspace: Workspace) -> str:
    from loopml.registry.api import get_version

    try:
        return (
            get_version(f"{name}@champion", workspace=workspace).info.get("task")
            or "classification"
        )
    except LoopmlError:
        return get_version(name, workspace=workspace).info.get("task") or "classification"


def _versions(traffic: Traffic) -> list[int]:
    """Versions that answered in the window, the busiest first."""
    if not traffic.has("predictions", "version"):
        return []
    rows = traffic.rows(
        f"SELECT version, count(*) AS n FROM predictions WHERE {traffic.answered()} AND "
        f"{traffic.bounds()} GROUP BY version ORDER BY n DESC, version DESC"
    )
    return [int(version) for version, _ in rows if version is not None]


def _reference(name: str, version: int, workspace: Workspace) -> Reference | None:
    try:
        return get_reference(f"{name}@{version}", workspace=workspace)
    except LoopmlError:
        return None


def _scan(traffic: Traffic, reference: Reference | None, versions: list[int], seed: int) -> Seen:
    """One pass over the window's answered rows: the inputs' profile, each version's score
    profile and a random sample of rows."""
    logged = [c[len("input.") :] for c in traffic.columns["predictions"] if c.startswith("input.")]
    wanted = reference.features if reference is not None else logged
    present = [n for n in wanted if n in logged]
    missing = [n for n in wanted if n not in logged]
    inputs, scores, sample, rows = Profile(), {}, Reservoir(SAMPLE, seed), 0
    if not versions or not traffic.has("predictions", "output.score"):
        return Seen(0, inputs, scores, sample.frame(), missing)
    columns = ", ".join(
        [f"{quoted_column('input.' + n)} AS {quoted_column(n)}" for n in present]
        + [f'"output.score" AS {SCORE}', "version"]
    )
    query = f"SELECT {columns} FROM predictions WHERE {traffic.answered()} AND {traffic.bounds()}"
    for batch in traffic.batches(query):
        table = pa.Table.from_batches([batch])
        rows += table.num_rows
        if present:
            inputs.partial_fit(table.select(present))
        _add_scores(scores, table)
        sample.add(table.drop_columns(["version"]))
    return Seen(rows, inputs, scores, sample.frame(), missing)


def _add_scores(scores: dict[int, Profile], table: pa.Table) -> None:
    version = table.column("version")
    for value in pc.unique(version).to_pylist():
        if value is None:
            continue
        chosen = table.filter(pc.equal(version, value)).select([SCORE]).rename_columns(["score"])
        scores.setdefault(int(value), Profile()).partial_fit(chosen)


def _store(
    name: str, start: float, end: float, label: str | None, found: _Found, workspace: Workspace
) -> MonitorResult:
    points = list({(p.metric, p.key): p for check in found.checks for p in check.points}.values())
    report = {
        "endpoint": name,
        "start": start,
        "end": end,
        "label": label,
        "checks": [check.to_dict() for check in found.checks],
        "profiles": _profiles(found.seen, workspace),
    }
    digest = workspace.artifacts.put_bytes(json.dumps(report, default=_plain).encode())
    record = WindowRecord(
        id=new_id(),
        endpoint=name,
        start=start,
        end=end,
        at=time.time(),
        label=label,
        versions=found.versions,
        rows=found.rows,
        status=found.status,
        message=found.message,
        report_digest=digest,
        points=points,
    )
    ops.add_window(workspace.metadata, name, record)
    return MonitorResult(record, found.checks)


def _profiles(seen: Seen | None, workspace: Workspace) -> str | None:
    """The digest of the window's binned profiles, kept for the windows after it."""
    if seen is None or not seen.rows:
        return None
    return workspace.artifacts.put_bytes(rolling.profiles_bytes(seen))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
