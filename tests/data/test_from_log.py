"""Training data from what was served: logged requests joined with their labels become a
snapshot (loopml.data.from_log and `loopml data from-log`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

import loopml
from loopml.data.from_log import LABELLED_AT, PREDICTED_AT, PREDICTION_ID, SERVED_VERSION
from loopml.errors import DataError, UsageError
from loopml.serving import create_app

LOOP_TESTS = Path(__file__).parent.parent / "loop"


@pytest.fixture
def tiny(sqlite_workspace, monkeypatch: pytest.MonkeyPatch):
    """The loop tests' tiny endpoint: champion version 1 reads a and b and predicts y."""
    monkeypatch.syspath_prepend(str(LOOP_TESTS))
    import tiny_pipeline

    tiny_pipeline.champion("tiny")
    return tiny_pipeline


def _serve(rows: pd.DataFrame, labelled: int, extra: bool = True) -> list[str]:
    """Send the rows (a, b, their time as ISO text, and a column no model reads), then post
    the labels of the first `labelled`; the ids of every prediction."""
    frame = rows[["a", "b"]].assign(time=rows["time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    if extra:
        frame["note"] = "sent"
    ids: list[str] = []
    with TestClient(create_app("tiny")) as client:
        for start in range(0, len(frame), 25):
            answer = client.post(
                "/predict", json={"records": frame.iloc[start : start + 25].to_dict("records")}
            )
            assert answer.status_code == 200, answer.text
            ids += [p["id"] for p in answer.json()["predictions"]]
        items = [
            {"id": i, "label": bool(y)}
            for i, y in zip(ids[:labelled], rows["y"][:labelled], strict=True)
        ]
        if items:
            assert client.post("/feedback", json=items).json()["accepted"] == labelled
    return ids


def _june(tiny, count: int) -> pd.DataFrame:
    found = tiny.rows(seed=5)
    return found[found["time"].dt.month == 6].head(count).reset_index(drop=True)


def test_the_labelled_predictions_become_a_snapshot_with_their_lineage(tiny) -> None:
    rows = _june(tiny, 100)
    ids = _serve(rows, labelled=80)
    snapshot = loopml.data.from_log("tiny", "tiny.served", target="y")
    frame = snapshot.to_pandas().set_index(PREDICTION_ID)
    assert len(frame) == 80  # the unlabelled predictions are not training data
    assert sorted(frame.index) == sorted(ids[:80])
    by_id = frame.loc[ids[:80]]
    assert by_id["y"].tolist() == rows["y"][:80].tolist()
    assert by_id["a"].tolist() == pytest.approx(rows["a"][:80].tolist())
    assert set(by_id[SERVED_VERSION]) == {1}
    assert (by_id[LABELLED_AT] >= by_id[PREDICTED_AT]).all()
    assert snapshot.record.time_column == PREDICTED_AT
    assert snapshot.record.source.startswith("log of endpoint tiny: 80 labelled predictions")
    again = loopml.data.from_log("tiny", "tiny.served", target="y")
    assert again.ref == snapshot.ref  # the same rows are the same snapshot


def test_appended_to_a_base_the_rows_take_its_columns_and_types(tiny) -> None:
    rows = _june(tiny, 60)
    _serve(rows, labelled=60)
    history = tiny.rows(seed=1)
    base = loopml.data.add("tiny.base", history[history["time"].dt.month <= 2], time_column="time")
    snapshot = loopml.data.from_log("tiny", "tiny.train", target="y", base="tiny.base")
    frame = snapshot.to_pandas()
    assert len(frame) == base.record.rows + 60
    assert snapshot.record.parent_id == base.record.id
    assert snapshot.record.time_column == "time"
    assert "note" not in frame.columns  # the base has no such column
    assert "note" in snapshot.record.source
    assert frame["time"].dtype == history["time"].dtype  # logged as text, parsed back
    served = frame[frame[PREDICTION_ID].notna()]
    assert served["time"].tolist() == rows["time"].tolist()
    assert frame["time"].is_monotonic_increasing
    # the recipe trains on it as on the base: June is in the data now
    assert (frame["time"].dt.month == 6).sum() == 60


def test_the_window_bounds_the_predictions_read(tiny) -> None:
    rows = _june(tiny, 50)
    _serve(rows[:25], labelled=25, extra=False)
    between = time.time()
    time.sleep(0.01)
    second = _serve(rows[25:].reset_index(drop=True), labelled=25, extra=False)
    later = loopml.data.from_log("tiny", "tiny.later", target="y", since=between)
    assert sorted(later.to_pandas()[PREDICTION_ID]) == sorted(second)
    earlier = loopml.data.from_log("tiny", "tiny.earlier", target="y", until=between)
    assert not set(earlier.to_pandas()[PREDICTION_ID]) & set(second)
    assert later.record.rows + earlier.record.rows == 50


def test_bad_requests_are_refused_with_what_to_do(tiny) -> None:
    with pytest.raises(DataError, match="no labelled predictions"):
        loopml.data.from_log("tiny", "tiny.served", target="y")
    _serve(_june(tiny, 10), labelled=0)
    with pytest.raises(DataError, match="POST /feedback"):
        loopml.data.from_log("tiny", "tiny.served", target="y")
    with pytest.raises(UsageError, match="must come after"):
        loopml.data.from_log("tiny", "tiny.served", target="y", since=10.0, until=5.0)
    _serve(_june(tiny, 10), labelled=10)
    with pytest.raises(DataError, match="column 'a', the target"):
        loopml.data.from_log("tiny", "tiny.served", target="a")
    assert [d.name for d in loopml.data.list_datasets()] == ["tiny"]


def test_a_time_column_the_log_does_not_have_is_named(tiny) -> None:
    _serve(_june(tiny, 10), labelled=10)
    with pytest.raises(DataError, match="no column 'when'.*Their columns: a, b"):
        loopml.data.from_log("tiny", "tiny.served", target="y", time_column="when")
    parsed = loopml.data.from_log("tiny", "tiny.served", target="y", time_column="time")
    assert str(parsed.to_pandas()["time"].dtype) == "datetime64[us, UTC]"


def test_the_command_stores_the_snapshot(tiny, cli) -> None:
    _serve(_june(tiny, 30), labelled=30)
    args = ["data", "from-log", "tiny", "tiny.served", "--target", "y"]
    stored = cli(*args, "--json")
    assert stored.code == 0, stored.err
    record = json.loads(stored.out)
    assert record["rows"] == 30 and record["dataset"] == "tiny.served"
    refused = cli(*args, "--since", "yesterday")
    assert refused.code != 0 and "--since is a time" in refused.err
