"""Feedback: labels posted to a running server or imported in bulk, joined to predictions by
id; unknown ids reported and kept, never dropped."""

from __future__ import annotations

import httpx
import pandas as pd
import pytest

from loopml.errors import ColumnNotFoundError
from loopml.events import read_events, seal
from loopml.serving import import_feedback, labelled

ROWS = [{"a": 0.5, "b": 1.0}, {"a": -1.0, "b": 0.2}, {"a": 2.0, "b": -3.0}]


def _predicted(client: httpx.Client) -> list[str]:
    answer = client.post("/predict", json={"records": ROWS})
    return [p["id"] for p in answer.json()["predictions"]]


def test_posted_labels_join_their_predictions_and_unknown_ids_are_reported(server) -> None:
    ids = _predicted(server)
    one = server.post("/feedback", json={"id": ids[0], "label": True})
    assert one.status_code == 200 and one.json() == {"accepted": 1, "unknown": []}
    many = server.post(
        "/feedback",
        json={"feedback": [{"id": ids[1], "label": False}, {"id": "nope", "label": True}]},
    )
    assert many.json() == {"accepted": 1, "unknown": ["nope"]}
    feedback = read_events("feedback")
    assert len(feedback) == 3  # the unknown one is kept, marked
    assert feedback.set_index("id").loc["nope", "status"] == "unknown_id"
    joined = labelled("churn").set_index("id")
    assert set(joined.index) == set(ids[:2])
    assert bool(joined.loc[ids[0], "label"]) is True and joined.loc[ids[0], "role"] == "champion"
    predictions = read_events("predictions").set_index("id")
    assert joined.loc[ids[1], "score"] == predictions.loc[ids[1], "output.score"]


def test_a_later_label_replaces_an_earlier_one(server) -> None:
    ids = _predicted(server)
    server.post("/feedback", json={"id": ids[0], "label": False})
    server.post("/feedback", json={"id": ids[0], "label": True})
    assert labelled("churn")["label"].tolist() == [True]


@pytest.mark.parametrize(
    "body, where",
    [
        ({"label": True}, "feedback[0].id"),
        ({"id": "x"}, "feedback[0].label"),
        ([{"id": "x", "label": {"nested": 1}}], "feedback[0].label"),
        ([], "body"),
        ("text", "body"),
    ],
)
def test_bad_feedback_gets_422_with_its_problems(server, body, where) -> None:
    answer = server.post("/feedback", json=body)
    assert answer.status_code == 422
    assert answer.json()["problems"][0]["location"] == where
    assert read_events("feedback").empty


def test_a_label_that_is_not_valid_unicode_is_refused_and_the_labels_stay_readable(
    server,
) -> None:
    ids = _predicted(server)
    body = b'{"id": "%s", "label": "\\ud800"}' % ids[0].encode()  # a lone surrogate
    answer = server.post("/feedback", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422
    assert answer.json()["problems"][0]["location"] == "body.label"
    assert read_events("feedback").empty
    paired = b'{"id": "%s", "label": "\\ud83d\\ude00"}' % ids[1].encode()  # an emoji is fine
    kept = server.post("/feedback", content=paired, headers={"content-type": "application/json"})
    assert kept.json()["accepted"] == 1
    assert labelled("churn")["label"].tolist() == ["\U0001f600"]


def test_feedback_that_is_not_json_is_refused_as_such(server) -> None:
    ids = _predicted(server)
    form = server.post("/feedback", data={"id": ids[0], "label": "1"})  # a browser's form post
    assert form.status_code == 415
    assert "application/json" in form.json()["problems"][0]["message"]
    assert read_events("feedback").empty


def test_labels_import_in_bulk_from_sealed_and_unsealed_logs(server, tmp_path) -> None:
    first = _predicted(server)
    from loopml.events.log import writer
    from loopml.workspace import current_workspace

    writer(current_workspace(), "predictions").close()  # closes the segment: it can be sealed
    assert seal("predictions") == 3
    second = _predicted(server)
    labels = pd.DataFrame(
        {"prediction": first + second + ["missing"], "truth": [1, 0, 1, 0, 1, 1, 0]}
    )
    labels.to_parquet(tmp_path / "labels.parquet")
    result = import_feedback(
        tmp_path / "labels.parquet", id_column="prediction", label_column="truth"
    )
    assert result.accepted == 6 and result.unknown == ["missing"]
    assert len(labelled("churn")) == 6
    with pytest.raises(ColumnNotFoundError, match="--id-column"):
        import_feedback(tmp_path / "labels.parquet")
