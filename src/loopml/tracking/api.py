"""The tracking functions of the public API: start runs, find them, read what they stored."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loopml.errors import ArtifactNotFoundError, UsageError
from loopml.ids import new_id
from loopml.store import experiments as experiments_repo
from loopml.store import lineage as lineage_repo
from loopml.store import metrics as metrics_repo
from loopml.store import query as query_repo
from loopml.store import runs as runs_repo
from loopml.store.records import (
    ArtifactRecord,
    ExperimentRecord,
    MetricPoint,
    MetricSummary,
    RunRecord,
)
from loopml.tracking import artifacts as content
from loopml.tracking import environment
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
    run = Run(workspace, run_id, experiment=experiment, name=name, parent_id=parent_id, seed=seed)
    with workspace.metadata.write() as connection:
        if parent_id is not None:
            parent_id = runs_repo.resolve_id(connection, parent_id)
            run.parent_id = parent_id
        if env.environment_id is not None:
            runs_repo.insert_environment(connection, env.environment_id, env.environment_json or "")
        runs_repo.insert_run(
            connection,
            {
                "id": run_id,
                "experiment_id": experiments_repo.get_or_create(connection, experiment, now),
                "parent_id": parent_id,
                "name": name,
                "status": "running",
                "start_time": now,
                "heartbeat_at": now,
                "seed": seed,
                "git_commit": env.git_commit,
                "git_dirty": env.git_dirty,
                "host": env.host,
                "pid": env.pid,
                "user_name": env.user,
                "command": env.command,
                "python_version": env.python_version,
                "environment_id": env.environment_id,
            },
        )
        runs_repo.log_params(connection, run_id, params)
        runs_repo.set_tags(connection, run_id, tags)
    return run


def get_run(run_id: str, *, workspace: Workspace | None = None) -> RunRecord:
    """The stored record of a run, by id or unique id prefix."""
    workspace = workspace or current_workspace()
    with workspace.metadata.read() as connection:
        full_id = runs_repo.resolve_id(connection, run_id)
        return runs_repo.load_runs(connection, [full_id])[0]


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
    workspace = workspace or current_workspace()
    if limit is not None and limit < 0:
        raise UsageError(f"limit must be zero or more, not {limit}.")
    with workspace.metadata.read() as connection:
        experiment_ids = None
        if experiment is not None:
            experiment_ids = [experiments_repo.require(connection, experiment)]
        parent_id = runs_repo.resolve_id(connection, parent) if parent else None
        ids = query_repo.search(
            connection,
            experiment_ids=experiment_ids,
            where=where,
            sort=sort,
            limit=limit,
            parent_id=parent_id,
        )
        return runs_repo.load_runs(connection, ids)


def list_experiments(*, workspace: Workspace | None = None) -> list[ExperimentRecord]:
    """Every experiment with its number of runs."""
    workspace = workspace or current_workspace()
    with workspace.metadata.read() as connection:
        return experiments_repo.list_all(connection)


def child_runs(run_id: str, *, workspace: Workspace | None = None) -> list[RunRecord]:
    """The runs nested directly under a run, oldest first."""
    workspace = workspace or current_workspace()
    with workspace.metadata.read() as connection:
        full_id = runs_repo.resolve_id(connection, run_id)
        return runs_repo.load_runs(connection, runs_repo.child_ids(connection, full_id))


def metric_summaries(run_id: str, *, workspace: Workspace | None = None) -> list[MetricSummary]:
    """Latest value, step and number of values of each metric of a run."""
    workspace = workspace or current_workspace()
    with workspace.metadata.read() as connection:
        return metrics_repo.summaries(connection, runs_repo.resolve_id(connection, run_id))


def metric_history(
    run_id: str, key: str, *, workspace: Workspace | None = None
) -> list[MetricPoint]:
    """Every logged value of one metric of a run, by step."""
    workspace = workspace or current_workspace()
    with workspace.metadata.read() as connection:
        return metrics_repo.history(connection, runs_repo.resolve_id(connection, run_id), key)


def list_artifacts(run_id: str, *, workspace: Workspace | None = None) -> list[ArtifactRecord]:
    """Everything a run wrote (outputs) and read (inputs)."""
    workspace = workspace or current_workspace()
    with workspace.metadata.read() as connection:
        return lineage_repo.for_run(connection, runs_repo.resolve_id(connection, run_id))


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
    record = _output(workspace, run_id, name)
    return content.load(workspace.artifacts, record, destination)


def download_artifact(
    run_id: str, name: str, destination: str | Path, *, workspace: Workspace | None = None
) -> Path:
    """Copy an output of a run, as stored, to a local path (objects as their pickle bytes)."""
    workspace = workspace or current_workspace()
    record = _output(workspace, run_id, name)
    return content.materialize(workspace.artifacts, record, destination)


def _output(workspace: Workspace, run_id: str, name: str) -> ArtifactRecord:
    with workspace.metadata.read() as connection:
        full_id = runs_repo.resolve_id(connection, run_id)
        record = lineage_repo.find(connection, full_id, "output", name)
        if record is None:
            names = [a.name for a in lineage_repo.for_run(connection, full_id)]
            raise ArtifactNotFoundError(
                f"Run {full_id} has no output artifact named {name!r}. Its artifacts: "
                f"{', '.join(map(repr, names)) or 'none'}."
            )
    return record


def lineage(digest: str, *, workspace: Workspace | None = None) -> dict[str, list[ArtifactRecord]]:
    """Which runs wrote and which read the content with this sha256."""
    workspace = workspace or current_workspace()
    with workspace.metadata.read() as connection:
        return {
            "written_by": lineage_repo.by_digest(connection, digest, "output"),
            "read_by": lineage_repo.by_digest(connection, digest, "input"),
        }


def run_environment(run_id: str, *, workspace: Workspace | None = None) -> dict[str, Any] | None:
    """The interpreter, platform and installed packages recorded with a run."""
    workspace = workspace or current_workspace()
    with workspace.metadata.read() as connection:
        record = runs_repo.load_runs(connection, [runs_repo.resolve_id(connection, run_id)])
        if not record or record[0].environment_id is None:
            return None
        text = runs_repo.get_environment(connection, record[0].environment_id)
    return None if text is None else json.loads(text)
