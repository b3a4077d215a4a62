"""Rolling references on a seasonal stream: feature a's mean rises by 0.4 standard
deviations a month, and jumps by 3 in June. A rule judging psi against the training
reference fires in March and never resolves, not even after a new champion with its own
reference; the same rule against the previous window fires in June only and resolves in
July. The first window has nothing to compare with, and a window of a few rows is neither
judged nor used as a reference.

Traffic goes through the real app (fastapi's TestClient); the stream is served and
monitored once for the module.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.monitoring.drift import drift
from loopml.monitoring.persistent import persistent_alerts
from loopml.monitoring.rolling import read_profiles
from loopml.monitoring.timeseries import series, window_report
from loopml.monitoring.window import MonitorResult, monitor
from loopml.serving import create_app, deploy
from loopml.settings import load_settings
from loopml.workspace import Workspace, use_workspace

ROWS = 500
RULES = """
rules:
  - name: seasonal
    metric: psi
    features: [a]
    above: 0.5
  - name: shift
    metric: psi
    against: previous window
    features: [a]
    above: 0.5
  - name: pooled
    metric: max_psi
    against: last 3 windows
    above: 100
"""
MONTHS = ["2013-01", "2013-02", "2013-03", "2013-04", "2013-05", "2013-06", "2013-07"]


def mean_of(month: int) -> float:
    """a's mean in month 0 (January), 1, ...: a steady rise, and a jump in June."""
    return 0.4 * month + (3.0 if month >= 5 else 0.0)


def _frame(rng: np.random.Generator, rows: int, mean: float) -> pd.DataFrame:
    return pd.DataFrame({"a": rng.normal(mean, 1, rows), "b": rng.normal(size=rows)})


def _register(rng: np.random.Generator, mean: float) -> int:
    x = _frame(rng, 600, mean)
    y = x["a"] - mean + x["b"] + rng.normal(scale=0.5, size=600) > 0
    version = loopml.models.register("churn", LogisticRegression().fit(x, y), card=False)
    loopml.monitoring.set_reference(version.ref, x)
    loopml.models.set_alias("churn", "champion", version.version)
    return version.version


def _serve(frame: pd.DataFrame) -> None:
    with TestClient(create_app("churn")) as client:
        for first in range(0, len(frame), 100):
            records = frame.iloc[first : first + 100].to_dict("records")
            assert client.post("/predict", json={"records": records}).status_code == 200


@dataclass
class Stream:
    """The monitored windows by label, and the workspace."""

    workspace: Workspace
    found: dict[str, MonitorResult]


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stream]:
    """churn@1 (reference: January) serves January to March, then a window of 20 rows far
    off ('tiny'); churn@2, with a February-like reference, serves April to July."""
    folder = tmp_path_factory.mktemp("stream")
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("LOOPML_")]:
            patch.delenv(name)
        workspace = Workspace(load_settings(cwd=folder, home=str(folder / ".loopml"))).prepare()
    rng = np.random.default_rng(0)
    found: dict[str, MonitorResult] = {}
    with use_workspace(workspace):
        _register(rng, mean_of(0))
        deploy("churn", {"champion": "champion"})
        since = time.time()
        for month, label in enumerate(MONTHS):
            if label == "2013-04":
                _serve(_frame(rng, 20, 10.0))
                found["tiny"] = monitor("churn", since=since, until=time.time(), rules=RULES)
                _register(rng, mean_of(1))
            _serve(_frame(rng, ROWS, mean_of(month)))
            start = since if not found else None
            found[label] = monitor(
                "churn", since=start, until=time.time(), label=label, rules=RULES
            )
            since = found[label].window.end
    yield Stream(workspace, found)
    workspace.close()


def _fired(result: MonitorResult) -> set[str]:
    return {alert["rule"] for alert in result.fired}


def _resolved(result: MonitorResult) -> set[str]:
    return {alert["rule"] for alert in result.resolved}


def test_the_reference_rule_fires_with_the_season_and_stays_open(stream: Stream) -> None:
    fired = {label for label in MONTHS if "seasonal" in _fired(stream.found[label])}
    assert fired == {"2013-03"}
    assert not any("seasonal" in _resolved(result) for result in stream.found.values())
    psi = [stream.found[label].value("psi", "a") for label in MONTHS]
    assert psi[2] > 0.5 and all(later > 0.5 for later in psi[2:])  # v2's reference too


