"""An endpoint's logged traffic in a window of time, read with DuckDB in bounded memory.

The views are a consistent snapshot of the endpoint's log (``EventStore.snapshot``): sealed
Parquet partitions, scanned with the endpoint and hour taken from their folder names so a
query on the window's hours reads only those, and the events not sealed yet. Rows come out
as Arrow record batches, and aggregates (latency percentiles, counts, CPU time) are computed
by DuckDB, never in Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from loopml.events.log import hour_of, seal
from loopml.workspace import Workspace

BATCH_ROWS = 100_000


class Traffic:
    """The predictions and feedback of one endpoint logged in [start, end)."""

    def __init__(self, endpoint: str, start: float, end: float, workspace: Workspace) -> None:
        self.endpoint, self.start, self.end = endpoint, start, end
        self.connection = workspace.events.connect()
        self.columns = {kind: self._view(kind, workspace) for kind in ("predictions", "feedback")}

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Traffic:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def _view(self, kind: str, workspace: Workspace) -> list[str]:
        """Make the view ``<kind>`` of every event of the endpoint; return its columns."""
        snapshot = workspace.events.snapshot(kind, endpoint=self.endpoint)
        if not snapshot.view(self.connection, kind):
            self.connection.execute(
                f"CREATE TEMPORARY VIEW {kind} AS SELECT NULL::VARCHAR AS id, "
                "NULL::DOUBLE AS time, NULL::VARCHAR AS status, NULL::VARCHAR AS role, "
                "NULL::VARCHAR AS hour LIMIT 0"
            )
        described = self.connection.execute(f"DESCRIBE {kind}").fetchall()
        return [row[0] for row in described]

    def has(self, kind: str, column: str) -> bool:
        return column in self.columns[kind]

    def bounds(self, alias: str = "") -> str:
        """The SQL condition of the window: its hour partitions, then its exact times."""
        at = f"{alias}." if alias else ""
        return (
            f"{at}hour >= '{hour_of(self.start)}' AND {at}hour <= '{hour_of(self.end)}' AND "
            f"{at}time >= {float(self.start)!r} AND {at}time < {float(self.end)!r}"
        )

    def answered(self, alias: str = "") -> str:
        """The SQL condition of rows answered to callers (not shadow copies)."""
        at = f"{alias}." if alias else ""
        return f"{at}status = 'ok' AND coalesce({at}role, 'champion') <> 'shadow'"

    @property
    def request_key(self) -> str:
        """The column that groups a request's rows (each row is its own request in old logs)."""
        return "request_id" if self.has("predictions", "request_id") else "id"

    def requests(self, where: str) -> tuple[int, int, list[float] | None]:
        """The window's requests whose rows match ``where``: how many, how many failed, and
        their latency's 50th, 95th and 99th percentiles (a request's rows' latencies summed)."""
        if not all(self.has("predictions", c) for c in ("role", "version", "latency_ms")):
            return 0, 0, None
        key = self.request_key
        requests, errors, quantiles = self.scalar(
            f"WITH r AS (SELECT {key}, sum(latency_ms) AS ms, any_value(status) AS status "
            f"FROM predictions WHERE {self.bounds()} AND {where} GROUP BY {key}) "
            "SELECT count(*), count(*) FILTER (WHERE status = 'error'), "
            "quantile_cont(ms, [0.5, 0.95, 0.99]) FROM r"
        )
        return int(requests), int(errors), quantiles

    def scalar(self, query: str) -> Any:
        return self.connection.execute(query).fetchone()

    def rows(self, query: str) -> list[tuple]:
        return self.connection.execute(query).fetchall()

    def batches(self, query: str) -> Iterator[pa.RecordBatch]:
        """The query's rows as record batches of at most ``BATCH_ROWS`` rows."""
        yield from self.connection.sql(query).to_arrow_reader(BATCH_ROWS)


def seal_all(workspace: Workspace) -> None:
    """Seal every closed segment, so the scan reads Parquet rather than JSON lines."""
    for kind in ("predictions", "feedback"):
        seal(kind, workspace=workspace)


def quoted_column(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
