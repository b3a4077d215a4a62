"""Feedback: the ground truth that arrives after a prediction, joined to it by the
prediction's id.

Every item is written to the feedback log, known or not: an id the prediction log does not
hold is recorded with status ``unknown_id`` and reported back, never dropped. Sending a label
again for the same id replaces it (the latest wins when joined).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import ColumnNotFoundError, DataError
from loopml.events.log import find, writer
from loopml.serving.payloads import PayloadError, problem
from loopml.workspace import Workspace, current_workspace

IMPORT_CHUNK = 100_000


@dataclass
class FeedbackResult:
    """How many labels were joined to a prediction, and the ids that matched none."""

    accepted: int = 0
    unknown: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "unknown": self.unknown}

    def add(self, other: FeedbackResult) -> None:
        self.accepted += other.accepted
        self.unknown.extend(other.unknown)


class RecentIds:
    """The ids this process predicted lately, with their endpoint: most feedback for a
    prediction arrives at the server that made it, and needs no look-up in the log.

    Two generations of plain dicts: new ids go to the current one; when it holds half of
    ``size`` it becomes the previous one and the oldest generation is dropped. So the last
    ``size / 2`` to ``size`` ids are kept, and adding a request's ids costs one dict update.
    """

    def __init__(self, size: int = 200_000) -> None:
        self.half = max(size // 2, 1)
        self._current: dict[str, str] = {}
        self._previous: dict[str, str] = {}

    def add(self, ids: Iterable[str], endpoint: str) -> None:
        self._current.update(dict.fromkeys(ids, endpoint))
        if len(self._current) >= self.half:
            self._previous, self._current = self._current, {}

    def get(self, found: str) -> str | None:
        endpoint = self._current.get(found)
        return endpoint if endpoint is not None else self._previous.get(found)


def items_of(body: Any) -> list[dict[str, Any]]:
    """A /feedback body: {"id", "label"}, a list of them, or {"feedback": [...]}."""
    if isinstance(body, dict) and "feedback" in body:
        body = body["feedback"]
    if isinstance(body, dict):
        body = [body]
    if not isinstance(body, list) or not body:
        raise PayloadError([problem("body", 'expected {"id": ..., "label": ...} or a list')])
    problems = []
    for i, item in enumerate(body):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            problems.append(problem(f"feedback[{i}].id", "expected the prediction's id (text)"))
        elif "label" not in item or isinstance(item["label"], dict | list):
            problems.append(problem(f"feedback[{i}].label", "expected a label (one value)"))
    if problems:
        raise PayloadError(problems[:20])
    return body


def record_feedback(
    items: list[dict[str, Any]],
    *,
    source: str = "api",
    recent: RecentIds | None = None,
    workspace: Workspace | None = None,
) -> FeedbackResult:
    """Log labels for predictions by id; returns what was accepted and the unknown ids."""
    workspace = workspace or current_workspace()
    endpoints = {item["id"]: recent.get(item["id"]) if recent else None for item in items}
    missing = [found for found, endpoint in endpoints.items() if endpoint is None]
    if missing:
        endpoints.update(find("predictions", missing, workspace=workspace))
    now, result, events = time.time(), FeedbackResult(), []
    for item in items:
        endpoint = endpoints.get(item["id"])
        if endpoint is None:
            result.unknown.append(item["id"])
        else:
            result.accepted += 1
        events.append(
            {
                "id": item["id"],
                "time": now,
                "endpoint": endpoint or "unknown",
                "label": _plain(item["label"]),
                "source": source,
                "status": "ok" if endpoint else "unknown_id",
            }
        )
    writer(workspace, "feedback").append_many(events)
    return result


def import_feedback(
    path: str | Path,
    *,
    id_column: str = "id",
    label_column: str = "label",
    workspace: Workspace | None = None,
    progress: Any = None,
) -> FeedbackResult:
    """Log the labels of a Parquet or CSV file, read in chunks; ``progress(rows)`` is
    called after each chunk."""
    workspace = workspace or current_workspace()
    from loopml.data.io import open_stream

    result = FeedbackResult()
    for batch in open_stream(path, batch_rows=IMPORT_CHUNK):
        frame = batch.to_pandas()
        for column in (id_column, label_column):
            if column not in frame.columns:
                raise ColumnNotFoundError(
                    f"{path} has no column {column!r}; its columns: {', '.join(frame.columns)}. "
                    "Name the columns with --id-column and --label-column."
                )
        if frame[id_column].isna().any():
            raise DataError(f"{path}: column {id_column!r} has empty ids; every label needs one.")
        items = [
            {"id": str(found), "label": label}
            for found, label in zip(frame[id_column], frame[label_column], strict=True)
        ]
        result.add(record_feedback(items, source="import", workspace=workspace))
        if progress is not None:
            progress(len(items))
    return result


def labelled(
    endpoint: str,
    *,
    since: float | None = None,
    until: float | None = None,
    workspace: Workspace | None = None,
) -> pd.DataFrame:
    """The endpoint's answered predictions made in [since, until) that have a label by now:
    one row per prediction with its id, time, version, role, score and label (the latest
    label sent for it), oldest first."""
    from loopml.events.labelled import ID, LABEL, ROLE, SCORE, TIME, VERSION, labelled_rows

    workspace = workspace or current_workspace()
    rows = labelled_rows(endpoint, made_since=since or 0.0, workspace=workspace)
    names = {ID: "id", TIME: "time", VERSION: "version", ROLE: "role", SCORE: "score"}
    if LABEL not in rows.column_names or ID not in rows.column_names:
        return pd.DataFrame(columns=[*names.values(), "label"])
    frame = rows.select([*names, LABEL]).to_pandas().rename(columns={**names, LABEL: "label"})
    if until is not None:
        frame = frame[frame["time"] < until]
    frame["score"] = frame["score"].astype(np.float64)
    return frame.reset_index(drop=True)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
