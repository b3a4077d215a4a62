"""Events: the append-only logs of predictions and feedback.

A serving process appends each event to a segment before it answers, so a killed process
loses nothing it acknowledged; ``seal`` turns closed segments into Parquet partitions by
endpoint and hour; snapshots read them with DuckDB, unsealed segments included. The store
is the workspace's ``events`` (``store.py``), a local folder or an object store.
"""

from __future__ import annotations

from loopml.events.log import find, read_events, seal, writer
from loopml.events.segments import SegmentWriter, closed_segments, read_segment
from loopml.events.store import EventStore, Snapshot

__all__ = [
    "EventStore",
    "SegmentWriter",
    "Snapshot",
    "closed_segments",
    "find",
    "read_events",
    "read_segment",
    "seal",
    "writer",
]
