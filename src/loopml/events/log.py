"""The event log of a workspace: segments sealed into Parquet partitions, queried with DuckDB.

    <home>/events/segments/                     where writers append (segments.py)
    <home>/events/<kind>/endpoint=<e>/hour=<YYYY-MM-DDTHH>/<segment>.parquet

Sealing reads the closed segments, writes one Parquet file per endpoint and hour, named after
the segment (so sealing a segment twice writes the same files), and then deletes the
segment. An event's inputs and outputs become columns of their own, ``input.<name>`` and
``output.<name>``, so a feature is read as one typed column; other nested values (a rejected
request's problems) are kept as JSON text. Reading unions the sealed partitions (by column
name) with the segments not sealed yet. Batch scoring writes its partitions directly, in the
same layout (``write_partition``).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopml.errors import UsageError
from loopml.events.segments import SegmentWriter, closed_segments, read_segment
from loopml.workspace import Workspace, current_workspace

KINDS = ("predictions", "feedback")
SPREAD = {"inputs": "input.", "outputs": "output."}
WRITERS = "events.writers"


def root(workspace: Workspace) -> Path:
    """Where a workspace keeps its events."""
    return Path(workspace.home) / "events"


def writer(workspace: Workspace, kind: str) -> SegmentWriter:
    """The process's writer of one kind of event in a workspace (made once)."""
    _check_kind(kind)
    writers = workspace.service(WRITERS, lambda ws: _Writers(ws))
    return writers.get(kind)


class _Writers:
    def __init__(self, workspace: Workspace) -> None:
        self.workspace, self.made = workspace, {}

    def get(self, kind: str) -> SegmentWriter:
        if kind not in self.made:
            folder = root(self.workspace) / "segments"
            size = self.workspace.settings.events_segment_bytes
            self.made[kind] = SegmentWriter(folder, kind, max_bytes=size)
        return self.made[kind]

    def close(self) -> None:
        for made in self.made.values():
            made.close()

    def after_fork(self) -> None:
        for made in self.made.values():
            made.after_fork()


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UsageError(f"Events are one of {', '.join(KINDS)}, not {kind!r}.")


def seal(kind: str, *, workspace: Workspace | None = None) -> int:
    """Move closed segments of a kind into Parquet partitions; returns the events sealed."""
    _check_kind(kind)
    workspace = workspace or current_workspace()
    base = root(workspace)
    sealed = 0
    for segment in closed_segments(base / "segments", kind):
        try:
            events = list(read_segment(segment.path))
        except FileNotFoundError:  # another process sealed it first
            continue
        for (endpoint, hour), frame in _partitions(events):
            folder = base / kind / f"endpoint={endpoint}" / f"hour={hour}"
            _write_parquet(frame, folder / f"{segment.id}.parquet")
        segment.path.unlink(missing_ok=True)
        sealed += len(events)
    return sealed


def _partitions(events: list[dict[str, Any]]) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    if not events:
        return []
    frame = pd.DataFrame([_flat(event) for event in events])
    frame["endpoint"] = frame.get("endpoint", pd.Series("default", index=frame.index)).fillna(
        "default"
    )
    hours = pd.to_datetime(frame["time"], unit="s", utc=True).dt.strftime("%Y-%m-%dT%H")
    return [
        ((str(endpoint), str(hour)), part.drop(columns=["endpoint"]))
        for (endpoint, hour), part in frame.groupby([frame["endpoint"], hours], sort=True)
    ]


def _flat(event: dict[str, Any]) -> dict[str, Any]:
    """One row: ``inputs`` and ``outputs`` spread into ``input.<name>`` and ``output.<name>``
    columns; any other nested value kept as JSON text."""
    row: dict[str, Any] = {}
    for key, value in event.items():
        if key in SPREAD and isinstance(value, dict):
            prefix = SPREAD[key]
            row.update({f"{prefix}{name}": item for name, item in value.items()})
        elif isinstance(value, dict | list):
            row[key] = json.dumps(value, default=str)
        else:
            row[key] = value
    return row


