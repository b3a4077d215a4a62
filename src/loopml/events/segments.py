"""Append-only segment files: where a serving process writes each event before it answers.

A ``SegmentWriter`` appends one JSON line per event to ``<home>/events/segments/`` with a
single ``write`` system call on a file opened for appending, so once ``append`` returns the
event is in the operating system's hands: a process killed with SIGKILL loses nothing it
acknowledged (an ``fsync`` per event, for power loss too, is ``durable=True``).

A line is one event, or many sharing most fields: ``{..., "columns": {name: [values]}}``
holds one event per position of its columns (a request of many rows, written at once).

A segment's name says what it holds and who writes it:
``<kind>.<pid>.<start>.<sequence>.open.jsonl`` while its writer has it open, then
``... .jsonl`` once closed (by size, by the hour changing, or at close). A segment left open
by a process that no longer exists counts as closed: its last line may be torn (cut by the
kill) and is skipped when read.
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


@dataclass(frozen=True)
class Segment:
    """A segment file and what its name says."""

    path: Path
    kind: str
    pid: int
    start: int
    sequence: int
    open: bool

    @property
    def id(self) -> str:
        return f"{self.kind}.{self.pid}.{self.start}.{self.sequence}"

    @classmethod
    def parse(cls, path: Path) -> Segment | None:
        name = path.name
        is_open = name.endswith(OPEN)
        stem = name[: -len(OPEN)] if is_open else name.removesuffix(CLOSED)
        parts = stem.split(".")
        if len(parts) != 4 or not all(p.isdigit() for p in parts[1:]) or stem == name:
            return None
        return cls(path, parts[0], int(parts[1]), int(parts[2]), int(parts[3]), is_open)


class SegmentWriter:
    """Appends events of one kind ('predictions', 'feedback') to segment files; thread-safe."""

    def __init__(
        self, folder: str | Path, kind: str, *, max_bytes: int, durable: bool = False
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.kind, self.max_bytes, self.durable = kind, max_bytes, durable
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._hour = -1
        self._sequence = 0

    def append(self, event: dict[str, Any]) -> None:
        """Write one event; when this returns, a killed process no longer loses it."""
        line = (json.dumps(event, separators=(",", ":"), default=str) + "\n").encode()
        with self._lock:
            self._roll_if_needed(len(line))
            os.write(self._fd, line)
            if self.durable:
                os.fsync(self._fd)
            self._size += len(line)

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

    def _roll_if_needed(self, incoming: int) -> None:
        hour = int(time.time()) // HOUR
        full = self._size and self._size + incoming > self.max_bytes
        if self._fd is None or full or hour != self._hour:
            self._close_segment()
            self._open_segment(hour)

    def _open_segment(self, hour: int) -> None:
        self._sequence += 1
        stem = f"{self.kind}.{os.getpid()}.{int(time.time() * 1000)}.{self._sequence}"
        self._path = self.folder / (stem + OPEN)
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size, self._hour = 0, hour

    def _close_segment(self) -> None:
        if self._fd is None:
            return
        os.close(self._fd)
        closed = self._path.with_name(self._path.name[: -len(OPEN)] + CLOSED)
        os.replace(self._path, closed)
        self._fd, self._path = None, None

    def close(self) -> None:
        """Close the current segment, ready to be sealed."""
        with self._lock:
            self._close_segment()

    def after_fork(self) -> None:
        """In a forked child: never write to the parent's segment."""
        self._lock = threading.Lock()
        self._fd, self._path, self._size = None, None, 0


def closed_segments(folder: str | Path, kind: str) -> list[Segment]:
    """Segments ready to seal: closed ones, and open ones whose writer is gone."""
    folder = Path(folder)
    if not folder.exists():
        return []
    found = []
    for path in sorted(folder.glob(f"{kind}.*")):
        segment = Segment.parse(path)
        if segment is None or segment.kind != kind:
            continue
        if segment.open and segment.pid != os.getpid() and process_is_alive(segment.pid):
            continue
        if segment.open and segment.pid == os.getpid():
            continue
        found.append(segment)
    return found


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
