"""Adaptive batching: requests queued together are scored in one call, each answered with
its own rows; a row's score in a batch matches its score alone to rounding (1e-12 relative)."""

from __future__ import annotations

import asyncio

import numpy as np
import pyarrow as pa

from loopml.serving.batching import Batcher
from loopml.serving.model import load_served


class _Counting:
    """A model that counts the calls it gets."""

    def __init__(self, model) -> None:
        self.model, self.calls = model, []
        self.feature_names_in_ = model.feature_names_in_
        self.classes_ = model.classes_

    def predict_proba(self, frame):
        self.calls.append(len(frame))
        return self.model.predict_proba(frame)


def _requests(count: int) -> list[pa.Table]:
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 9, count)
    return [pa.table({"a": rng.uniform(-10, 10, n), "b": rng.normal(0, 5, n)}) for n in sizes]


def test_queued_requests_are_scored_together_each_with_its_own_rows(
    churn: str, sqlite_workspace
) -> None:
    served = load_served(f"{churn}@1", sqlite_workspace)
    alone = [served.predict(rows)[0] for rows in _requests(40)]
    served.model = _Counting(served.model)

    async def all_at_once():
        batcher = Batcher()
        return await asyncio.gather(*(batcher.predict(served, rows) for rows in _requests(40)))

    answers = asyncio.run(all_at_once())
    assert len(served.model.calls) < 40  # merged
    for (scores, labels), expected in zip(answers, alone, strict=True):
        assert len(scores) == len(expected) == len(labels)
        np.testing.assert_allclose(scores, expected, rtol=1e-12, atol=0)


def test_integers_in_a_float_column_score_as_the_same_floats(churn: str, sqlite_workspace) -> None:
    served = load_served(f"{churn}@1", sqlite_workspace)
    as_integers = pa.table({"a": [-7, -10, 1], "b": [-10, 9, -2261345162318684064]})
    as_floats = pa.table({"a": [-7.0, -10.0, 1.0], "b": [-10.0, 9.0, -2261345162318684064.0]})
    assert served.model_rows(as_integers).schema == as_floats.schema
    assert served.predict(as_integers)[0].tolist() == served.predict(as_floats)[0].tolist()
