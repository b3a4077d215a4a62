"""Events: the append-only logs of predictions and feedback.

A serving process appends each event to a local segment before it answers, so a killed
process loses nothing it acknowledged; ``seal`` turns closed segments into Parquet partitions
by endpoint and hour; ``read_events`` queries them with DuckDB, unsealed segments included.
"""

from __future__ import annotations

from loopml.events.log import find, read_events, seal, writer
from loopml.events.segments import SegmentWriter, closed_segments, read_segment

__all__ = [
    "SegmentWriter",
    "closed_segments",
    "find",
    "read_events",
    "read_segment",
    "seal",
    "writer",
]
