"""The loop learns from what it served: with ``retrain.served`` the retrain trains on the
endpoint's logged requests joined with their labels (a snapshot appended to a base), never on
rows whose labels have not been posted.

The tiny dataset holds the whole half year, the future included; the base holds only January
and February, what was known when the champion was trained. April and May are served, April
labelled whole and May in part.
"""

from __future__ import annotations

import pandas as pd
from fastapi.testclient import TestClient

import loopml
from loopml.data.from_log import PREDICTION_ID
from loopml.loop import decisions, run_loop
from loopml.serving import create_app
from loopml.serving.deployments import raise_alert
from loopml.tracking.api import lineage

JUNE = pd.Timestamp("2013-06-01", tz="UTC").timestamp()


def _served_policy(policy) -> dict:
    return policy(
        retrain={
            "params": {
                "source": "$served",
                "train_from": "$window_start",
                "split_at": "$validation_start",
                "data_end": "$data_end",
            },
            "served": {"dataset": "tiny.served", "base": "tiny.base"},
        }
    )


def _serve(tiny, months: list[int], labelled: dict[int, int]) -> None:
    """Send the months' rows with their time (ISO text) and post the labels of the first
    labelled[month] rows of each month."""
    rows = tiny.rows(seed=2, every="2h")
    with TestClient(create_app("tiny")) as client:
        for month in months:
            sent = rows[rows["time"].dt.month == month].reset_index(drop=True)
            records = sent[tiny.FEATURES].assign(time=sent["time"].astype(str))
            ids: list[str] = []
            for start in range(0, len(records), 100):
                chunk = records.iloc[start : start + 100].to_dict("records")
                answer = client.post("/predict", json={"records": chunk})
                ids += [p["id"] for p in answer.json()["predictions"]]
            count = labelled[month]
            items = [
                {"id": i, "label": bool(y)}
                for i, y in zip(ids[:count], sent[tiny.TARGET][:count], strict=True)
            ]
            assert client.post("/feedback", json=items).json()["accepted"] == len(items)


def _base(tiny) -> None:
    history = tiny.rows()
    loopml.data.add("tiny.base", history[history["time"].dt.month <= 2], time_column="time")


def test_the_retrain_trains_on_the_served_rows_whose_labels_came(endpoint, tiny, policy) -> None:
    _base(tiny)
    _serve(tiny, [4, 5], labelled={4: 10_000, 5: 150})
    raise_alert(endpoint, "rule:drift", "psi breached")
    step = run_loop(endpoint, _served_policy(policy), as_of=JUNE)
    made = {d.action: d for d in step.decisions}
    source = made["retrain"].evidence["params"]["source"]
    assert source.startswith("tiny.served@")
    snapshot = loopml.data.get(source)
    assert snapshot.record.parent_id == loopml.data.get("tiny.base").record.id
    served = snapshot.to_pandas()
    april = int((served["time"].dt.month == 4).sum())
    assert april == 360  # every two hours of April, all labelled
    assert int((served["time"].dt.month == 5).sum()) == 150  # only the labels posted
    assert served.loc[served["time"].dt.month > 2, PREDICTION_ID].notna().all()
    judged = made.get("gate_passed") or made.get("gate_failed")
    assert judged.evidence["rows"] == 150  # the gate sees May's labelled rows, no others
    readers = lineage(snapshot.record.digest)["read_by"]
    assert made["retrain"].evidence["run"] in {found.run_id for found in readers}


def test_a_retrain_with_nothing_labelled_is_recorded_not_raised(endpoint, tiny, policy) -> None:
    _base(tiny)
    raise_alert(endpoint, "rule:drift", "psi breached")
    step = run_loop(endpoint, _served_policy(policy), as_of=JUNE)
    assert step.message == "the retrain failed; see the decision log"
    failed = [d for d in decisions(endpoint) if d.action == "retrain_failed"]
    assert failed and "no labelled predictions" in failed[0].message
    assert loopml.models.get_version("tiny@champion").version == 1
