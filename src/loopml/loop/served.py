"""What an endpoint served, with the labels that came back for it, and versions compared on
those very rows.

The loop reads these to judge a promotion once its labels arrive (did the new champion
serve better than the version it replaced?) and to compare the champion with earlier
versions on the newest labels. Only labels already posted are read: a replay's future is
never seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from loopml.events.labelled import ID, LABEL, LABEL_TIME, ROLE, TIME, VERSION, labelled_rows
from loopml.workspace import Workspace

__all__ = [
    "ID",
    "LABEL",
    "LABEL_TIME",
    "ROLE",
    "TIME",
    "VERSION",
    "Comparison",
    "compare_on",
    "labelled_rows",
    "score_versions",
]


@dataclass
class Comparison:
    """One version against another on the same labelled rows: the metric of each and the
    improvement (in the metric's own direction) with its paired bootstrap interval."""

    metric: str
    rows: int
    ours: float
    theirs: float
    gain: float
    low: float
    high: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "rows": self.rows,
            "ours": self.ours,
            "theirs": self.theirs,
            "improvement": self.gain,
            "low": self.low,
            "high": self.high,
        }


def compare_on(
    rows: pa.Table,
    scores: dict[int, np.ndarray],
    versus: int,
    *,
    task: str,
    metric: str,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[int, Comparison]:
    """Each scored version against ``versus`` on the labelled rows, with paired intervals:
    one bootstrap, every version resampled on the same rows."""
    from loopml.evaluation.evaluate import evaluate
    from loopml.evaluation.wording import improvement

    frame = pd.DataFrame({f"v{v}": found for v, found in scores.items()})
    frame[LABEL] = _labels(rows.column(LABEL).to_pylist(), task)
    others = [v for v in scores if v != versus]
    evaluation = evaluate(
        f"v{versus}",
        frame,
        target=LABEL,
        task=task,
        baselines={f"v{v}": f"v{v}" for v in others},
        metrics=[metric],
        resamples=resamples,
        level=level,
        seed=seed,
    )
    theirs = evaluation.metrics[metric].value
    found = {}
    for version in others:
        # the evaluation's difference is versus minus the version: turned round, it is the
        # version's own
        difference = evaluation.differences[f"v{version}"][metric]
        gain, low, high = improvement(metric, -difference.value, -difference.high, -difference.low)
        ours = theirs - difference.value
        found[version] = Comparison(metric, len(frame), ours, theirs, gain, low, high)
    return found


def _labels(values: list[Any], task: str) -> list[Any]:
    """Labels as logged (JSON values) made comparable: numbers for regression."""
    if task == "regression":
        return [float(value) if value is not None else np.nan for value in values]
    return values


def score_versions(
    name: str, versions: list[int], rows: pa.Table, workspace: Workspace
) -> dict[int, np.ndarray]:
    """Each version's scores on the logged rows, computed as its server computes them."""
    from loopml.serving.model import load_served

    inputs = rows.drop_columns([c for c in rows.column_names if c.startswith("__")])
    return {
        version: load_served(f"{name}@{version}", workspace).predict(inputs)[0]
        for version in versions
    }
