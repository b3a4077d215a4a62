"""Logged models: a named folder of a run's output artifacts that MLflow's client logged as a
model (``mlflow.sklearn.log_model``), with the status, tags and params MLflow keeps for it.

The files are ordinary outputs of the run, named ``<model name>/<path>``; these operations
keep only what MLflow says about the folder.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Annotated, Literal

import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.engine import Connection

from loopml.errors import LoggedModelNotFoundError
from loopml.store import runs as runs_repo
from loopml.store.operations import operation
from loopml.store.schema import logged_models, runs
from loopml.tracking.operations import Key, RunId, Text

Status = Literal["pending", "ready", "failed"]
ModelId = Annotated[str, Field(pattern=r"^m-[0-9a-f]{32}$")]
PAGE = 100


@dataclass(frozen=True)
class LoggedModelRecord:
    """A model a run logged: its files are the run's outputs under ``name/``."""

    id: str
    experiment_id: str
    run_id: str
    name: str
    model_type: str | None
    status: str
    created_at: float
    updated_at: float
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoggedModelPage:
    """One page of a search, and the cursor of the next (None at the end)."""

    models: list[LoggedModelRecord]
    next_cursor: str | None = None


@operation("POST /logged-models")
def create_logged_model(
    connection: Connection,
    run_id: RunId,
    name: Key,
    model_type: Text | None = None,
    tags: dict[Key, Text] | None = None,
    params: dict[Key, Text] | None = None,
) -> LoggedModelRecord:
    """Start a logged model of a run (status pending until its files are uploaded)."""
    full_id = runs_repo.resolve_id(connection, run_id)
    experiment_id = connection.execute(
        sa.select(runs.c.experiment_id).where(runs.c.id == full_id)
    ).scalar_one()
    now = time.time()
    row = {
        "id": f"m-{secrets.token_hex(16)}",
        "experiment_id": experiment_id,
        "run_id": full_id,
        "name": name,
        "model_type": model_type,
        "status": "pending",
        "created_at": now,
        "updated_at": now,
        "tags": json.dumps(tags or {}),
        "params": json.dumps(params or {}),
    }
    connection.execute(logged_models.insert().values(row))
    return _record(row)


@operation("GET /logged-models/{model_id}")
def get_logged_model(connection: Connection, model_id: str) -> LoggedModelRecord:
    """A logged model by its id."""
    row = (
        connection.execute(sa.select(logged_models).where(logged_models.c.id == model_id))
        .mappings()
        .first()
    )
    if row is None:
        raise LoggedModelNotFoundError(f"No logged model has the id {model_id!r}.")
    return _record(row)


@operation("PATCH /logged-models/{model_id}")
def update_logged_model(
    connection: Connection,
    model_id: str,
    status: Status | None = None,
    tags: dict[Key, Text] | None = None,
    params: dict[Key, Text] | None = None,
) -> LoggedModelRecord:
    """Set a logged model's status, and add to its tags and params."""
    found = get_logged_model.function(connection, model_id)
    changes = {
        "status": status or found.status,
        "tags": json.dumps({**found.tags, **(tags or {})}),
        "params": json.dumps({**found.params, **(params or {})}),
        "updated_at": time.time(),
    }
    connection.execute(logged_models.update().where(logged_models.c.id == model_id).values(changes))
    return get_logged_model.function(connection, model_id)


@operation("POST /logged-models/search", role="viewer", write=False)
def search_logged_models(
    connection: Connection,
    experiment_ids: list[str] | None = None,
    name: str | None = None,
    run_id: str | None = None,
    page_size: Annotated[int, Field(ge=1, le=10_000)] = PAGE,
    cursor: str | None = None,
) -> LoggedModelPage:
    """Logged models of these experiments (all by default), of one name or run, newest
    first, a page at a time."""
    c = logged_models.c
    query = sa.select(logged_models).order_by(c.created_at.desc(), c.id)
    if experiment_ids is not None:
        query = query.where(c.experiment_id.in_(experiment_ids))
    if name is not None:
        query = query.where(c.name == name)
    if run_id is not None:
        query = query.where(c.run_id == runs_repo.resolve_id(connection, run_id))
    offset = int(cursor) if cursor and cursor.isdigit() else 0
    rows = connection.execute(query.offset(offset).limit(page_size + 1)).mappings().all()
    following = str(offset + page_size) if len(rows) > page_size else None
    return LoggedModelPage([_record(r) for r in rows[:page_size]], following)


def _record(row: object) -> LoggedModelRecord:
    values = dict(row)  # type: ignore[call-overload]
    values["tags"] = json.loads(values["tags"])
    values["params"] = json.loads(values["params"])
    return LoggedModelRecord(**values)
