"""Repository functions for experiments."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loopml.errors import ExperimentNotFoundError
from loopml.ids import new_id
from loopml.store.metadata import insert_ignore
from loopml.store.pages import Sort, ordered
from loopml.store.records import ExperimentRecord
from loopml.store.schema import experiments, runs


def get_or_create(connection: Connection, name: str, now: float) -> str:
    """The id of the experiment called name, created if it does not exist."""
    found = find(connection, name)
    if found is not None:
        return found
    row = {"id": new_id(), "name": name, "created_at": now}
    insert_ignore(connection, experiments, [row], ["name"])
    return find(connection, name)  # type: ignore[return-value]  # exists now


def find(connection: Connection, name: str) -> str | None:
    """The id of the experiment called name, or None."""
    query = sa.select(experiments.c.id).where(experiments.c.name == name)
    return connection.execute(query).scalar()


def require(connection: Connection, name: str) -> str:
    """The id of the experiment called name; a clear error listing the known ones if missing."""
    found = find(connection, name)
    if found is not None:
        return found
    known = [record.name for record in list_all(connection)]
    listed = ", ".join(repr(k) for k in known[:20]) or "none yet"
    raise ExperimentNotFoundError(
        f"No experiment is called {name!r}. Known experiments: {listed}. "
        "Run 'loopml experiments list' to see them all."
    )


def list_all(
    connection: Connection,
    names: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
    cursor: str | None = None,
    size: int | None = None,
) -> list[ExperimentRecord]:
    """Experiments with their number of runs, by name; only those of these names or ids when
    given; every one, or a page of size after the cursor (see pages)."""
    count = sa.func.count(runs.c.id)
    query = (
        sa.select(experiments.c.id, experiments.c.name, experiments.c.created_at, count)
        .select_from(experiments.outerjoin(runs, runs.c.experiment_id == experiments.c.id))
        .group_by(experiments.c.id, experiments.c.name, experiments.c.created_at)
    )
    if names is not None or ids is not None:
        query = query.where(
            sa.or_(experiments.c.name.in_(names or []), experiments.c.id.in_(ids or []))
        )
    query = ordered(query, [Sort(experiments.c.name)], cursor, size)
    return [ExperimentRecord(*row) for row in connection.execute(query)]
