"""The tracking functions of the public API: start runs, find them, read what they stored."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loopml.errors import UsageError
from loopml.ids import new_id
from loopml.store.pages import every
from loopml.store.records import (
    ArtifactRecord,
    ExperimentRecord,
    MetricPoint,
    MetricSummary,
    RunRecord,
)
from loopml.tracking import artifacts as content
from loopml.tracking import environment
from loopml.tracking import operations as ops
from loopml.tracking.context import active_run, push
from loopml.tracking.run import Run, flusher_of
from loopml.tracking.validation import as_int64, check_keys, check_name, check_tag_values
from loopml.workspace import Workspace, context_workspace, current_workspace


class _Active:
    def __repr__(self) -> str:
        return "<the active run>"


ACTIVE: Any = _Active()


def start_run(
    experiment: str | None = None,
    *,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    seed: int | None = None,
    parent: Run | str | None = ACTIVE,
    workspace: Workspace | None = None,
) -> Run:
    """Start a run; use it in a with block so an exception marks it failed.

    A run started while another is active in the same context is nested under it, unless
    parent=None. Its experiment defaults to the parent's, then to the 'experiment' setting.
    """
    target, parent = _placement(workspace, parent)
    parent_id = parent.id if isinstance(parent, Run) else parent
    if experiment is None and isinstance(parent, Run):
        experiment = parent.experiment
    experiment = experiment or target.settings.experiment
    check_name(experiment, "experiment name")
    check_name(name, "run name")
    if seed is not None:
        seed = as_int64(seed, "seed")
    check_keys(params or {}, "param")
    check_keys(tags or {}, "tag")
    check_tag_values(tags or {})
    run = _create(target, experiment, name, parent_id, seed, params or {}, tags or {})
    flusher_of(target).add(run)
    push(run)
    return run


def _placement(
    workspace: Workspace | None, parent: Run | str | None
) -> tuple[Workspace, Run | str | None]:
    """The workspace a new run goes to, and the run it nests under.

    An explicit workspace, else the one set by use_workspace, else the active run's, else the
    configured one. A run nests implicitly only under an active run of the same workspace.
    """
    active = active_run() if parent is ACTIVE else None
    target = workspace or context_workspace() or (active.workspace if active else None)
    target = target or current_workspace()
    if parent is ACTIVE:
        return target, active if active is not None and active.workspace is target else None
    if isinstance(parent, Run) and parent.workspace is not target:
        raise UsageError(
            f"Run {parent.id} lives in another workspace ({parent.workspace.metadata.url}) "
            f"than the new run ({target.metadata.url}); a run can only nest under a run of "
            "its own workspace."
        )
    return target, parent


def _create(
    workspace: Workspace,
    experiment: str,
    name: str | None,
    parent_id: str | None,
    seed: int | None,
    params: Mapping[str, Any],
    tags: Mapping[str, Any],
) -> Run:
    settings = workspace.settings
    env = environment.capture(git=settings.capture_git, packages=settings.capture_packages)
    run_id, now = new_id(), time.time()
    new = ops.NewRun(
        id=run_id,
        experiment=experiment,
        start_time=now,
        host=env.host,
        pid=env.pid,
        user=env.user,
        command=env.command,
        python_version=env.python_version,
        name=name,
        parent_id=parent_id,
        seed=seed,
        git_commit=env.git_commit,
        git_dirty=env.git_dirty,
        environment_id=env.environment_id,
    )
    parent_id = ops.create_run(
        workspace.metadata, new, dict(params), dict(tags), env.environment_json
    )
    return Run(workspace, run_id, experiment=experiment, name=name, parent_id=parent_id, seed=seed)


def get_run(run_id: str, *, workspace: Workspace | None = None) -> RunRecord:
    """The stored record of a run, by id or unique id prefix."""
    return ops.get_run((workspace or current_workspace()).metadata, run_id)


def search_runs(
    experiment: str | None = None,
    *,
    where: str | None = None,
    sort: str | list[str] | None = None,
    limit: int | None = None,
    parent: str | None = None,
    workspace: Workspace | None = None,
) -> list[RunRecord]:
    """Runs that match a --where expression, in --sort order (newest first by default).

    Example: search_runs("flights", where="metrics.auc > 0.7 and params.lr = 0.1",
    sort="-metrics.auc").
    """
    store = (workspace or current_workspace()).metadata
    if limit is not None and limit < 0:
        raise UsageError(f"limit must be zero or more, not {limit}.")
    sort = [sort] if isinstance(sort, str) else sort
    found: list[RunRecord] = []
    cursor: str | None = None
    while limit is None or len(found) < limit:
        size = ops.PAGE if limit is None else min(ops.MAX_PAGE, limit - len(found))
        page = ops.search_runs(store, experiment, where, sort, parent, size, cursor)
        found += page.runs
        cursor = page.next_cursor
        if cursor is None:
            break
    return found


def list_experiments(*, workspace: Workspace | None = None) -> list[ExperimentRecord]:
    """Every experiment with its number of runs."""
    return list(every(ops.list_experiments, (workspace or current_workspace()).metadata))


def child_runs(run_id: str, *, workspace: Workspace | None = None) -> list[RunRecord]:
    """The runs nested directly under a run, oldest first."""
    return list(every(ops.child_runs, (workspace or current_workspace()).metadata, run_id))


def metric_summaries(run_id: str, *, workspace: Workspace | None = None) -> list[MetricSummary]:
    """Latest value, step and number of values of each metric of a run."""
    return ops.metric_summaries((workspace or current_workspace()).metadata, run_id)


def metric_history(
    run_id: str, key: str, *, workspace: Workspace | None = None
) -> list[MetricPoint]:
    """Every logged value of one metric of a run, by step."""
    return ops.metric_history((workspace or current_workspace()).metadata, run_id, key)


def list_artifacts(run_id: str, *, workspace: Workspace | None = None) -> list[ArtifactRecord]:
    """Everything a run wrote (outputs) and read (inputs)."""
    return list(every(ops.list_artifacts, (workspace or current_workspace()).metadata, run_id))


def load_artifact(
    run_id: str,
    name: str,
    *,
    destination: str | Path | None = None,
    workspace: Workspace | None = None,
) -> Any:
    """An output of a run, verified against its hash: a local path for files and folders
    (copied to destination, or to a new temporary folder), else the stored object."""
    workspace = workspace or current_workspace()
    record = ops.get_output(workspace.metadata, run_id, name)
    return content.load(workspace.artifacts, record, destination)


def download_artifact(
    run_id: str, name: str, destination: str | Path, *, workspace: Workspace | None = None
) -> Path:
    """Copy an output of a run, as stored, to a local path (objects as their pickle bytes)."""
    workspace = workspace or current_workspace()
    record = ops.get_output(workspace.metadata, run_id, name)
    return content.materialize(workspace.artifacts, record, destination)


def lineage(digest: str, *, workspace: Workspace | None = None) -> dict[str, list[ArtifactRecord]]:
    """Which runs wrote and which read the content with this sha256."""
    return ops.lineage((workspace or current_workspace()).metadata, digest)


def run_environment(run_id: str, *, workspace: Workspace | None = None) -> dict[str, Any] | None:
    """The interpreter, platform and installed packages recorded with a run."""
    return ops.run_environment((workspace or current_workspace()).metadata, run_id)
