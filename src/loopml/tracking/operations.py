"""The tracking operations of the metadata store: experiments, runs, params, tags, metrics and
lineage, each one unit of work (see loopml.store.operations).

Every operation checks what it is given as the SDK does, so a caller of the HTTP API cannot
store what ``loopml.start_run`` would refuse.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field
from sqlalchemy.engine import Connection

from loopml.errors import ArtifactExistsError, ArtifactNotFoundError, RunStateError, UsageError
from loopml.store import experiments as experiments_repo
from loopml.store import lineage as lineage_repo
from loopml.store import metrics as metrics_repo
from loopml.store import query as query_repo
from loopml.store import runs as runs_repo
from loopml.store import steps as cache_repo
from loopml.store.operations import current_actor, operation
from loopml.store.pages import (
    MAX_PAGE,
    PAGE,
    Cursor,
    Page,
    PageSize,
    decode_position,
    encode,
    page,
)
from loopml.store.records import (
    ENDED_STATUSES,
    ArtifactRecord,
    ExperimentRecord,
    MetricPoint,
    MetricSummary,
    RunRecord,
)
from loopml.store.steps import CacheEntry
from loopml.tracking.validation import (
    INT64,
    MAX_KEY_LENGTH,
    STEPS,
    check_keys,
    check_tag_values,
    metric_value,
)

# What a caller of the HTTP API may send: the limits of both SQL backends (see validation).
NO_NUL = r"^[^\x00]*$"
Key = Annotated[str, Field(min_length=1, max_length=MAX_KEY_LENGTH, pattern=NO_NUL)]
Name = Annotated[str, Field(max_length=MAX_KEY_LENGTH, pattern=NO_NUL)]
Text = Annotated[str, Field(pattern=NO_NUL)]
RunId = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
Int64 = Annotated[int, Field(ge=INT64[0], le=INT64[1])]
Step = Annotated[int, Field(ge=STEPS[0], le=STEPS[1])]
Moment = Annotated[float, Field(allow_inf_nan=False)]
MetricValue = tuple[Key, float, Step, Moment]


@dataclass(frozen=True)
class NewRun:
    """What a run is started with: where it runs and what it runs."""

    id: RunId
    experiment: Key
    start_time: Moment
    host: Name
    pid: Annotated[int, Field(ge=0, le=2**31 - 1)]
    user: Name
    command: Text
    python_version: Annotated[str, Field(max_length=32, pattern=NO_NUL)]
    name: Name | None = None
    parent_id: Annotated[str, Field(min_length=1, max_length=16)] | None = None
    seed: Int64 | None = None
    git_commit: Annotated[str, Field(max_length=64, pattern=NO_NUL)] | None = None
    git_dirty: bool | None = None
    environment_id: Annotated[str, Field(pattern=r"^[0-9a-f]{1,64}$")] | None = None


@dataclass(frozen=True)
class Link:
    """Stored content a run read ('input') or wrote ('output'), by its sha256."""

    direction: Literal["input", "output"]
    name: Key
    digest: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    kind: Annotated[str, Field(max_length=16, pattern=NO_NUL)]
    size: Annotated[int, Field(ge=0, le=INT64[1])]
    source: Text | None = None


@dataclass(frozen=True)
class RunPage:
    """One page of a search: the runs, and the cursor of the next page (None at the end)."""

    runs: list[RunRecord]
    next_cursor: str | None = None


@operation("POST /runs")
def create_run(
    connection: Connection,
    run: NewRun,
    params: dict[Key, Any],
    tags: dict[Key, Text],
    environment: Text | None = None,
) -> str | None:
    """Start a run (status running) with its params and tags; returns its parent's full id."""
    check_keys(params, "param")
    check_keys(tags, "tag")
    check_tag_values(tags)
    if runs_repo.load_runs(connection, [run.id]):
        raise UsageError(f"A run with the id {run.id} exists already: start it with a new id.")
    parent_id = runs_repo.resolve_id(connection, run.parent_id) if run.parent_id else None
    if run.environment_id is not None:
        runs_repo.insert_environment(connection, run.environment_id, environment or "")
    row = {**vars(run), "user_name": current_actor(run.user), "parent_id": parent_id}
    del row["user"], row["experiment"]
    row["experiment_id"] = experiments_repo.get_or_create(connection, run.experiment, time.time())
    runs_repo.insert_run(connection, {**row, "status": "running", "heartbeat_at": run.start_time})
    runs_repo.log_params(connection, run.id, params)
    runs_repo.set_tags(connection, run.id, tags)
    return parent_id


@operation("POST /runs/{run_id}/params")
def log_params(connection: Connection, run_id: str, values: dict[Key, Any]) -> None:
    """Record params; the same value again is fine, a different one is refused."""
    check_keys(values, "param")
    runs_repo.log_params(connection, runs_repo.resolve_id(connection, run_id), values)


