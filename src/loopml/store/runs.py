"""Repository functions for runs, their params, tags and environments."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loopml.errors import ParamConflictError, RunNotFoundError
from loopml.ids import looks_like_id_prefix
from loopml.store.metadata import cached_statement, dialect_insert, insert_ignore
from loopml.store.pages import Sort, ordered
from loopml.store.records import RunRecord
from loopml.store.schema import environments, experiments, latest_metrics, params, runs, tags
from loopml.store.values import StoredValue, decode_param, encode_param

ID_CHUNK = 2000


def insert_run(connection: Connection, row: Mapping[str, Any]) -> None:
    """Insert a new run row (status running)."""
    connection.execute(runs.insert(), [dict(row)])


def insert_environment(connection: Connection, environment_id: str, data: str) -> None:
    """Store an environment description once per content hash."""
    insert_ignore(connection, environments, [{"id": environment_id, "data": data}], ["id"])


def get_environment(connection: Connection, environment_id: str) -> str | None:
    """The stored JSON text of an environment, or None."""
    query = sa.select(environments.c.data).where(environments.c.id == environment_id)
    return connection.execute(query).scalar()


def end_run(
    connection: Connection, run_id: str, status: str, end_time: float, error: str | None
) -> None:
    """Record how and when a run ended."""
    connection.execute(
        runs.update()
        .where(runs.c.id == run_id)
        .values(status=status, end_time=end_time, heartbeat_at=end_time, error=error)
    )


def heartbeat(connection: Connection, run_ids: Sequence[str], now: float) -> None:
    """Mark running runs as alive now."""
    if run_ids:
        connection.execute(
            runs.update()
            .where(runs.c.id.in_(run_ids), runs.c.status == "running")
            .values(heartbeat_at=now)
        )


def mark_dead_runs_killed(
    connection: Connection,
    *,
    host: str,
    now: float,
    stale_after: float,
    is_alive: Callable[[int], bool],
) -> list[str]:
    """Mark as killed the running runs whose process is gone or whose heartbeat is stale."""
    query = sa.select(runs.c.id, runs.c.host, runs.c.pid, runs.c.heartbeat_at).where(
        runs.c.status == "running"
    )
    dead = [
        (run_id, last_seen)
        for run_id, run_host, pid, last_seen in connection.execute(query)
        if (run_host == host and not is_alive(pid)) or now - last_seen > stale_after
    ]
    for run_id, last_seen in dead:
        connection.execute(
            runs.update()
            .where(runs.c.id == run_id, runs.c.status == "running")
            .values(
                status="killed",
                end_time=last_seen,
                error="The run's process stopped without ending the run (killed, or lost "
                "its host); values logged in its last second may be missing.",
            )
        )
    return [run_id for run_id, _ in dead]


def resolve_id(connection: Connection, text: str) -> str:
    """The full id of the run whose id is text or starts with it."""
    cleaned = text.strip().lower()
    if not looks_like_id_prefix(cleaned):
        raise RunNotFoundError(
            f"{text!r} is not a run id: ids are up to 16 hex characters. "
            "Run 'loopml runs list' to see run ids."
        )
    query = sa.select(runs.c.id).where(runs.c.id.startswith(cleaned, autoescape=True)).limit(6)
    found = list(connection.execute(query).scalars())
    if len(found) == 1:
        return found[0]
    if not found:
        raise RunNotFoundError(
            f"No run has the id {text!r}. Run 'loopml runs list' to see run ids."
        )
    raise RunNotFoundError(
        f"The id prefix {text!r} matches several runs ({', '.join(found[:5])}, ...). "
        "Give more characters of the id."
    )


def load_runs(connection: Connection, run_ids: Sequence[str]) -> list[RunRecord]:
    """Full records of the given runs, in the given order; unknown ids are skipped."""
    rows: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(run_ids):
        _load_attributes(connection, chunk, rows)
        _load_params(connection, chunk, rows)
        _load_metrics(connection, chunk, rows)
        _load_tags(connection, chunk, rows)
    return [RunRecord(**rows[run_id]) for run_id in run_ids if run_id in rows]


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), ID_CHUNK):
        yield items[start : start + ID_CHUNK]


def _load_attributes(
    connection: Connection, chunk: Sequence[str], rows: dict[str, dict[str, Any]]
) -> None:
    columns = [c for c in runs.c if c.name not in ("experiment_id", "heartbeat_at")]
    query = (
        sa.select(*columns, experiments.c.name.label("experiment"))
        .select_from(runs.join(experiments, runs.c.experiment_id == experiments.c.id))
        .where(runs.c.id.in_(chunk))
    )
    for row in connection.execute(query).mappings():
        record = dict(row)
        record["user"] = record.pop("user_name")
        rows[record["id"]] = {**record, "params": {}, "metrics": {}, "tags": {}}


def _load_params(
    connection: Connection, chunk: Sequence[str], rows: dict[str, dict[str, Any]]
) -> None:
    query = sa.select(params.c.run_id, params.c.key, params.c.value, params.c.value_type).where(
        params.c.run_id.in_(chunk)
    )
    for run_id, key, value, value_type in connection.execute(query):
        rows[run_id]["params"][key] = decode_param(value, value_type)


def _load_metrics(
    connection: Connection, chunk: Sequence[str], rows: dict[str, dict[str, Any]]
) -> None:
    query = sa.select(latest_metrics.c.run_id, latest_metrics.c.key, latest_metrics.c.value).where(
        latest_metrics.c.run_id.in_(chunk)
    )
    for run_id, key, value in connection.execute(query):
        rows[run_id]["metrics"][key] = value


def _load_tags(
    connection: Connection, chunk: Sequence[str], rows: dict[str, dict[str, Any]]
) -> None:
    query = sa.select(tags.c.run_id, tags.c.key, tags.c.value).where(tags.c.run_id.in_(chunk))
    for run_id, key, value in connection.execute(query):
        rows[run_id]["tags"][key] = value


def child_ids(
    connection: Connection, run_id: str, cursor: str | None = None, size: int | None = None
) -> list[str]:
    """Ids of the runs nested directly under a run, oldest first: every one, or a page of
    size after the cursor (see pages)."""
    query = sa.select(runs.c.id).where(runs.c.parent_id == run_id)
    query = ordered(query, [Sort(runs.c.start_time), Sort(runs.c.id)], cursor, size)
    return list(connection.execute(query).scalars())


def log_params(connection: Connection, run_id: str, values: Mapping[str, Any]) -> None:
    """Record params; the same value again is a no-op, a different value is refused."""
    if not values:
        return
    encoded = {key: encode_param(value) for key, value in values.items()}
    rows = [
        {"run_id": run_id, "key": key, "value": v.text, "value_type": v.type, "value_num": v.number}
        for key, v in encoded.items()
    ]
    insert_ignore(connection, params, rows, ["run_id", "key"])
    query = sa.select(params.c.key, params.c.value, params.c.value_type).where(
        params.c.run_id == run_id, params.c.key.in_(list(encoded))
    )
    for key, text, value_type in connection.execute(query):
        if not _same_param(text, value_type, encoded[key]):
            raise ParamConflictError(
                f"Param {key!r} of run {run_id} is already {decode_param(text, value_type)!r}; "
                f"it cannot change to {values[key]!r}. Params are fixed once logged: start a "
                "new run for new values, or log a changing quantity as a metric or tag."
            )


def _same_param(text: str, value_type: str, new: StoredValue) -> bool:
    if (text, value_type) == (new.text, new.type):
        return True
    numeric = {"int", "float"}
    if value_type in numeric and new.type in numeric:
        return decode_param(text, value_type) == decode_param(new.text, new.type)
    return False


def set_tags(connection: Connection, run_id: str, values: Mapping[str, Any]) -> None:
    """Set tags, replacing earlier values of the same keys."""
    if not values:
        return
    rows = [{"run_id": run_id, "key": key, "value": str(value)} for key, value in values.items()]
    connection.execute(_tags_upsert(connection), rows)


@cached_statement
def _tags_upsert(connection: Connection) -> Any:
    statement = dialect_insert(connection, tags)
    return statement.on_conflict_do_update(
        index_elements=["run_id", "key"], set_={"value": statement.excluded.value}
    )
