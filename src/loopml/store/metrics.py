"""Repository functions for metric values: full history plus the latest value per key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loopml.store.metadata import cached_statement, dialect_insert
from loopml.store.records import MetricPoint, MetricSummary
from loopml.store.schema import latest_metrics, metrics

# One buffered value: (key, value, step, timestamp).
MetricRow = tuple[str, float, int, float]


def insert_values(connection: Connection, run_id: str, values: Sequence[MetricRow]) -> None:
    """Append metric values to the history and update each key's latest value and count."""
    if not values:
        return
    rows = [(run_id, key, step, ts, value) for key, value, step, ts in values]
    if connection.dialect.name == "postgresql":
        _copy_rows(connection, rows)
    else:  # the hot path of metric logging: plain executemany, no per-row dicts
        connection.exec_driver_sql(f"INSERT INTO metrics ({COLUMNS}) VALUES (?, ?, ?, ?, ?)", rows)
    _upsert_latest(connection, run_id, values)


COLUMNS = "run_id, key, step, timestamp, value"


def _copy_rows(connection: Connection, rows: list[tuple[str, str, int, float, float]]) -> None:
    driver = connection.connection.driver_connection  # psycopg, inside this transaction
    with driver.cursor() as cursor, cursor.copy(f"COPY metrics ({COLUMNS}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _upsert_latest(connection: Connection, run_id: str, values: Sequence[MetricRow]) -> None:
    newest: dict[str, MetricRow] = {}
    counts: dict[str, int] = {}
    for row in values:
        key = row[0]
        counts[key] = counts.get(key, 0) + 1
        best = newest.get(key)
        if best is None or (row[2], row[3]) >= (best[2], best[3]):
            newest[key] = row
    rows = [
        {"run_id": run_id, "key": k, "value": v, "step": s, "timestamp": t, "count": counts[k]}
        for k, v, s, t in newest.values()
    ]
    connection.execute(_latest_upsert(connection), rows)


@cached_statement
def _latest_upsert(connection: Connection) -> Any:
    statement = dialect_insert(connection, latest_metrics)
    new, old = statement.excluded, latest_metrics.c
    is_newer = sa.or_(
        new.step > old.step, sa.and_(new.step == old.step, new.timestamp >= old.timestamp)
    )
    return statement.on_conflict_do_update(
        index_elements=["run_id", "key"],
        set_={
            "value": sa.case((is_newer, new.value), else_=old.value),
            "step": sa.case((is_newer, new.step), else_=old.step),
            "timestamp": sa.case((is_newer, new.timestamp), else_=old.timestamp),
            "count": old.count + new.count,
        },
    )


def summaries(connection: Connection, run_id: str) -> list[MetricSummary]:
    """The latest value, step and count of every metric of a run, by key."""
    c = latest_metrics.c
    query = (
        sa.select(c.key, c.value, c.step, c.timestamp, c["count"])
        .where(c.run_id == run_id)
        .order_by(c.key)
    )
    return [MetricSummary(*row) for row in connection.execute(query)]


def summaries_of(connection: Connection, run_ids: Sequence[str]) -> dict[str, list[MetricSummary]]:
    """The latest value, step and count of every metric of each run, by key."""
    found: dict[str, list[MetricSummary]] = {run_id: [] for run_id in run_ids}
    c = latest_metrics.c
    for start in range(0, len(run_ids), 500):
        query = (
            sa.select(c.run_id, c.key, c.value, c.step, c.timestamp, c["count"])
            .where(c.run_id.in_(run_ids[start : start + 500]))
            .order_by(c.run_id, c.key)
        )
        for run_id, *row in connection.execute(query):
            found[run_id].append(MetricSummary(*row))
    return found


def history(
    connection: Connection, run_id: str, key: str, offset: int = 0, limit: int | None = None
) -> list[MetricPoint]:
    """The values of one metric of a run, by step then time: all, or a page of them."""
    c = metrics.c
    query = (
        sa.select(c.step, c.timestamp, c.value)
        .where(c.run_id == run_id, c.key == key)
        .order_by(c.step, c.timestamp)
    )
    if offset:
        query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return [MetricPoint(*row) for row in connection.execute(query)]