def _write_parquet(frame: pd.DataFrame | pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    if isinstance(frame, pd.DataFrame):
        frame.to_parquet(partial, index=False)
    else:
        pq.write_table(frame, partial)
    os.replace(partial, path)


def write_partition(
    kind: str, endpoint: str, moment: float, table: pa.Table, name: str, workspace: Workspace
) -> Path:
    """Write events straight into the partition of an endpoint and hour (batch scoring)."""
    _check_kind(kind)
    path = root(workspace) / kind / f"endpoint={endpoint}" / f"hour={hour_of(moment)}"
    path = path / f"{name}.parquet"
    _write_parquet(table, path)
    return path


def read_events(
    kind: str,
    *,
    endpoint: str | None = None,
    since: float | None = None,
    until: float | None = None,
    workspace: Workspace | None = None,
) -> pd.DataFrame:
    """Every event of a kind, sealed or not, oldest first; filtered by endpoint and time."""
    _check_kind(kind)
    workspace = workspace or current_workspace()
    base = root(workspace)
    frames = [_sealed(base / kind, endpoint, since, until), unsealed(base, kind)]
    frames = [found for found in frames if len(found)]
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    keep = pd.Series(True, index=frame.index)
    if endpoint is not None:
        keep &= frame["endpoint"] == endpoint
    if since is not None:
        keep &= frame["time"] >= since
    if until is not None:
        keep &= frame["time"] < until
    return frame[keep].sort_values("time", kind="stable").reset_index(drop=True)


def _sealed(
    folder: Path, endpoint: str | None, since: float | None, until: float | None
) -> pd.DataFrame:
    if not any(folder.glob("endpoint=*/hour=*/*.parquet")):
        return pd.DataFrame()
    import duckdb

    pattern = str(folder / "endpoint=*" / "hour=*" / "*.parquet")
    query = (
        f"SELECT * EXCLUDE (hour) FROM read_parquet('{quoted(pattern)}', "
        "hive_partitioning = true, union_by_name = true)"
    )
    conditions, arguments = [], []
    if endpoint is not None:
        conditions.append("endpoint = ?")
        arguments.append(endpoint)
    if since is not None:
        conditions.append("hour >= ?")
        arguments.append(hour_of(since))
    if until is not None:
        conditions.append("hour <= ?")
        arguments.append(hour_of(until))
    if conditions:
        query += " WHERE " + " AND ".join(conditions)
    with duckdb.connect() as connection:
        return connection.execute(query, arguments).df()


def find(kind: str, ids: list[str], *, workspace: Workspace | None = None) -> dict[str, str]:
    """Which of these ids the log of a kind holds: id → its endpoint."""
    _check_kind(kind)
    workspace = workspace or current_workspace()
    base = root(workspace)
    wanted = pd.DataFrame({"id": pd.Series(list(dict.fromkeys(ids)), dtype=object)})
    found: dict[str, str] = {}
    if any((base / kind).glob("endpoint=*/hour=*/*.parquet")):
        import duckdb

        pattern = str(base / kind / "endpoint=*" / "hour=*" / "*.parquet")
        with duckdb.connect() as connection:
            connection.register("wanted", wanted)
            rows = connection.execute(
                f"SELECT e.id, e.endpoint FROM read_parquet('{quoted(pattern)}', "
                "hive_partitioning = true, union_by_name = true) e JOIN wanted USING (id)"
            ).fetchall()
        found.update(rows)
    pending = unsealed(base, kind)
    if len(pending):
        hits = pending[pending["id"].isin(wanted["id"])]
        found.update(zip(hits["id"], hits["endpoint"].astype(str), strict=True))
    return found


def quoted(text: str) -> str:
    """Text made safe inside a single-quoted SQL string."""
    return text.replace("'", "''")


def hour_of(moment: float) -> str:
    """The name of the hour partition a moment falls in."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H")


def unsealed(base: Path, kind: str) -> pd.DataFrame:
    """The events of a kind still in segment files, flattened like sealed ones."""
    folder = base / "segments"
    paths = sorted(folder.glob(f"{kind}.*.jsonl")) if folder.exists() else []
    events = [_flat(event) for path in paths for event in read_segment(path)]
    if not events:
        return pd.DataFrame()
    frame = pd.DataFrame(events)
    frame["endpoint"] = frame.get("endpoint", pd.Series(index=frame.index, dtype=object))
    frame["endpoint"] = frame["endpoint"].fillna("default")
    return frame
