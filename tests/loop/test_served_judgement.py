"""What the loop learns from what was served, on the tiny pipeline's endpoint: a promotion
judged on the labels of the traffic the new champion answered (held, or harmful: rolled back
with an alert), and the pool of past champions, one of which is proposed, gated and rolled
out when the newest labels favour it.

Version 2 is trained on May, when y follows -b; version 1 on January and February, when y
follows +b. Labels drawn in the first regime make version 2 the worse one on what it served.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

import loopml
from loopml.loop import decisions, run_loop
from loopml.loop.controller import HARM_ALERT
from loopml.loop.served import ID, LABEL, VERSION, labelled_rows
from loopml.serving import create_app, deployment
from loopml.serving.deployments import alerts, raise_alert
from loopml.store import deployments as alerts_repo
from loopml.workspace import current_workspace

JULY = pd.Timestamp("2013-07-01", tz="UTC").timestamp()
DAY = 86400.0


def _rows(tiny, months: list[int], count: int, seed: int) -> pd.DataFrame:
    frame = tiny.rows(seed=seed, every="1h")
    return frame[frame["time"].dt.month.isin(months)].head(count).reset_index(drop=True)


def _serve_and_label(client: TestClient, rows: pd.DataFrame, tiny) -> list[str]:
    """Send the rows' features in requests of 50, then post their labels; the ids."""
    ids = []
    for start in range(0, len(rows), 50):
        records = rows.loc[start : start + 49, tiny.FEATURES].to_dict("records")
        answer = client.post("/predict", json={"records": records})
        assert answer.status_code == 200, answer.text
        ids += [p["id"] for p in answer.json()["predictions"]]
    items = [{"id": i, "label": bool(y)} for i, y in zip(ids, rows[tiny.TARGET], strict=True)]
    assert client.post("/feedback", json=items).json()["accepted"] == len(ids)
    return ids


def _promote_version_2(endpoint: str, rules: dict, tiny) -> None:
    """The loop retrains on May, canaries version 2 and promotes it."""
    raise_alert(endpoint, "rule:drift", "psi breached")
    assert run_loop(endpoint, rules, as_of=JULY).state == "canary"
    with current_workspace().metadata.write() as connection:  # the drift is dealt with
        alerts_repo.resolve_alerts(connection, endpoint, "rule:drift", time.time())
    records = _rows(tiny, [6], 40, seed=3)[tiny.FEATURES].to_dict("records")
    with TestClient(create_app(endpoint)) as client:
        for i, record in enumerate(records):
            client.post("/predict", json={"records": [record]}, headers={"X-Loopml-Key": f"k{i}"})
    assert run_loop(endpoint, rules, as_of=JULY + DAY).message == "version 2 is champion"


def _policy(policy, harm: bool = True, pool: bool = True) -> dict:
    return policy(
        rollout={
            "shadow_requests": 0,
            "canary_requests": 1,
            "guardrails": {
                "min_requests": 1,
                "max_latency_ratio": None,
                "max_prediction_psi": None,
            },
        },
        harm={"min_rows": 200, "enabled": harm},
        pool={"min_rows": 200, "enabled": pool},
    )


def test_the_labelled_rows_are_what_was_served_with_its_labels(endpoint, tiny) -> None:
    rows = _rows(tiny, [1], 120, seed=4)
    with TestClient(create_app(endpoint)) as client:
        ids = _serve_and_label(client, rows, tiny)
        unlabelled = rows.loc[:9, tiny.FEATURES].to_dict("records")
        client.post("/predict", json={"records": unlabelled})
    found = labelled_rows(endpoint, workspace=current_workspace())
    assert found.num_rows == len(ids)  # the unlabelled request is not among them
    by_id = found.to_pandas().set_index(ID).loc[ids]
    assert by_id[LABEL].tolist() == rows[tiny.TARGET].tolist()
    assert np.allclose(by_id["a"].to_numpy(), rows["a"].to_numpy())
    assert set(found.column(VERSION).to_pylist()) == {1}
    later = labelled_rows(endpoint, labelled_since=1e12, workspace=current_workspace())
    assert later.num_rows == 0


