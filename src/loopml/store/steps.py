"""Repository functions for the step cache: which step run produced the outputs of a key."""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loopml.store.metadata import insert_ignore
from loopml.store.schema import step_cache


@dataclass(frozen=True, slots=True)
class StoredOutput:
    """One output of a step as stored: its name, content hash and size in bytes."""

    name: str
    digest: str
    size: int
    type: str = ""  # module.Class of the value, when known


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """The outputs a step run produced for a cache key."""

    key: str
    step: str
    run_id: str
    outputs: tuple[StoredOutput, ...]
    created_at: float


def find(connection: Connection, key: str) -> CacheEntry | None:
    """The cache entry of a key, or None."""
    row = connection.execute(sa.select(step_cache).where(step_cache.c.key == key)).first()
    if row is None:
        return None
    outputs = tuple(StoredOutput(**item) for item in json.loads(row.outputs))
    return CacheEntry(row.key, row.step, row.run_id, outputs, row.created_at)


def put(connection: Connection, entry: CacheEntry) -> None:
    """Record a key's outputs; the first entry of a key stays (equal keys mean equal work)."""
    outputs = json.dumps(
        [
            {"name": o.name, "digest": o.digest, "size": o.size, "type": o.type}
            for o in entry.outputs
        ]
    )
    row = {
        "key": entry.key,
        "step": entry.step,
        "run_id": entry.run_id,
        "outputs": outputs,
        "created_at": entry.created_at,
    }
    insert_ignore(connection, step_cache, [row], ["key"])


def forget(connection: Connection, key: str) -> None:
    """Drop a key whose outputs are gone from the artifact store."""
    connection.execute(sa.delete(step_cache).where(step_cache.c.key == key))
