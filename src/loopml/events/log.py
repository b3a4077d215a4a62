"""The event log of the current workspace: its event store's operations by kind.

Thin helpers over ``Workspace.events`` (``store.py``), for callers that hold a workspace or
use the current one.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from loopml.events.segments import SegmentWriter
from loopml.events.store import KINDS, hour_of, quoted
from loopml.workspace import Workspace, current_workspace

__all__ = [
    "KINDS",
    "find",
    "hour_of",
    "quoted",
    "read_events",
    "seal",
    "write_partition",
    "writer",
]


def writer(workspace: Workspace, kind: str) -> SegmentWriter:
    """The process's writer of one kind of event in a workspace (made once)."""
    return workspace.events.writer(kind)


def seal(kind: str, *, workspace: Workspace | None = None) -> int:
    """Move closed segments of a kind into Parquet partitions; returns the events sealed."""
    return (workspace or current_workspace()).events.seal(kind)


def write_partition(
    kind: str, endpoint: str, moment: float, table: pa.Table, name: str, workspace: Workspace
) -> str:
    """Write events straight into the partition of an endpoint and hour (batch scoring)."""
    return workspace.events.write_partition(kind, endpoint, moment, table, name)


def read_events(
    kind: str,
    *,
    endpoint: str | None = None,
    since: float | None = None,
    until: float | None = None,
    workspace: Workspace | None = None,
) -> pd.DataFrame:
    """Every event of a kind, sealed or not, oldest first; filtered by endpoint and time."""
    store = (workspace or current_workspace()).events
    return store.snapshot(kind, endpoint=endpoint, since=since, until=until).frame()


def find(kind: str, ids: list[str], *, workspace: Workspace | None = None) -> dict[str, str]:
    """Which of these ids the log of a kind holds: id → its endpoint."""
    return (workspace or current_workspace()).events.find(kind, ids)


def compact(*, workspace: Workspace | None = None) -> dict[str, dict[str, int]]:
    """Merge each finished hour's files of both logs and delete hours past
    ``events_retention_days``: per kind, the files merged and the hours deleted."""
    workspace = workspace or current_workspace()
    store, days = workspace.events, workspace.settings.events_retention_days
    done = {}
    for kind in KINDS:
        expired = store.expire(kind, older_than=days * 86400) if days else 0
        done[kind] = {"merged": store.compact(kind), "expired": expired}
    return done


def status(*, workspace: Workspace | None = None) -> dict[str, dict[str, int]]:
    """Per kind: segments not sealed yet (and their bytes), sealed files, hours, events."""
    store = (workspace or current_workspace()).events
    return {kind: store.status(kind) for kind in KINDS}
