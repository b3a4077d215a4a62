"""Training data from what was served: an endpoint's logged requests joined with the labels
that came back for them, stored as a content-addressed snapshot.

    snapshot = loopml.data.from_log("flights", "flights.served", target="delayed",
                                    base="flights.base", time_column="time_hour")

Each row is one answered prediction whose label has been posted: the request's columns as
they were logged, the label under ``target``, and four columns of lineage (the prediction's
id, when it was made, when its label came, the version that answered). Only labels already
posted are read, so a replay's future is never seen. With a base snapshot the rows are
appended to it, cast to its columns' types: columns the base lacks are dropped, columns the
log lacks are empty. The snapshot's source names the endpoint and the log window it came from;
its parent is the base.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loopml.data.snapshots import Snapshot, add, get
from loopml.errors import DataError, UsageError
from loopml.workspace import Workspace, current_workspace

PREDICTION_ID, PREDICTED_AT, LABELLED_AT, SERVED_VERSION = (
    "_loopml_prediction_id",
    "_loopml_predicted_at",
    "_loopml_labelled_at",
    "_loopml_version",
)
LINEAGE = (PREDICTION_ID, PREDICTED_AT, LABELLED_AT, SERVED_VERSION)


def from_log(
    endpoint: str,
    name: str,
    *,
    target: str,
    since: float | None = None,
    until: float | None = None,
    base: str | Snapshot | None = None,
    time_column: str | None = None,
    workspace: Workspace | None = None,
) -> Snapshot:
    """A snapshot of dataset NAME made of the predictions endpoint made in [since, until)
    (seconds since 1970; all of the log by default) whose labels have been posted.

    target: the label's column. base: a snapshot the rows are appended to (its time column is
    the snapshot's unless ``time_column`` names another). time_column: a logged request column
    that orders the rows in time (parsed as timestamps); without one, the prediction's time."""
    from loopml.events.labelled import (
        ID,
        LABEL,
        LABEL_TIME,
        TIME,
        VERSION,
        labelled_rows,
    )

    workspace = workspace or current_workspace()
    end = float(until) if until is not None else time.time()
    start = float(since) if since is not None else 0.0
    if end <= start:
        raise UsageError(f"--until ({_iso(end)}) must come after --since ({_iso(start)}).")
    parent = get(base, workspace=workspace) if base is not None else None
    found = labelled_rows(endpoint, made_since=start, workspace=workspace)
    found = _made_before(found, TIME, end)
    if not found.num_rows or LABEL not in found.column_names:
        raise DataError(
            f"Endpoint {endpoint!r} has no labelled predictions made between {_iso(start)} and "
            f"{_iso(end)}: send labels with POST /feedback or 'loopml feedback' first."
        )
    renames = {ID: PREDICTION_ID, TIME: PREDICTED_AT, LABEL_TIME: LABELLED_AT}
    renames |= {VERSION: SERVED_VERSION, LABEL: target}
    if target in found.column_names:
        raise DataError(
            f"The logged requests of {endpoint!r} have a column {target!r}, the target's name: "
            "the label cannot take its place. Name the target otherwise."
        )
    lineage = [c for c in found.column_names if c.startswith("__") and c not in renames]
    rows = found.drop_columns(lineage)
    rows = rows.rename_columns([renames.get(c, c) for c in rows.column_names])
    rows = _with_times(rows)
    time_column = time_column or (parent.record.time_column if parent else None)
    dropped: list[str] = []
    if parent is not None:
        rows, dropped = _like(rows, parent, target)
    elif time_column is not None:
        rows = _as_timestamps(rows, time_column)
    rows = _ordered(rows, time_column or PREDICTED_AT)
    return add(
        name,
        rows,
        time_column=time_column or PREDICTED_AT,
        parent=parent,
        description=_description(endpoint, start, end, found.num_rows, parent, dropped),
        workspace=workspace,
    )


def _made_before(rows: pa.Table, column: str, end: float) -> pa.Table:
    if not rows.num_rows or column not in rows.column_names:
        return rows
    return rows.filter(pc.less(rows.column(column), end))


