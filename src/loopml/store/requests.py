"""Writes done once: a server records the result of each write it does under the client's
idempotency key, in the write's own transaction, so a client that retries a write whose answer
it lost gets the first answer instead of doing the write twice."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from loopml.store.metadata import MetadataStore, insert_ignore
from loopml.store.operations import Operation
from loopml.store.schema import applied_requests

KEPT_SECONDS = 7 * 86400  # how long a key is remembered: far longer than any client retries
_PRUNE_EVERY = 1000


def perform_once(
    store: MetadataStore, operation: Operation, arguments: dict[str, Any], key: str | None
) -> bytes:
    """Run an operation and return its result as JSON; a write under a key seen before
    returns the result recorded then, and does nothing."""
    if key is None or not operation.write:
        return operation.result.dump_json(store.perform(operation, arguments))
    with store.write() as connection:
        query = sa.select(applied_requests.c.result).where(applied_requests.c.key == key)
        done = connection.execute(query).scalar()
        if done is not None:
            return done.encode()
        result = operation.result.dump_json(operation.function(connection, **arguments))
        now = time.time()
        row = {"key": key, "operation": operation.name, "result": result.decode(), "at": now}
        insert_ignore(connection, applied_requests, [row], ["key"])
        if hash(key) % _PRUNE_EVERY == 0:
            old = applied_requests.c.at < now - KEPT_SECONDS
            connection.execute(applied_requests.delete().where(old))
        return result