@operation("POST /runs/{run_id}/tags")
def set_tags(connection: Connection, run_id: str, values: dict[Key, Text]) -> None:
    """Set tags, replacing earlier values of the same keys (allowed after the run ended)."""
    check_keys(values, "tag")
    check_tag_values(values)
    runs_repo.set_tags(connection, runs_repo.resolve_id(connection, run_id), values)


@operation("POST /runs/{run_id}/metrics")
def log_metrics(connection: Connection, run_id: str, values: list[MetricValue]) -> None:
    """Append metric values, each (key, value, step, timestamp), in one transaction."""
    full_id = runs_repo.resolve_id(connection, run_id)
    for key, value, _step, _moment in values:
        metric_value(key, value, full_id)
    metrics_repo.insert_values(connection, full_id, values)


@operation("POST /runs/{run_id}/artifacts")
def link_artifact(connection: Connection, run_id: str, link: Link) -> ArtifactRecord:
    """Record that a run read or wrote stored content; the same link again is a no-op."""
    return _link(connection, runs_repo.resolve_id(connection, run_id), link)


@operation("POST /runs/{run_id}/end")
def end_run(connection: Connection, run_id: str, status: str, error: Text | None = None) -> None:
    """Record how a run ended, now."""
    _check_status(run_id, status)
    runs_repo.end_run(
        connection, runs_repo.resolve_id(connection, run_id), status, time.time(), error
    )


@operation("POST /runs/{run_id}/finish")
def finish_run(
    connection: Connection,
    run_id: str,
    status: str,
    tags: dict[Key, Text],
    links: list[Link],
    metrics: list[MetricValue],
    error: Text | None = None,
    cache: CacheEntry | None = None,
) -> None:
    """End a run with its tags, lineage links and last metric values in one transaction, and
    record the step-cache entry it produced, if any."""
    _check_status(run_id, status)
    check_keys(tags, "tag")
    check_tag_values(tags)
    full_id = runs_repo.resolve_id(connection, run_id)
    runs_repo.set_tags(connection, full_id, tags)
    for link in links:
        _link(connection, full_id, link)
    metrics_repo.insert_values(connection, full_id, metrics)
    if cache is not None:
        cache_repo.put(connection, cache)
    runs_repo.end_run(connection, full_id, status, time.time(), error)


@operation("POST /runs/heartbeat")
def heartbeat(connection: Connection, run_ids: list[str]) -> None:
    """Mark these running runs as alive now."""
    runs_repo.heartbeat(connection, run_ids, time.time())


@operation("GET /runs/{run_id}")
def get_run(connection: Connection, run_id: str) -> RunRecord:
    """A run by its id or a unique prefix of it."""
    return runs_repo.load_runs(connection, [runs_repo.resolve_id(connection, run_id)])[0]


@operation("POST /runs/search", role="viewer", write=False)
def search_runs(
    connection: Connection,
    experiment: str | None = None,
    where: str | None = None,
    sort: list[str] | None = None,
    parent: str | None = None,
    page_size: int = PAGE,
    cursor: str | None = None,
) -> RunPage:
    """Runs that match a --where expression, in --sort order (newest first by default), a page
    at a time: give a page's next_cursor to get the next one."""
    if not 1 <= page_size <= MAX_PAGE:
        raise UsageError(f"page_size must be between 1 and {MAX_PAGE:,}, not {page_size}.")
    experiment_ids = None
    if experiment is not None:
        experiment_ids = [experiments_repo.require(connection, experiment)]
    parent_id = runs_repo.resolve_id(connection, parent) if parent else None
    offset = _offset(cursor)
    ids = query_repo.search(
        connection,
        experiment_ids=experiment_ids,
        where=where,
        sort=sort or None,
        limit=offset + page_size + 1,
        parent_id=parent_id,
    )[offset:]
    following = encode({"offset": offset + page_size}) if len(ids) > page_size else None
    return RunPage(runs_repo.load_runs(connection, ids[:page_size]), following)


@operation("POST /experiments")
def create_experiment(connection: Connection, name: Key) -> ExperimentRecord:
    """The experiment called name, made now if it does not exist."""
    experiments_repo.get_or_create(connection, name, time.time())
    return experiments_repo.list_all(connection, [name])[0]


@operation("POST /experiments/find", role="viewer", write=False)
def find_experiments(
    connection: Connection, names: list[str] | None = None, ids: list[str] | None = None
) -> list[ExperimentRecord]:
    """The experiments of these names or ids (those that exist), with their numbers of runs."""
    return experiments_repo.list_all(connection, names or [], ids or [])


@operation("GET /experiments")
def list_experiments(
    connection: Connection, page_size: PageSize = PAGE, cursor: Cursor | None = None
) -> Page[ExperimentRecord]:
    """The experiments with their number of runs, by name, a page at a time."""
    found = experiments_repo.list_all(connection, cursor=cursor, size=page_size)
    return page(found, page_size, lambda e: (e.name,))