def test_a_harmful_promotion_is_rolled_back_with_an_alert(endpoint, policy, tiny) -> None:
    rules = _policy(policy, pool=False)
    _promote_version_2(endpoint, rules, tiny)
    with TestClient(create_app(endpoint)) as client:
        _serve_and_label(client, _rows(tiny, [1, 2], 100, seed=5), tiny)
        assert run_loop(endpoint, rules, as_of=JULY + 2 * DAY).decisions == []  # too few yet
        _serve_and_label(client, _rows(tiny, [1, 2], 300, seed=6), tiny)
    judged = run_loop(endpoint, rules, as_of=JULY + 3 * DAY)

    assert [d.action for d in judged.decisions] == ["harmful", "rollback"]
    harmful, rollback = judged.decisions
    assert harmful.version == 2 and harmful.evidence["previous"] == 1
    assert harmful.evidence["rows"] == 400 and harmful.evidence["high"] < 0
    assert harmful.message.startswith("version 2 served worse than version 1 would have")
    assert "roc_auc improvement -" in harmful.message
    assert rollback.version == 1 and judged.message == "version 1 is champion again"
    assert loopml.models.get_version("tiny@champion").version == 1
    (alert,) = [a for a in alerts(endpoint, open_only=True) if a.kind == HARM_ALERT]
    assert alert.details["previous"] == 1
    moves = [(e.action, e.alias, e.to_version) for e in loopml.models.history(endpoint)]
    assert moves[-1] == ("rollback", "champion", 1)
    assert run_loop(endpoint, rules, as_of=JULY + 4 * DAY).decisions == []  # judged once


def test_a_promotion_that_serves_well_is_held(endpoint, policy, tiny) -> None:
    rules = _policy(policy, pool=False)
    _promote_version_2(endpoint, rules, tiny)
    with TestClient(create_app(endpoint)) as client:
        _serve_and_label(client, _rows(tiny, [5, 6], 300, seed=7), tiny)
    (held,) = run_loop(endpoint, rules, as_of=JULY + 2 * DAY).decisions
    assert held.action == "held" and held.version == 2 and held.evidence["low"] > 0
    assert loopml.models.get_version("tiny@champion").version == 2
    assert [d.action for d in decisions(endpoint)][-1] == "held"


def test_the_pool_proposes_a_past_champion_the_new_labels_favour(endpoint, policy, tiny) -> None:
    rules = _policy(policy, harm=False)
    _promote_version_2(endpoint, rules, tiny)
    with TestClient(create_app(endpoint)) as client:
        _serve_and_label(client, _rows(tiny, [1, 2], 300, seed=8), tiny)
    stepped = run_loop(endpoint, rules, as_of=JULY + 2 * DAY)

    assert [d.action for d in stepped.decisions] == ["pool", "gate_passed", "canary"]
    pool = stepped.decisions[0]
    assert pool.evidence["proposed"] == 1 and pool.evidence["versions"]["1"]["low"] > 0
    assert pool.message.startswith("version 1 beats champion 2 on 300 new labels")
    assert deployment(endpoint)[0].canary.version == "1"
    assert stepped.state == "canary"


def test_the_pool_without_a_better_version_records_that_it_looked(endpoint, policy, tiny) -> None:
    rules = _policy(policy, harm=False)
    _promote_version_2(endpoint, rules, tiny)
    with TestClient(create_app(endpoint)) as client:
        _serve_and_label(client, _rows(tiny, [5, 6], 300, seed=9), tiny)
    (looked,) = run_loop(endpoint, rules, as_of=JULY + 2 * DAY).decisions
    assert looked.action == "pool" and "proposed" not in looked.evidence
    assert looked.message.startswith("no earlier version beats champion 2 on 300 new labels")
    assert run_loop(endpoint, rules, as_of=JULY + 3 * DAY).decisions == []  # no new labels


def test_a_pool_of_one_version_has_nothing_to_compare(endpoint, policy, tiny) -> None:
    rules = _policy(policy)
    with TestClient(create_app(endpoint)) as client:
        _serve_and_label(client, _rows(tiny, [1, 2], 300, seed=10), tiny)
    assert run_loop(endpoint, rules, as_of=JULY).decisions == []


def test_a_window_with_no_labels_is_nothing_to_judge(endpoint, policy, tiny) -> None:
    rules = _policy(policy)
    _promote_version_2(endpoint, rules, tiny)
    records = _rows(tiny, [1, 2], 600, seed=11)[tiny.FEATURES].to_dict("records")
    with TestClient(create_app(endpoint)) as client:
        for start in range(0, len(records), 50):
            client.post("/predict", json={"records": records[start : start + 50]})
    stepped = run_loop(endpoint, rules, as_of=JULY + 2 * DAY)
    assert stepped.decisions == [] and stepped.state == "idle"  # no verdict without labels
    assert loopml.models.get_version("tiny@champion").version == 2
