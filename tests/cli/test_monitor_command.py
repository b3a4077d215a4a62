"""`loopml monitor`, `loopml models reference` and `loopml alerts --prometheus`: a window of
served traffic checked from the command line, alert rules that set the exit code, one-line
errors for what cannot be done."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.monitoring.timeseries import windows
from loopml.registry.reference import get_reference
from loopml.serving import create_app

CHECKS = [
    "data_drift",
    "correlation",
    "prediction_drift",
    "rolling_drift",
    "quality",
    "performance",
    "estimated_performance",
    "operations",
]
DRIFT_RULES = "rules:\n  - name: drift\n    metric: psi\n    features: top 2\n    above: 0.1\n"


def _data(rows: int, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """y depends on a most, on b a little, on c not at all."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f: rng.normal(size=rows) for f in "abc"})
    frame["a"] += shift
    frame["y"] = 2 * frame["a"] + 0.5 * frame["b"] + rng.normal(size=rows) > shift * 2
    return frame


@pytest.fixture
def churn(sqlite_workspace) -> str:
    """churn@1 (the champion), registered without a reference."""
    frame = _data(1000)
    model = LogisticRegression().fit(frame[["a", "b", "c"]], frame["y"])
    loopml.models.register("churn", model, card=False)
    loopml.models.set_alias("churn", "champion", 1)
    return "churn"


@pytest.fixture
def served(cli, churn, tmp_path) -> str:
    """churn with a reference (stored with `loopml models reference`), sent 300 rows whose a
    moved by one standard deviation."""
    _data(1000).to_parquet(tmp_path / "train.parquet")
    stored = cli("models", "reference", "churn@1", tmp_path / "train.parquet", "--target", "y")
    assert stored.code == 0, stored.err
    with TestClient(create_app("churn")) as client:
        records = _data(300, shift=1.0, seed=1).drop(columns="y").to_dict("records")
        for start in range(0, 300, 100):
            answer = client.post("/predict", json={"records": records[start : start + 100]})
            assert answer.status_code == 200
    return "churn"


def test_models_reference_stores_the_reference(cli, churn, tmp_path) -> None:
    _data(800).to_parquet(tmp_path / "train.parquet")
    shown = cli(
        "models", "reference", "churn@champion", tmp_path / "train.parquet", "--target", "y"
    )
    assert shown.code == 0
    assert "churn@champion: reference of 800 rows, 3 features; most important: a, b, c" in shown.out
    assert get_reference("churn@1").rows == 800
    again = cli("models", "reference", "churn@1", tmp_path / "train.parquet", "--json")
    found = json.loads(again.out)
    assert found["rows"] == 800 and found["features"] == ["a", "b", "c"]
    assert found["importance"] == {}  # no --target this time: no importance


def test_models_reference_errors_are_one_line(cli, one_line_error, churn, tmp_path) -> None:
    _data(100).drop(columns="b").to_parquet(tmp_path / "partial.parquet")
    failed = cli("models", "reference", "churn@1", tmp_path / "partial.parquet")
    one_line_error(failed, 2, "lacks the model's input columns: b")


def test_monitor_prints_the_checks_and_the_values(cli, served) -> None:
    shown = cli("monitor", served, "--window", "1h")
    assert shown.code == 0, shown.err
    first, *rest = shown.out.splitlines()
    assert first.startswith("churn: ") and "300 answered rows, versions 1 — ok" in first
    cells = [[c.strip() for c in line.strip("│").split("│")] for line in rest if "│" in line]
    checks = {row[0]: row[1:] for row in cells if row[0] in CHECKS}
    assert list(checks) == CHECKS
    assert checks["data_drift"][0] == "ok" and "features drifted: a" in checks["data_drift"][1]
    assert checks["performance"] == ["skipped", "no feedback has arrived yet"]
    assert "largest feature PSI" in shown.out and "p99 latency (ms)" in shown.out
    assert len(windows(served)) == 1


def test_monitor_json_is_the_whole_result(cli, served) -> None:
    found = json.loads(cli("monitor", served, "--window", "1h", "--json").out)
    assert found["window"]["status"] == "ok" and found["window"]["rows"] == 300
    assert [c["name"] for c in found["checks"]] == CHECKS
    psi = {p["key"]: p["value"] for p in found["points"] if p["metric"] == "psi"}
    assert psi["a"] > 0.25 > psi["c"]
    assert found["fired"] == [] and found["resolved"] == []


def test_a_fired_rule_sets_exit_code_1(cli, served, tmp_path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(DRIFT_RULES)
    fired = cli("monitor", served, "--window", "1h", "--rules", rules)
    assert fired.code == 1
    assert "ALERT drift (warning): psi breached: a=" in fired.out
    calm = rules.with_name("calm.yaml")
    calm.write_text(DRIFT_RULES.replace("0.1", "5"))
    assert cli("monitor", served, "--window", "1h", "--rules", calm).code == 0


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["nope", "--window", "1h"], ["No model is registered as 'nope'"]),
        (["churn", "--since", "yesterday"], ["--since is a time", "'yesterday'"]),
        (["churn", "--window", "3 weeks"], ["'3 weeks' is not a duration"]),
        (["churn", "--since", "100", "--window", "1h"], ["not both"]),
        (["churn", "--rules", "rules.yaml"], ["rules.yaml: rules.0 (line 2)", "psii"]),
        (["churn", "--rules", "missing.yaml"], ["Cannot read the alert rules"]),
    ],
)
def test_monitor_errors_are_one_line(cli, one_line_error, churn, tmp_path, args, fragments):
    (tmp_path / "rules.yaml").write_text("rules:\n  - name: x\n    metric: psii\n    above: 1\n")
    one_line_error(cli("monitor", *args), 2, *fragments)


def test_bad_rules_are_refused_before_a_window_is_stored(cli, churn, tmp_path) -> None:
    (tmp_path / "rules.yaml").write_text("rules:\n  - name: x\n    metric: psii\n    above: 1\n")
    assert cli("monitor", churn, "--rules", tmp_path / "rules.yaml").code == 2
    assert windows(churn) == []


def test_alerts_prometheus_prints_a_rule_file(cli, served, tmp_path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(DRIFT_RULES + "    for: 3 windows\n")
    printed = cli("alerts", served, "--prometheus", rules, "--every", "1m")
    assert printed.code == 0
    group = yaml.safe_load(printed.out)["groups"][0]
    assert group["name"] == "loopml-churn"
    (rule,) = group["rules"]
    assert rule["alert"] == "drift" and rule["for"] == "120s"
    assert rule["expr"] == (
        'loopml_monitor_value{endpoint="churn", metric="psi", bound="value", key=~"a|b"} > 0.1'
    )
    assert rule["labels"] == {"severity": "warning", "endpoint": "churn", "source": "loopml"}
