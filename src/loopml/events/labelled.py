"""What an endpoint served, with the labels that came back for it: the logged requests joined
with their latest feedback, one row per answered prediction.

It is the one join of predictions and labels: the loop judges promotions and compares
versions on these rows, the canary guardrails and ``serving.labelled`` read them, and
``loopml data from-log`` makes training data of them. Only labels already posted are read:
a replay's future is never seen.
"""

from __future__ import annotations

import pyarrow as pa

from loopml.events.traffic import Traffic, quoted_column, seal_all
from loopml.workspace import Workspace

ID, LABEL, VERSION, ROLE, TIME, LABEL_TIME, SCORE = (
    "__id__",
    "__label__",
    "__version__",
    "__role__",
    "__time__",
    "__label_time__",
    "__score__",
)


def labelled_rows(
    name: str,
    *,
    made_since: float = 0.0,
    labelled_since: float = 0.0,
    until: float | None = None,
    version: int | None = None,
    role: str | None = None,
    workspace: Workspace,
) -> pa.Table:
    """The answered predictions of endpoint NAME made since ``made_since`` whose latest label
    arrived in [labelled_since, until): their logged inputs as columns, and ID (the
    prediction's), LABEL, VERSION, ROLE, TIME (of the prediction), LABEL_TIME and SCORE.
    ``version`` and ``role`` narrow them to what one version answered in one role."""
    import time

    seal_all(workspace)
    end = float(until if until is not None else time.time() + 1)
    with Traffic(name, made_since, end, workspace) as traffic:
        if not traffic.has("feedback", "label") or not traffic.has("predictions", "version"):
            return pa.table({LABEL: pa.array([], pa.string())})
        inputs = [c for c in traffic.columns["predictions"] if c.startswith("input.")]
        labels = (
            "SELECT id, time AS label_time, label FROM feedback WHERE status = 'ok' AND "
            f"time >= {float(labelled_since)!r} AND time < {end!r} "
            "QUALIFY row_number() OVER (PARTITION BY id ORDER BY time DESC) = 1"
        )
        narrower = []
        if version is not None:
            narrower.append(f"p.version = {int(version)}")
        if role is not None:
            narrower.append(f"coalesce(p.role, 'champion') = '{_sql_word(role)}'")
        columns = ", ".join(
            [f"p.{quoted_column(c)} AS {quoted_column(c[len('input.') :])}" for c in inputs]
            + [
                f"p.id AS {ID}",
                f"l.label AS {LABEL}",
                f"p.version AS {VERSION}",
                f"coalesce(p.role, 'champion') AS {ROLE}",
                f"p.time AS {TIME}",
                f"l.label_time AS {LABEL_TIME}",
                (
                    f'p."output.score" AS {SCORE}'
                    if traffic.has("predictions", "output.score")
                    else f"NULL::DOUBLE AS {SCORE}"
                ),
            ]
        )
        query = (
            f"SELECT {columns} FROM predictions p JOIN ({labels}) l USING (id) "
            f"WHERE {traffic.answered('p')} AND p.time >= {float(made_since)!r} "
            + "".join(f" AND {condition}" for condition in narrower)
            + " ORDER BY p.time, p.id"
        )
        return traffic.connection.sql(query).to_arrow_table()


def _sql_word(text: str) -> str:
    if not text.replace("_", "").isalnum():
        raise ValueError(f"not a role: {text!r}")
    return text
