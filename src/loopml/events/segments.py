"""Append-only segment files: where a serving process writes each event before it answers.

A ``SegmentWriter`` appends one JSON line per event to ``<home>/events/segments/`` with a
single ``write`` system call on a file opened for appending, so once ``append`` returns the
event is in the operating system's hands: a process killed with SIGKILL loses nothing it
acknowledged (an ``fsync`` per event, for power loss too, is ``durable=True``).

A line is one event, or many sharing most fields: ``{..., "columns": {name: [values]}}``
holds one event per position of its columns (a request of many rows, written at once).

A segment's name says what it holds and who writes it:
``<kind>.<host>.<pid>.<start>.<sequence>.open.jsonl`` while its writer has it open, then
``... .jsonl`` once closed (by size, by age, by the hour changing, or at close), so that the
processes of many hosts can share one folder without colliding. A writer never appends to a
segment older than its ``max_seconds``; so an open segment of another host is taken as closed
once it is clearly older than that, and one of this host once its process no longer exists.
Its last line may then be torn (cut by a kill) and is skipped when read.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.workspace import process_is_alive

COLUMNS = "columns"  # a line of many events: shared fields, and columns of values per row
OPEN = ".open.jsonl"
CLOSED = ".jsonl"
HOUR = 3600
SEGMENT_SECONDS = 60.0


def host_name(text: str) -> str:
    """A host id fit for a segment's name: letters, digits and dashes only."""
    cleaned = "".join(c if c.isalnum() or c == "-" else "-" for c in text).strip("-")
    return cleaned or "host"


@dataclass(frozen=True)
class Segment:
    """A segment file and what its name says."""

    path: Path
    kind: str
    host: str
    pid: int
    start: int  # milliseconds since the epoch
    sequence: int
    open: bool

    @property
    def id(self) -> str:
        return self.path.name.removesuffix(OPEN).removesuffix(CLOSED)

    @classmethod
    def parse(cls, path: Path, host: str = "") -> Segment | None:
        """The segment a file name describes, or None; a name without a host (written
        before hosts were named) belongs to ``host``."""
        name = path.name
        is_open = name.endswith(OPEN)
        stem = name[: -len(OPEN)] if is_open else name.removesuffix(CLOSED)
        parts = stem.split(".")
        if stem == name or len(parts) not in (4, 5):
            return None
        if len(parts) == 4:
            parts.insert(1, host)
        if not parts[1] or not all(p.isdigit() for p in parts[2:]):
            return None
        kind, owner, pid, start, sequence = parts
        return cls(path, kind, owner, int(pid), int(start), int(sequence), is_open)


class SegmentWriter:
    """Appends events of one kind ('predictions', 'feedback') to segment files; thread-safe.

    With ``durable`` each append is on disk (``fsync``) before it returns, so an acknowledged
    event survives a power loss too, and so does the creation and closing of each segment.
    """

    def __init__(
        self,
        folder: str | Path,
        kind: str,
        *,
        max_bytes: int,
        max_seconds: float = SEGMENT_SECONDS,
        durable: bool = False,
        host: str = "local",
        clock: Any = time.time,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.kind, self.max_bytes, self.durable = kind, max_bytes, durable
        self.max_seconds, self.host, self.clock = max_seconds, host_name(host), clock
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._opened = 0.0
        self._sequence = 0

    def append(self, event: dict[str, Any]) -> None:
        """Write one event; when this returns, a killed process no longer loses it."""
        self.append_lines((json.dumps(event, separators=(",", ":"), default=str) + "\n").encode())

    def append_many(self, events: list[dict[str, Any]]) -> None:
        """Write several events with one system call."""
        if not events:
            return
        self.append_lines(
            b"".join(
                (json.dumps(e, separators=(",", ":"), default=str) + "\n").encode() for e in events
            )
        )

    def append_lines(self, data: bytes) -> None:
        """Write events already serialised as JSON lines (each ending in a newline) with one
        system call."""
        if not data:
            return
        with self._lock:
            self._roll_if_needed(len(data))
            os.write(self._fd, data)
            if self.durable:
                os.fsync(self._fd)
            self._size += len(data)

    @property
    def path(self) -> Path | None:
        """The segment being written, if one is open."""
        return self._path

    def _roll_if_needed(self, incoming: int) -> None:
        now = self.clock()
        full = self._size and self._size + incoming > self.max_bytes
        old = now - self._opened >= self.max_seconds
        if self._fd is None or full or old or int(now) // HOUR != int(self._opened) // HOUR:
            self._close_segment()
            self._open_segment(now)

    def _open_segment(self, now: float) -> None:
        self._sequence += 1
        stem = f"{self.kind}.{self.host}.{os.getpid()}.{int(now * 1000)}.{self._sequence}"
        self._path = self.folder / (stem + OPEN)
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size, self._opened = 0, now
        if self.durable:
            sync_folder(self.folder)

    def _close_segment(self) -> None:
        if self._fd is None:
            return
        os.close(self._fd)
        closed = self._path.with_name(self._path.name[: -len(OPEN)] + CLOSED)
        try:
            os.replace(self._path, closed)
        except FileNotFoundError:  # idle past its age: another host sealed it already
            pass
        else:
            if self.durable:
                sync_folder(self.folder)
        self._fd, self._path = None, None

    def close(self) -> None:
        """Close the current segment, ready to be sealed."""
        with self._lock:
            self._close_segment()

    def after_fork(self) -> None:
        """In a forked child: never write to the parent's segment."""
        self._lock = threading.Lock()
        self._fd, self._path, self._size = None, None, 0


def sync_folder(folder: str | Path) -> None:
    """Make the creation, renaming and deletion of a folder's entries survive a power loss."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def list_segments(folder: str | Path, kind: str, host: str = "local") -> list[Segment]:
    """Every segment of a kind in a folder, open or closed, oldest first."""
    folder = Path(folder)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    host = host_name(host)
    found = [Segment.parse(folder / name, host) for name in names if name.startswith(kind + ".")]
    return sorted(
        (s for s in found if s is not None and s.kind == kind), key=lambda s: (s.start, s.id)
    )


def closed_segments(
    folder: str | Path,
    kind: str,
    *,
    host: str = "local",
    max_seconds: float = SEGMENT_SECONDS,
    now: float | None = None,
) -> list[Segment]:
    """Segments ready to seal: closed ones, open ones of this host whose process is gone,
    and open ones of another host older than a writer ever appends to (with a margin for
    clocks that disagree)."""
    host, now = host_name(host), time.time() if now is None else now
    found = []
    for segment in list_segments(folder, kind, host):
        if segment.open and not _abandoned(segment, host, max_seconds, now):
            continue
        found.append(segment)
    return found


def _abandoned(segment: Segment, host: str, max_seconds: float, now: float) -> bool:
    if segment.host == host:
        return segment.pid != os.getpid() and not process_is_alive(segment.pid)
    return now - segment.start / 1000 > 2 * max_seconds + HOUR / 12


def read_segment(path: Path) -> Iterator[dict[str, Any]]:
    """The events of a segment; a torn last line (a write cut by a kill) is skipped."""
    with open(path, "rb") as stream:
        for line in stream:
            if not line.endswith(b"\n"):
                return
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if COLUMNS in event:
                yield from rows_of(event)
            else:
                yield event


def rows_of(event: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The events a columnar line holds: its fields shared by every row, plus each row's
    values of its ``columns`` (name -> list, one value per row)."""
    columns = event.pop(COLUMNS)
    for values in zip(*columns.values(), strict=True):
        yield {**event, **dict(zip(columns, values, strict=True))}
