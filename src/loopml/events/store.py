"""The event store of a workspace: where predictions and feedback are logged, chosen by URL.

    <spool>/<kind>.<host>.<pid>.<start>.<n>[.open].jsonl              segments (segments.py)
    <root>/<kind>/endpoint=<e>/hour=<YYYY-MM-DDTHH>/<name>.parquet   sealed partitions

Its contract is four operations:

- **append**: ``writer(kind)`` is the process's writer, which puts each event in a segment
  before the request is answered;
- **seal**: closed segments become Parquet partitions, one file per endpoint and hour named
  after the segment and written once, and only then is the segment deleted;
- **scan**: ``snapshot(kind)`` is a consistent snapshot of the log, sealed and not, as a
  DuckDB view: no event is missed or counted twice while other processes seal, and no
  snapshot holds fewer events than an earlier one;
- **find**: ``find(kind, ids)`` says which ids the log holds and their endpoint, looking only
  in the hours the ids were made in (an event id begins with its time, see ``ids.py``), so a
  look-up costs the same however long the log is.

A local folder (``file://`` or a plain path) keeps its segments inside it: the processes of
every host sharing that folder write and read one log. An object store (``s3://``) cannot be
appended to, so each host spools its segments in a local folder and seals them into the
store; other hosts read them once sealed, a minute or two later (segments close after
``events_segment_seconds`` and servers seal every minute).
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopml.artifacts.store import open_filesystem
from loopml.errors import StoreUnavailableError, UsageError
from loopml.events.segments import (
    CLOSED,
    COLUMNS,
    OPEN,
    SEGMENT_SECONDS,
    Segment,
    SegmentWriter,
    closed_segments,
    list_segments,
    read_segment,
    rows_of,
    sync_folder,
)
from loopml.ids import moment_of_event_id, new_event_id
from loopml.settings import hide_password

KINDS = ("predictions", "feedback")
SPREAD = {"inputs": "input.", "outputs": "output."}
KNOWN_SCHEMES = {
    "file": "file:///path/to/events (or a plain path)",
    "s3": "s3://bucket/prefix (needs loopml[s3])",
}
ROW_GROUP_ROWS = 16_384  # find reads one row group of a partition sorted by id
FIND_MARGIN = 300.0  # an event is logged within this many seconds of its id being made
COMPACTED = "compact-"
COVERS = b"loopml.covers"  # a compacted file's metadata: the files it replaces
COMPACTION_GRACE = 600.0  # a replaced file stays this long, for snapshots that still read it
LEGACY_ID = 16  # ids of logs written before ids carried their time: found by a full scan


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UsageError(f"Events are one of {', '.join(KINDS)}, not {kind!r}.")


class EventStore:
    """The prediction and feedback logs at a URL (see the module's description)."""

    def __init__(
        self,
        url: str,
        *,
        spool: str | Path | None = None,
        host: str = "local",
        segment_bytes: int = 64 * 1024 * 1024,
        segment_seconds: float = SEGMENT_SECONDS,
        durable: bool = False,
        storage_options: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.fs, root = _open_filesystem(url, storage_options or {})
        self.root = root.rstrip("/")
        self.local = "file" in _protocols(self.fs)
        if not self.local and spool is None:
            raise UsageError(f"The event store {hide_password(url)} needs a local spool folder.")
        self.spool = Path(self.root) / "segments" if self.local else Path(spool)
        self.host, self.durable, self.clock = host, durable, clock
        self.segment_bytes, self.segment_seconds = segment_bytes, segment_seconds
        self._writers: dict[str, SegmentWriter] = {}
        self._duck: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EventStore({hide_password(self.url)!r}, host={self.host!r})"

    # append

    def writer(self, kind: str) -> SegmentWriter:
        """This process's writer of one kind of event (made once)."""
        check_kind(kind)
        with self._lock:
            if kind not in self._writers:
                self._writers[kind] = SegmentWriter(
                    self.spool,
                    kind,
                    max_bytes=self.segment_bytes,
                    max_seconds=self.segment_seconds,
                    durable=self.durable,
                    host=self.host,
                    clock=self.clock,
                )
            return self._writers[kind]

    def close(self) -> None:
        """Close this process's segments, ready to be sealed, and its DuckDB database."""
        with self._lock:
            writers = list(self._writers.values())
            database, self._duck = self._duck, None
        for made in writers:
            made.close()
        if database is not None:
            database.close()

    def after_fork(self) -> None:
        self._lock, self._duck = threading.Lock(), None  # never the parent's database
        for made in self._writers.values():
            made.after_fork()

    # seal

    def seal(self, kind: str) -> int:
        """Move the closed segments of a kind into Parquet partitions; returns the events
        sealed. Sealing the same segment twice (two processes at once) writes the same files."""
        check_kind(kind)
        sealed = 0
        for segment in self._closed(kind):
            try:
                events = [flat(event) for event in read_segment(segment.path)]
            except FileNotFoundError:  # another process sealed it first
                continue
            if kind == "feedback":
                self._resolve(events)
            for (endpoint, hour), frame in partitions(events):
                self._put(frame, f"{self._folder(kind, endpoint, hour)}/{segment.id}.parquet")
            segment.path.unlink(missing_ok=True)
            if self.durable:
                sync_folder(self.spool)
            sealed += len(events)
        return sealed

    def _closed(self, kind: str) -> list[Segment]:
        return closed_segments(
            self.spool, kind, host=self.host, max_seconds=self.segment_seconds, now=self.clock()
        )

    def _resolve(self, events: list[dict[str, Any]]) -> None:
        """Give feedback for an id not found when it arrived (its prediction was still in
        another host's spool) the endpoint the log now knows for it."""
        unknown = [e["id"] for e in events if e.get("status") == "unknown_id"]
        found = self.find("predictions", unknown) if unknown else {}
        for event in events:
            if event.get("status") == "unknown_id" and event["id"] in found:
                event["endpoint"], event["status"] = found[event["id"]], "ok"

    def write_partition(
        self, kind: str, endpoint: str, moment: float, table: pa.Table, name: str
    ) -> str:
        """Write events straight into the partition of an endpoint and hour (batch scoring)."""
        check_kind(kind)
        path = f"{self._folder(kind, endpoint, hour_of(moment))}/{name}.parquet"
        self._put(table, path)
        return path

    def _folder(self, kind: str, endpoint: str, hour: str) -> str:
        return f"{self.root}/{kind}/endpoint={endpoint}/hour={hour}"

    def _put(self, frame: pd.DataFrame | pa.Table, path: str, metadata: dict | None = None) -> None:
        table = (
            frame
            if isinstance(frame, pa.Table)
            else pa.Table.from_pandas(frame, preserve_index=False)
        )
        if metadata:
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
        with self._reporting("write a partition"):
            if not self.local:
                buffer = io.BytesIO()
                pq.write_table(table, buffer, row_group_size=ROW_GROUP_ROWS)
                self.fs.pipe_file(path, buffer.getvalue())
                return
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
            pq.write_table(table, partial, row_group_size=ROW_GROUP_ROWS)
            if self.durable:
                _sync_file(partial)
            os.replace(partial, target)
            if self.durable:
                sync_folder(target.parent)

    # scan

    def snapshot(
        self,
        kind: str,
        *,
        endpoint: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> Snapshot:
        """Every event of a kind, sealed or not, as one consistent snapshot; the hours read
        are those of [since, until) and, with ``endpoint``, only that endpoint's."""
        check_kind(kind)
        # Segments first, then files: a segment read here and sealed before the files are
        # listed has its partitions left out; one sealed before it could be read has all its
        # partitions written (a seal deletes a segment last), so the files list them. The
        # folder is listed twice because a rename during one listing can hide an entry.
        listed = {s.id: s for s in list_segments(self.spool, kind, self.host)}
        listed |= {s.id: s for s in list_segments(self.spool, kind, self.host)}
        events, read = [], set()
        for segment in listed.values():
            found = _read_either(segment)
            if found is not None:
                events.extend(found)
                read.add(segment.id)
        files = self._files(kind, endpoint, since, until)
        files = [f for f in _uncovered(self, files) if _stem(f) not in read]
        bounds = (endpoint, since, until)
        return Snapshot(self, kind, files, _filtered(pending_frame(events), *bounds), bounds)

    def _files(
        self, kind: str, endpoint: str | None, since: float | None, until: float | None
    ) -> list[str]:
        """The sealed files of a kind, in the hours of [since, until] of one or all endpoints."""
        base = f"{self.root}/{kind}"
        endpoints = [f"endpoint={endpoint}"] if endpoint is not None else self._ls(base)
        low = hour_of(since) if since is not None else ""
        high = hour_of(until) if until is not None else "~"
        found = []
        for folder in endpoints:
            if not folder.startswith("endpoint="):
                continue
            for hour in self._ls(f"{base}/{folder}"):
                if hour.startswith("hour=") and low <= hour[5:] <= high:
                    found.extend(self._parquet(f"{base}/{folder}/{hour}"))
        return found

    def _parquet(self, folder: str) -> list[str]:
        return sorted(
            f"{folder}/{name}"
            for name in self._ls(folder)
            if name.endswith(".parquet") and not name.startswith(".")
        )

    def _ls(self, path: str) -> list[str]:
        """The names in a folder (none if it does not exist), never from a cache."""
        with self._reporting("list the log"):
            if self.local:
                try:
                    return os.listdir(path)
                except (FileNotFoundError, NotADirectoryError):
                    return []
            try:
                listed = self.fs.ls(path, detail=False, refresh=True)
            except FileNotFoundError:
                return []
        return [item.rstrip("/").rsplit("/", 1)[-1] for item in listed]

    def location(self, path: str) -> str:
        """A path in the store as DuckDB reads it (an object store's with its scheme)."""
        return path if self.local else f"{_protocols(self.fs)[0]}://{path}"

    def connect(self) -> Any:
        """A DuckDB connection that can read this store's files: a cursor of the store's
        database (made once per process, as opening a database costs tens of ms), so views
        made on it are temporary, seen by that cursor alone."""
        with self._lock:
            if self._duck is None:
                import duckdb

                database = duckdb.connect()
                database.execute("SET threads TO 2")
                if not self.local:
                    database.register_filesystem(self.fs)
                self._duck = database
            return self._duck.cursor()

    # find

    def find(self, kind: str, ids: Iterable[str]) -> dict[str, str]:
        """Which of these ids the log of a kind holds: id → its endpoint.

        Segments are searched first and then the partitions; an id missed because a seal
        moved it in between is looked for once more, so an id acknowledged before the call
        is always found."""
        check_kind(kind)
        wanted, found = set(ids), {}
        for _ in range(2):
            found.update(self._find_unsealed(kind, wanted - found.keys()))
            if wanted - found.keys():
                found.update(self._find_sealed(kind, wanted - found.keys()))
            if not wanted - found.keys():
                break
        return found

    def _find_unsealed(self, kind: str, ids: set[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for segment in list_segments(self.spool, kind, self.host):
            remaining = ids - found.keys()
            if not remaining:
                break
            data = _bytes_of_either(segment)
            if data is not None:
                found.update(_search(data, remaining))
        return found

    def _find_sealed(self, kind: str, ids: set[str]) -> dict[str, str]:
        """Look for ids in the partitions of the hours they were made in; ids without a
        time (a log from before ids had one) in every partition."""
        hours: dict[str, list[str]] = {}
        everywhere = []
        for found in ids:
            moment = moment_of_event_id(found)
            if moment is None:
                if len(found) == LEGACY_ID:
                    everywhere.append(found)
                continue
            for hour in {hour_of(moment - FIND_MARGIN), hour_of(moment + FIND_MARGIN)}:
                hours.setdefault(hour, []).append(found)
        result: dict[str, str] = {}
        for hour, wanted in sorted(hours.items()):
            files = [
                path
                for folder in self._ls(f"{self.root}/{kind}")
                if folder.startswith("endpoint=")
                for path in self._parquet(f"{self.root}/{kind}/{folder}/hour={hour}")
            ]
            result.update(self._lookup(files, wanted))
        if everywhere:
            result.update(self._lookup(self._files(kind, None, None, None), everywhere))
        return result

    def _lookup(self, files: list[str], ids: list[str]) -> dict[str, str]:
        if not files or not ids:
            return {}
        wanted = pa.table({"id": pa.array(sorted(set(ids)), pa.string())})
        query = (
            "SELECT e.id, e.endpoint FROM read_parquet(?, hive_partitioning = true, "
            "union_by_name = true) e WHERE e.id >= ? AND e.id <= ? "
            "AND e.id IN (SELECT id FROM wanted)"
        )
        locations = [self.location(f) for f in files]
        arguments = [locations, wanted["id"][0].as_py(), wanted["id"][-1].as_py()]
        for attempt in range(3):
            connection = self.connect()
            try:
                connection.register("wanted", wanted)
                return dict(connection.execute(query, arguments).fetchall())
            except Exception as error:  # a file compacted away or expired meanwhile
                if attempt == 2 or not _missing_file(error):
                    raise
                locations = [self.location(f) for f in files if self.fs.exists(f)]
                arguments[0] = locations
            finally:
                connection.close()
        return {}

    # retention and compaction

    def compact(self, kind: str, *, now: float | None = None) -> int:
        """Merge the files of each finished hour into one, sorted by id; returns the files
        merged. A replaced file is deleted only ``COMPACTION_GRACE`` seconds after, so a
        snapshot that listed it can still read it; snapshots never count an event twice."""
        check_kind(kind)
        now = self.clock() if now is None else now
        current = hour_of(now - SEGMENT_SECONDS - self.segment_seconds)
        merged = 0
        for folder in self._hours(kind):
            if folder.rsplit("hour=", 1)[-1] >= current:
                continue
            self._drop_replaced(self._parquet(folder), now)
            listed = self._parquet(folder)
            replaced = _replaced(self, listed)
            files = [f for f in listed if f not in replaced]
            if len(files) < 2:
                continue
            tables = [self._read_table(path) for path in files]
            table = pa.concat_tables(tables, promote_options="permissive")
            if "id" in table.column_names:
                table = table.sort_by("id")
            name = f"{COMPACTED}{int(now * 1000)}-{new_event_id()[-12:]}.parquet"
            covers = sorted({_stem(f) for f in files} | {_stem(f) for f in replaced})
            self._put(table, f"{folder}/{name}", {COVERS: json.dumps(covers).encode()})
            merged += len(files)
        return merged

    def expire(self, kind: str, *, older_than: float, now: float | None = None) -> int:
        """Delete the partitions of hours that ended more than ``older_than`` seconds ago;
        returns the hours deleted."""
        check_kind(kind)
        now = self.clock() if now is None else now
        cutoff = hour_of(now - older_than - 3600)
        deleted = 0
        for folder in self._hours(kind):
            if folder.rsplit("hour=", 1)[-1] <= cutoff:
                with self._reporting("delete expired partitions"):
                    self.fs.rm(folder, recursive=True)
                deleted += 1
        return deleted

    def status(self, kind: str) -> dict[str, int]:
        """Segments not sealed yet (and their bytes), sealed files and hours, and events."""
        check_kind(kind)
        segments = list_segments(self.spool, kind, self.host)
        waiting = 0
        for segment in segments:
            try:
                waiting += segment.path.stat().st_size
            except FileNotFoundError:
                continue
        snapshot = self.snapshot(kind)
        events = len(snapshot.pending)
        if snapshot.files:
            connection = self.connect()
            try:
                locations = [self.location(f) for f in snapshot.files]
                (rows,) = connection.execute(
                    "SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata(?)",
                    [locations],
                ).fetchone()
            finally:
                connection.close()
            events += int(rows)
        hours = {f.rsplit("/", 2)[-3] + "/" + f.rsplit("/", 2)[-2] for f in snapshot.files}
        return {
            "segments": len(segments),
            "segment_bytes": waiting,
            "files": len(snapshot.files),
            "hours": len(hours),
            "events": events,
        }

    def _hours(self, kind: str) -> list[str]:
        base = f"{self.root}/{kind}"
        return [
            f"{base}/{endpoint}/{hour}"
            for endpoint in sorted(self._ls(base))
            if endpoint.startswith("endpoint=")
            for hour in sorted(self._ls(f"{base}/{endpoint}"))
            if hour.startswith("hour=")
        ]

    def _drop_replaced(self, files: list[str], now: float) -> None:
        """Delete the files compacted files replaced, once the newest of those is older
        than the grace period."""
        merged = [f for f in files if f.rsplit("/", 1)[-1].startswith(COMPACTED)]
        if not merged or any(now - _made_at(f) < COMPACTION_GRACE for f in merged):
            return
        replaced = _replaced(self, files)
        for path in files:
            if path in replaced:
                with self._reporting("delete a compacted file"):
                    self.fs.rm(path)

    def _read_table(self, path: str) -> pa.Table:
        with self._reporting("read a partition"), self.fs.open(path, "rb") as stream:
            return pq.read_table(stream)

    def _reporting(self, action: str) -> _Reporting:
        return _Reporting(self, action)


@dataclass
class Snapshot:
    """A consistent snapshot of one kind of event: sealed files and pending events."""

    store: EventStore
    kind: str
    files: list[str]
    pending: pd.DataFrame = field(repr=False)
    bounds: tuple[str | None, float | None, float | None] = (
        None,
        None,
        None,
    )  # endpoint, [since, until)

    def __len__(self) -> int:
        return len(self.files) + len(self.pending)

    def view(self, connection: Any, name: str) -> bool:
        """Create the DuckDB view ``name`` over the snapshot, with its endpoint and hour as
        columns; False (and no view) when it holds nothing."""
        parts = []
        if self.files:
            locations = ", ".join("'" + quoted(self.store.location(f)) + "'" for f in self.files)
            parts.append(
                f"SELECT * FROM read_parquet([{locations}], hive_partitioning = true, "
                "union_by_name = true)"
            )
        if len(self.pending):
            pending = self.pending.assign(hour=[hour_of(t) for t in self.pending["time"]])
            connection.register(f"{name}_pending", pa.Table.from_pandas(pending))
            parts.append(f"SELECT * FROM {name}_pending")
        if not parts:
            return False
        query = " UNION ALL BY NAME ".join(parts)
        connection.execute(f"CREATE OR REPLACE TEMPORARY VIEW {name} AS {query}")
        return True

    def frame(self) -> pd.DataFrame:
        """Every event of the snapshot within its endpoint and times, oldest first."""
        connection = self.store.connect()
        try:
            if not self.view(connection, "events"):
                return pd.DataFrame()
            frame = connection.execute("SELECT * EXCLUDE (hour) FROM events").df()
        finally:
            connection.close()
        frame = _filtered(frame, *self.bounds)  # the files were chosen by hour
        return frame.sort_values("time", kind="stable").reset_index(drop=True)


def flat(event: dict[str, Any]) -> dict[str, Any]:
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


def pending_frame(events: list[dict[str, Any]]) -> pd.DataFrame:
    """Flattened events as a frame with an endpoint ('default' where none was logged)."""
    if not events:
        return pd.DataFrame()
    frame = pd.DataFrame(events)
    if "endpoint" not in frame.columns:
        frame["endpoint"] = None
    frame["endpoint"] = frame["endpoint"].fillna("default").astype(str)
    return frame


def partitions(events: list[dict[str, Any]]) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    """Flattened events grouped by endpoint and hour, each group sorted by id."""
    frame = pending_frame(events)
    if frame.empty:
        return []
    hours = pd.to_datetime(frame["time"], unit="s", utc=True).dt.strftime("%Y-%m-%dT%H")
    groups = frame.groupby([frame["endpoint"], hours], sort=True)
    return [
        ((str(endpoint), str(hour)), part.drop(columns=["endpoint"]).sort_values("id"))
        for (endpoint, hour), part in groups
    ]


def quoted(text: str) -> str:
    """Text made safe inside a single-quoted SQL string."""
    return text.replace("'", "''")


def hour_of(moment: float) -> str:
    """The name of the hour partition a moment falls in."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H")


def _filtered(
    frame: pd.DataFrame, endpoint: str | None, since: float | None, until: float | None
) -> pd.DataFrame:
    if frame.empty:
        return frame
    keep = pd.Series(True, index=frame.index)
    if endpoint is not None:
        keep &= frame["endpoint"] == endpoint
    if since is not None:
        keep &= frame["time"] >= since
    if until is not None:
        keep &= frame["time"] < until
    return frame[keep].reset_index(drop=True)


def _made_at(path: str) -> float:
    """When a compacted file was written, from its name."""
    return int(path.rsplit("/", 1)[-1][len(COMPACTED) :].split("-", 1)[0]) / 1000


def _stem(path: str) -> str:
    return path.rsplit("/", 1)[-1].removesuffix(".parquet")


def _covers_of(store: EventStore, path: str) -> list[str]:
    with store._reporting("read a partition"), store.fs.open(path, "rb") as stream:
        metadata = pq.read_metadata(stream).metadata or {}
    return json.loads(metadata.get(COVERS, b"[]"))


def _replaced(store: EventStore, files: list[str]) -> set[str]:
    """The files among these that a compacted file in the same folder replaces.

    Two compactions at once (two processes) may each merge the same files: the compacted
    files are taken largest first, one that overlaps a file already taken is itself left
    out, so every event is read from exactly one file."""
    folders: dict[str, list[str]] = {}
    for path in files:
        folders.setdefault(path.rsplit("/", 1)[0], []).append(path)
    replaced = set()
    for folder, listed in folders.items():
        merged = [f for f in listed if f.rsplit("/", 1)[-1].startswith(COMPACTED)]
        if not merged:
            continue
        covers = {_stem(f): set(_covers_of(store, f)) for f in merged}
        taken: set[str] = set()
        for stem in sorted(covers, key=lambda name: (-len(covers[name]), name)):
            if stem in taken or covers[stem] & taken:
                taken.add(stem)  # a duplicate of a merge already taken, or merged into it
                continue
            taken |= covers[stem]
        replaced |= {f"{folder}/{stem}.parquet" for stem in taken}
    return replaced


def _uncovered(store: EventStore, files: list[str]) -> list[str]:
    """Files with those a compacted file replaces left out (each event read once)."""
    replaced = _replaced(store, files)
    return [f for f in files if f not in replaced] if replaced else files


def _read_either(segment: Segment) -> list[dict[str, Any]] | None:
    """A segment's events under its name or the one it was renamed to; None once deleted."""
    for path in _names_of(segment):
        try:
            return [flat(event) for event in read_segment(path)]
        except FileNotFoundError:
            continue
    return None


def _bytes_of_either(segment: Segment) -> bytes | None:
    for path in _names_of(segment):
        try:
            return path.read_bytes()
        except FileNotFoundError:
            continue
    return None


def _names_of(segment: Segment) -> list[Path]:
    opened = segment.path.with_name(segment.id + OPEN)
    closed = segment.path.with_name(segment.id + CLOSED)
    return [opened, closed] if segment.open else [closed]


def _search(data: bytes, ids: set[str]) -> dict[str, str]:
    """The endpoints of ids in a segment's bytes: the few lines that name one are parsed."""
    found: dict[str, str] = {}
    for wanted in ids:
        at = data.find(b'"' + wanted.encode() + b'"')
        while at >= 0 and wanted not in found:
            start, end = data.rfind(b"\n", 0, at) + 1, data.find(b"\n", at)
            if end < 0:
                break  # a torn last line
            found.update(_endpoints_in(data[start:end], ids))
            at = data.find(b'"' + wanted.encode() + b'"', end)
    return found


def _endpoints_in(line: bytes, ids: set[str]) -> dict[str, str]:
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return {}
    rows = rows_of(event) if COLUMNS in event else [event]
    return {
        row["id"]: str(row.get("endpoint") or "default")
        for row in rows
        if isinstance(row.get("id"), str) and row["id"] in ids
    }


def _sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _missing_file(error: Exception) -> bool:
    text = str(error).lower()
    return isinstance(error, FileNotFoundError) or "no such file" in text or "not found" in text


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


class _Reporting:
    """Turns an object store's connection errors into one clear error."""

    def __init__(self, store: EventStore, action: str) -> None:
        self.store, self.action = store, action

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: BaseException | None, _: Any) -> bool:
        if error is None or self.store.local or isinstance(error, FileNotFoundError):
            return False
        if isinstance(error, OSError | ConnectionError):
            raise StoreUnavailableError(
                f"Cannot {self.action} in the event store {hide_password(self.store.url)}: "
                f"{error}. Check that it is reachable and the credentials are right."
            ) from error
        return False


def _open_filesystem(url: str, options: dict[str, Any]) -> tuple[Any, str]:
    return open_filesystem(url, options, store="event", schemes=KNOWN_SCHEMES)
