"""What each page shows, read from the workspace's operations: plain values for the
templates, no HTML. Bad input (a malformed filter) comes back as the message to show in
place; an unknown id raises the store's NotFoundError, which the routes answer with 404."""

from __future__ import annotations

import re
import statistics
from typing import Any

from loopml import errors
from loopml.store.pages import every
from loopml.store.records import ArtifactRecord, RunRecord
from loopml.tracking import operations as ops
from loopml.tracking.api import search_runs
from loopml.workspace import Workspace

RUNS_PAGE = 50  # runs per page of the runs table
MAX_CHART_METRICS = 12  # metrics on one chart
MAX_GROUPED = 100_000  # runs a grouping reads at most
MAX_COMPARED = 12  # runs side by side
_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def experiments(workspace: Workspace) -> dict[str, Any]:
    """Every experiment with its number of runs."""
    return {"experiments": list(every(ops.list_experiments, workspace.metadata))}


def runs_table(
    workspace: Workspace, experiment: str, where: str, sort: str, cursor: str
) -> dict[str, Any]:
    """One page of an experiment's runs, filtered with --where and sorted with --sort, with
    the params and metrics its runs hold as columns."""
    store = workspace.metadata
    shown = {"experiment": experiment, "where": where, "sort": sort, "cursor": cursor}
    try:
        page = ops.search_runs(
            store,
            experiment=experiment,
            where=where.strip() or None,
            sort=[sort] if sort.strip() else None,
            page_size=RUNS_PAGE,
            cursor=cursor or None,
        )
    except errors.NotFoundError:
        raise  # an unknown experiment: a page that says so
    except errors.UsageError as error:  # a malformed filter, sort or cursor, shown in place
        return {**shown, "error": str(error), "runs": [], "params": [], "metrics": [], "next": None}
    return {
        **shown,
        "error": None,
        "runs": page.runs,
        "params": [_field("params", k) for k in sorted({k for r in page.runs for k in r.params})],
        "metrics": [
            _field("metrics", k) for k in sorted({k for r in page.runs for k in r.metrics})
        ],
        "next": page.next_cursor,
        "running": any(run.status == "running" for run in page.runs),
    }


def _field(namespace: str, name: str) -> dict[str, str]:
    """A params or metrics column: its name, and its field in --where and --sort."""
    quoted = name if _BARE.fullmatch(name) else f"`{name}`"
    return {"name": name, "field": f"{namespace}.{quoted}"}


def groups(workspace: Workspace, experiment: str, where: str, by: str) -> dict[str, Any]:
    """The runs that match, grouped by one param's value: how many, and each metric's mean
    and standard deviation across them (over seeds, say)."""
    query = where.strip() or None
    found = search_runs(experiment, where=query, limit=MAX_GROUPED, workspace=workspace)
    metrics = sorted({key for run in found for key in run.metrics})
    grouped: dict[str, list[RunRecord]] = {}
    for run in found:
        grouped.setdefault(str(run.params.get(by, "(none)")), []).append(run)
    rows = [
        {
            "value": value,
            "count": len(members),
            "metrics": {
                key: _spread([r.metrics[key] for r in members if key in r.metrics])
                for key in metrics
            },
        }
        for value, members in sorted(grouped.items(), key=lambda item: _order(item[0]))
    ]
    return {"by": by, "metrics": metrics, "groups": rows, "truncated": len(found) >= MAX_GROUPED}


def _spread(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"mean": None, "std": None, "n": 0}
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "n": len(values),
    }


def _order(value: str) -> tuple[int, float, str]:
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def run(workspace: Workspace, run_id: str) -> dict[str, Any]:
    """A run with what it holds: params, metrics, tags, artifacts, its parent and children."""
    store = workspace.metadata
    found: RunRecord = ops.get_run(store, run_id)
    artifacts = list(every(ops.list_artifacts, store, found.id))
    return {
        "run": found,
        "parent": ops.get_run(store, found.parent_id) if found.parent_id else None,
        "children": list(every(ops.child_runs, store, found.id)),
        "outputs": [a for a in artifacts if a.direction == "output"],
        "inputs": [a for a in artifacts if a.direction == "input"],
        "metrics": ops.metric_summaries(store, found.id),
    }


def compare(workspace: Workspace, run_ids: list[str]) -> dict[str, Any]:
    """Runs side by side: each param and latest metric a row, a run a column, and whether
    the runs agree on it."""
    if not 2 <= len(run_ids) <= MAX_COMPARED:
        raise errors.UsageError(
            f"Choose 2 to {MAX_COMPARED} runs to compare, not {len(run_ids)}: tick them in a "
            "runs table."
        )
    runs = [ops.get_run(workspace.metadata, run_id) for run_id in run_ids]
    return {
        "runs": runs,
        "params": _rows([run.params for run in runs]),
        "metrics": _rows([run.metrics for run in runs]),
        "charted": sorted({key for run in runs for key in run.metrics}),
    }


def _rows(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per key: its value in each run (None where a run lacks it), and whether
    they are all the same."""
    keys = sorted({key for found in values for key in found})
    rows = []
    for key in keys:
        cells = [found.get(key) for found in values]
        rows.append({"key": key, "values": cells, "same": all(c == cells[0] for c in cells)})
    return rows


def metric_series(workspace: Workspace, run_id: str, keys: list[str]) -> dict[str, Any]:
    """Every logged value of some metrics of a run, by step, as columns: every point, none
    sampled away, so a spike shows (none for a metric the run does not have)."""
    store = workspace.metadata
    known = {m.key for m in ops.metric_summaries(store, run_id)}
    series = {}
    for key in keys[:MAX_CHART_METRICS]:
        points = ops.metric_history(store, run_id, key) if key in known else []
        series[key] = {
            "step": [p.step for p in points],
            "time": [p.timestamp for p in points],
            "value": [p.value for p in points],
        }
    return series


def artifact(workspace: Workspace, run_id: str, name: str) -> ArtifactRecord:
    """A run's output artifact, by name."""
    return ops.get_output(workspace.metadata, run_id, name)