@operation("GET /runs/{run_id}/children")
def child_runs(
    connection: Connection, run_id: str, page_size: PageSize = PAGE, cursor: Cursor | None = None
) -> Page[RunRecord]:
    """The runs nested directly under a run, oldest first, a page at a time."""
    full_id = runs_repo.resolve_id(connection, run_id)
    found = runs_repo.load_runs(
        connection, runs_repo.child_ids(connection, full_id, cursor, page_size)
    )
    return page(found, page_size, lambda r: (r.start_time, r.id))


@operation("GET /runs/{run_id}/metrics")
def metric_summaries(connection: Connection, run_id: str) -> list[MetricSummary]:
    """Latest value, step and number of values of each metric of a run."""
    return metrics_repo.summaries(connection, runs_repo.resolve_id(connection, run_id))


@operation("POST /runs/latest-metrics", role="viewer", write=False)
def latest_metrics(
    connection: Connection, run_ids: Annotated[list[RunId], Field(max_length=MAX_PAGE)]
) -> dict[str, list[MetricSummary]]:
    """The latest value, step and count of every metric of each of these runs."""
    return metrics_repo.summaries_of(connection, run_ids)


@operation("GET /runs/{run_id}/metrics/{key:path}")
def metric_history(
    connection: Connection,
    run_id: str,
    key: str,
    offset: Annotated[int, Field(ge=0, le=INT64[1])] = 0,
    limit: Annotated[int, Field(ge=1, le=INT64[1])] | None = None,
) -> list[MetricPoint]:
    """The logged values of one metric of a run, by step: every one, or ``limit`` of them
    after the first ``offset``."""
    full_id = runs_repo.resolve_id(connection, run_id)
    return metrics_repo.history(connection, full_id, key, offset, limit)


@operation("GET /runs/{run_id}/artifacts")
def list_artifacts(
    connection: Connection, run_id: str, page_size: PageSize = PAGE, cursor: Cursor | None = None
) -> Page[ArtifactRecord]:
    """What a run wrote (outputs, first) and read (inputs), by name, a page at a time."""
    full_id = runs_repo.resolve_id(connection, run_id)
    found = lineage_repo.for_run(connection, full_id, cursor, page_size)
    return page(found, page_size, lambda a: (a.direction, a.name))


@operation("GET /runs/{run_id}/outputs/{name:path}")
def get_output(connection: Connection, run_id: str, name: str) -> ArtifactRecord:
    """An output artifact of a run, by name."""
    full_id = runs_repo.resolve_id(connection, run_id)
    record = lineage_repo.find(connection, full_id, "output", name)
    if record is None:
        names = [a.name for a in lineage_repo.for_run(connection, full_id)]
        raise ArtifactNotFoundError(
            f"Run {full_id} has no output artifact named {name!r}. Its artifacts: "
            f"{', '.join(map(repr, names)) or 'none'}."
        )
    return record


@operation("GET /lineage/{digest}")
def lineage(connection: Connection, digest: str) -> dict[str, list[ArtifactRecord]]:
    """Which runs wrote and which read the content with this sha256."""
    return {
        "written_by": lineage_repo.by_digest(connection, digest, "output"),
        "read_by": lineage_repo.by_digest(connection, digest, "input"),
    }


@operation("GET /runs/{run_id}/environment")
def run_environment(connection: Connection, run_id: str) -> dict[str, Any] | None:
    """The interpreter, platform and installed packages recorded with a run."""
    record = runs_repo.load_runs(connection, [runs_repo.resolve_id(connection, run_id)])
    if not record or record[0].environment_id is None:
        return None
    text = runs_repo.get_environment(connection, record[0].environment_id)
    return None if text is None else json.loads(text)


@operation("GET /step-cache/{key}")
def find_cached(connection: Connection, key: str) -> CacheEntry | None:
    """The step-cache entry of a key, or None."""
    return cache_repo.find(connection, key)


@operation("DELETE /step-cache/{key}")
def forget_cached(connection: Connection, key: str) -> None:
    """Drop a step-cache key whose outputs are gone from the artifact store."""
    cache_repo.forget(connection, key)


def _check_status(run_id: str, status: str) -> None:
    if status not in ENDED_STATUSES:
        raise RunStateError(
            f"Cannot end run {run_id} as {status!r}: use one of {', '.join(ENDED_STATUSES)}."
        )


def _link(connection: Connection, run_id: str, link: Link) -> ArtifactRecord:
    record = ArtifactRecord(
        run_id,
        link.direction,
        link.name,
        link.digest,
        link.kind,
        link.size,
        link.source,
        time.time(),
    )
    existing = lineage_repo.find(connection, run_id, link.direction, link.name)
    if existing is None:
        lineage_repo.link(connection, record.to_dict())
        return record
    if existing.digest != link.digest:
        raise ArtifactExistsError(
            f"Run {run_id} already has an {link.direction} named {link.name!r} with other "
            f"content (sha256:{existing.digest[:12]}). Artifacts are immutable: give this one "
            "another name."
        )
    return existing


def _offset(cursor: str | None) -> int:
    offset = decode_position(cursor, "offset") if cursor else 0
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise UsageError(f"{cursor!r} is not a cursor this server gave: start from the first page.")
    return offset
