"""Adaptive batching: requests that arrive while the model is busy are scored together.

A server process scores one batch at a time, on a thread of its own, so the event loop keeps
reading and checking requests meanwhile. When the model finishes, everything that queued up
for the same version becomes the next batch: one call of the model instead of one per
request. Nothing waits for a batch to fill: a lone request is scored at once, so batching
costs no latency when traffic is light and saves the model's per-call overhead when it is
heavy. A batch the model fails on is scored again request by request, so one bad request
fails alone.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from loopml.serving.model import ServedModel

MAX_ROWS = 4096


@dataclass
class _Item:
    served: ServedModel
    rows: pa.Table
    future: asyncio.Future
    result: Any = None
    error: BaseException | None = None


@dataclass
class Batcher:
    """Scores requests of one server process in adaptive batches."""

    max_rows: int = MAX_ROWS
    _waiting: list[_Item] = field(default_factory=list)
    _running: bool = False
    _task: asyncio.Task | None = None

    async def predict(self, served: ServedModel, rows: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """(scores, labels) of these rows by this version."""
        loop = asyncio.get_running_loop()
        item = _Item(served, rows, loop.create_future())
        self._waiting.append(item)
        if not self._running:
            self._running = True
            self._task = loop.create_task(self._drain())
        return await item.future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._take()
                await asyncio.to_thread(_score, batch)
                for item in batch:
                    if item.error is not None:
                        item.future.set_exception(item.error)
                    else:
                        item.future.set_result(item.result)
        finally:
            self._running = False

    def _take(self) -> list[_Item]:
        """The oldest request and those after it for the same version, up to max_rows."""
        first = self._waiting[0]
        batch, rest, rows = [], [], 0
        for item in self._waiting:
            fits = not batch or rows + item.rows.num_rows <= self.max_rows
            if item.served is first.served and fits:
                batch.append(item)
                rows += item.rows.num_rows
            else:
                rest.append(item)
        self._waiting = rest
        return batch


def _score(batch: list[_Item]) -> None:
    """Score a batch in one call; if that fails, each request alone, to find which failed."""
    if len(batch) > 1 and _score_together(batch):
        return
    for item in batch:
        try:
            item.result = item.served.predict(item.rows)
        except Exception as error:
            item.error = error


def _score_together(batch: list[_Item]) -> bool:
    """Score every request of a batch in one call of the model; False if it failed."""
    try:
        rows = pa.concat_tables([item.rows for item in batch], promote_options="permissive")
        scores, labels = batch[0].served.predict(rows)
    except Exception:  # a request the model cannot score: the caller scores them one by one
        return False
    start = 0
    for item in batch:
        end = start + item.rows.num_rows
        item.result = (scores[start:end], labels[start:end])
        start = end
    return True