def test_the_previous_window_rule_fires_at_the_jump_only_and_resolves(stream: Stream) -> None:
    fired = {label for label in MONTHS if "shift" in _fired(stream.found[label])}
    assert fired == {"2013-06"}
    resolved = {label for label in MONTHS if "shift" in _resolved(stream.found[label])}
    assert resolved == {"2013-07"}
    steps = [stream.found[label].value("psi_previous", "a") for label in MONTHS[1:]]
    assert max(steps[:4]) < 0.5 < steps[4] and steps[5] < 0.5  # a month's rise is no jump


def test_the_first_window_has_nothing_to_compare_with(stream: Stream) -> None:
    first = stream.found["2013-01"]
    check = first.check("rolling_drift")
    assert check.status == "skipped" and "no earlier window" in check.message
    assert first.value("psi_previous", "a") is None and first.value("max_psi_last3") is None
    assert first.value("psi", "a") is not None  # the reference still judges it
    judged = series("churn", ["psi_previous"], workspace=stream.workspace)
    assert "2013-01" not in set(judged["label"]) and "2013-02" in set(judged["label"])


def test_a_window_of_a_few_rows_is_neither_judged_nor_a_reference(stream: Stream) -> None:
    tiny = stream.found["tiny"]
    assert tiny.window.rows == 20 and tiny.check("rolling_drift").status == "skipped"
    assert tiny.value("psi_previous", "a") is None and not tiny.fired and not tiny.resolved
    april = stream.found["2013-04"].check("rolling_drift")
    march = stream.found["2013-03"].window.id
    assert april.details["previous window"]["windows"] == [march]  # not the tiny one
    assert tiny.window.id not in april.details["last 3 windows"]["windows"]


def test_the_last_n_windows_are_pooled(stream: Stream) -> None:
    june = stream.found["2013-06"].check("rolling_drift").details["last 3 windows"]
    months = ["2013-05", "2013-04", "2013-03"]
    assert june["windows"] == [stream.found[label].window.id for label in months]
    assert june["rows"] == 3 * ROWS
    assert stream.found["2013-06"].value("max_psi_last3") > 1
    assert stream.found["2013-02"].check("rolling_drift").details["last 3 windows"]["rows"] == ROWS


def test_rolling_drift_is_the_drift_tests_on_the_stored_profiles(stream: Stream) -> None:
    def stored(label: str):
        window = stream.found[label].window
        digest = window_report(window, workspace=stream.workspace)["profiles"]
        return read_profiles(window, stream.workspace.artifacts.get_bytes(digest))

    may, june = stored("2013-05"), stored("2013-06")
    expected = {f.name: f for f in drift(may.inputs, june.inputs).features}
    result = stream.found["2013-06"]
    assert result.value("psi_previous", "a") == pytest.approx(expected["a"].psi)
    assert result.value("drift_p_previous", "b") == pytest.approx(expected["b"].adjusted_p_value)
    assert result.value("drifted_previous", "a") == 1.0 and june.inputs.rows_ == ROWS
    scores = drift(may.scores[2], june.scores[2], columns=["score"]).features[0]
    assert result.value("prediction_psi_previous", "2") == pytest.approx(scores.psi)


def test_the_reference_alert_is_persistent_once_a_new_champion_left_it_open(
    stream: Stream,
) -> None:
    assert stream.found["2013-04"].persistent == []  # open over March and April only
    may = stream.found["2013-05"].persistent
    assert [(p.rule, p.windows, p.versions, p.label) for p in may] == [
        ("seasonal", 3, (1, 2), "2013-03")
    ]
    found = persistent_alerts("churn", workspace=stream.workspace)
    assert [(p.rule, p.windows, p.against, p.metric) for p in found] == [
        ("seasonal", 5, "reference", "psi")
    ]
    assert "against: previous window" in found[0].hint and "v1 → v2" in found[0].hint
    assert persistent_alerts("churn", windows=6, workspace=stream.workspace) == []
