"""Performance estimated from scores alone (CBPE): the expected AUC and accuracy of
calibrated scores match what labels drawn from those probabilities give, the calibration
corrects over-confident scores, a window is estimated once the version's earlier answers are
labelled, and the check says why it skips."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient
from sklearn.metrics import roc_auc_score

from loopml.data.profile import Profile
from loopml.monitoring.checks import SCORE, Seen
from loopml.monitoring.estimate import (
    calibrate,
    estimated_performance,
    expected_accuracy,
    expected_auc,
)
from loopml.monitoring.window import monitor
from loopml.serving import create_app


def _draws(probabilities: np.ndarray, times: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((times, len(probabilities))) < probabilities


def test_the_expected_auc_is_the_mean_auc_of_labels_drawn_from_the_probabilities() -> None:
    probabilities = np.random.default_rng(0).beta(2, 5, 2000)
    draws = _draws(probabilities, 200, seed=1)
    realised = np.mean([roc_auc_score(labels, probabilities) for labels in draws])
    assert abs(expected_auc(probabilities, probabilities) - realised) < 0.005
    accuracy = np.mean([((probabilities >= 0.5) == labels).mean() for labels in draws])
    assert abs(expected_accuracy(probabilities, probabilities) - accuracy) < 0.005


def test_ties_count_half() -> None:
    scores = np.array([0.5, 0.5, 0.5, 0.5])
    assert expected_auc(scores, np.array([0.2, 0.4, 0.6, 0.8])) == 0.5


def test_the_calibration_corrects_over_confident_scores() -> None:
    rng = np.random.default_rng(2)
    truth_probability = rng.uniform(0.1, 0.9, 20_000)
    labels = rng.random(len(truth_probability)) < truth_probability
    confident = np.clip((truth_probability - 0.5) * 2 + 0.5, 0, 1)  # too sure of itself
    calibrated = calibrate(confident, labels.astype(float), confident)
    assert np.abs(calibrated - truth_probability).mean() < 0.03
    assert abs(calibrated.mean() - labels.mean()) < 0.01


def _serve(client, rows, tiny) -> None:
    """Send the rows' features in requests of 50, then post their labels."""
    ids = []
    for start in range(0, len(rows), 50):
        records = rows.loc[start : start + 49, tiny.FEATURES].to_dict("records")
        ids += [
            p["id"]
            for p in client.post("/predict", json={"records": records}).json()["predictions"]
        ]
    items = [{"id": i, "label": bool(y)} for i, y in zip(ids, rows[tiny.TARGET], strict=True)]
    assert client.post("/feedback", json=items).json()["accepted"] == len(ids)


def test_a_window_is_estimated_from_its_scores_once_earlier_answers_are_labelled(
    sqlite_workspace, monkeypatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "loop"))
    tiny = importlib.import_module("tiny_pipeline")
    tiny.champion("tiny")
    frame = tiny.rows(seed=5, every="1h")
    march = frame[frame["time"].dt.month == 3].reset_index(drop=True)
    with TestClient(create_app("tiny")) as client:
        _serve(client, march.iloc[:600].reset_index(drop=True), tiny)
        first = monitor("tiny", label="first")
        _serve(client, march.iloc[600:].reset_index(drop=True), tiny)
        second = monitor("tiny", label="second")
    skipped = first.check("estimated_performance")
    assert skipped.status == "skipped"
    assert "needs 200 labelled answers of two classes from before the window" in skipped.message
    found = second.check("estimated_performance")
    assert found.status == "ok" and found.details["calibration_rows"] == 600
    realised = second.check("performance").details["roc_auc"]["value"]
    assert abs(found.details["estimated_roc_auc"] - realised) < 0.05
    assert 0 < second.value("estimated_accuracy") < 1


def test_estimation_says_why_it_cannot_be_made() -> None:
    scores = np.linspace(0, 1, 500)
    seen = Seen(len(scores), Profile(), {}, pd.DataFrame({SCORE: scores}), [])
    regression = estimated_performance(seen, None, 1, "regression")
    assert regression.status == "skipped" and "classifiers" in regression.message
    few = Seen(5, Profile(), {}, pd.DataFrame({SCORE: scores[:5]}), [])
    small = estimated_performance(few, None, 1, "classification")
    assert small.status == "skipped" and "fewer than 30" in small.message