def _with_times(rows: pa.Table) -> pa.Table:
    """The prediction's and the label's times as UTC timestamps, not seconds."""
    for column in (PREDICTED_AT, LABELLED_AT):
        seconds = rows.column(column).cast(pa.float64())
        micros = pc.cast(pc.round(pc.multiply(seconds, 1e6)), pa.int64())
        stamps = micros.cast(pa.timestamp("us", tz="UTC"))
        rows = rows.set_column(rows.column_names.index(column), column, stamps)
    return rows


def _as_timestamps(rows: pa.Table, column: str) -> pa.Table:
    """A logged column parsed as UTC timestamps (requests carry times as text)."""
    if column not in rows.column_names:
        raise DataError(
            f"The logged requests have no column {column!r} to order them in time. Their "
            f"columns: {', '.join(c for c in rows.column_names if c not in LINEAGE)}."
        )
    values = rows.column(column)
    if pa.types.is_timestamp(values.type):
        return rows
    try:
        parsed = pd.to_datetime(values.to_pandas(), utc=True, format="ISO8601")
    except (ValueError, TypeError) as error:
        raise DataError(
            f"The logged column {column!r} does not hold times ({error}); send ISO times such "
            "as 2024-01-31T05:00:00Z."
        ) from None
    stamps = pa.array(parsed, pa.timestamp("us", tz="UTC"))
    return rows.set_column(rows.column_names.index(column), column, stamps)


def _like(rows: pa.Table, parent: Snapshot, target: str) -> tuple[pa.Table, list[str]]:
    """The logged rows under the base's columns and types, the base's rows first; the lineage
    columns after them (empty for the base's rows). Returns the rows and the logged columns
    the base lacks, which are dropped."""
    old = parent.to_arrow()
    if target not in old.column_names:
        raise DataError(
            f"The base {parent.ref} has no column {target!r} for the labels. Its columns: "
            f"{', '.join(old.column_names)}."
        )
    columns = {}
    for field in old.schema:
        if field.name not in rows.column_names:
            columns[field.name] = pa.nulls(rows.num_rows, field.type)
        elif pa.types.is_timestamp(field.type):
            parsed = _as_timestamps(rows, field.name).column(field.name)
            columns[field.name] = parsed.cast(field.type)
        else:
            columns[field.name] = _cast(rows.column(field.name), field, parent.ref)
    for column in LINEAGE:
        columns[column] = rows.column(column)
    new = pa.table(columns)
    base = old.append_column(PREDICTION_ID, pa.nulls(old.num_rows, pa.string()))
    for column in LINEAGE[1:]:
        base = base.append_column(column, pa.nulls(old.num_rows, new.schema.field(column).type))
    dropped = [c for c in rows.column_names if c not in columns]
    base = base.select(new.column_names).cast(new.schema)
    return pa.concat_tables([base, new]), dropped


def _cast(values: Any, field: pa.Field, ref: str) -> Any:
    try:
        return values.cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise DataError(
            f"The logged column {field.name!r} ({values.type}) does not fit the base {ref}'s "
            f"{field.type}: {error}"
        ) from None


def _ordered(rows: pa.Table, column: str) -> pa.Table:
    """In time order, ties by prediction id, so the same rows make the same snapshot."""
    keys = [(column, "ascending"), (PREDICTION_ID, "ascending")]
    if column == PREDICTION_ID:
        keys = keys[1:]
    return rows.sort_by(keys)


def _description(
    endpoint: str,
    start: float,
    end: float,
    count: int,
    parent: Snapshot | None,
    dropped: list[str],
) -> str:
    text = (
        f"log of endpoint {endpoint}: {count:,} labelled predictions made in "
        f"[{_iso(start)}, {_iso(end)})"
    )
    if parent is not None:
        text += f", appended to {parent.ref}"
    if dropped:
        text += f" (logged columns not in the base, left out: {', '.join(dropped)})"
    return text


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
