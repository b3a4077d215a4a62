"""`loopml models`: register from a run, list, show, alias, rollback, history, lineage."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import loopml


@pytest.fixture
def trained(sqlite_workspace) -> str:
    """A run whose output 'model' is a fitted classifier."""
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=100)})
    with loopml.start_run(name="train") as run:
        run.log_artifact(LogisticRegression().fit(x, x["a"] > 0), name="model")
    return run.id


def test_register_alias_rollback_and_read_back(cli, trained: str) -> None:
    assert cli("models", "register", "churn", "--run", trained).code == 0
    second = json.loads(cli("models", "register", "churn", "--run", trained, "--json").out)
    assert second["ref"] == "churn@2" and second["run_id"] == trained
    assert "churn@champion: - → 1" in cli("models", "alias", "churn", "champion", "1").out
    moved = cli("models", "alias", "churn", "champion", "2", "--reason", "better").out
    assert "1 → 2" in moved
    assert "2 → 1 (rollback" in cli("models", "rollback", "churn", "--reason", "slow").out
    listed = json.loads(cli("models", "list", "--json").out)
    assert listed[0]["aliases"] == {"champion": 1} and listed[0]["versions"] == 2
    shown = cli("models", "show", "churn@champion").out
    assert "churn@1" in shown and "sklearn" in shown and "scikit-learn" in shown
    log = json.loads(cli("models", "history", "churn", "--json").out)
    assert [e["action"] for e in log] == ["register", "register", "alias", "alias", "rollback"]
    assert log[-1]["reason"] == "slow"
    assert "rollback" in cli("models", "history", "churn").out
    lineage = json.loads(cli("models", "lineage", "churn@2", "--json").out)
    assert lineage["run"]["id"] == trained
    assert f"run       {trained}" in cli("models", "lineage", "churn@2").out


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["show", "nope"], 2, "No model is registered as 'nope'"),
        (["register", "churn", "--run", "ffffffff"], 2, "ffffffff"),
        (
            ["register", "churn", "--run", "RUN", "--artifact", "weights"],
            2,
            "no output named 'weights'",
        ),
        (["alias", "churn", "champion", "9"], 2, "has no version 9"),
        (["rollback", "churn"], 2, "no alias 'champion' to roll back"),
        (["show", "churn@challenger"], 2, "no version or alias 'challenger'"),
    ],
)
def test_bad_input_is_one_line(cli, one_line_error, trained: str, args, code, fragment) -> None:
    cli("models", "register", "churn", "--run", trained)
    args = [trained if arg == "RUN" else arg for arg in args]
    one_line_error(cli("models", *args), code, fragment)


def test_promote_from_the_command_line(cli, sqlite_workspace, tmp_path) -> None:
    from sklearn.dummy import DummyClassifier

    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"a": rng.normal(size=2000)})
    frame["y"] = frame["a"] + rng.normal(size=2000) > 0
    loopml.data.add("valid", frame)
    weak = loopml.models.register("churn", DummyClassifier().fit(frame[["a"]], frame["y"]))
    strong = loopml.models.register("churn", LogisticRegression().fit(frame[["a"]], frame["y"]))
    (tmp_path / "gate.yaml").write_text(
        "target: y\nresamples: 100\nchecks:\n"
        "  - {check: metric, metric: roc_auc, lower_bound_above: 0.6}\n"
    )
    args = ["--policy", "gate.yaml", "--data", "valid"]
    refused = cli("models", "promote", "churn", str(weak.version), *args)
    assert refused.code == 1 and "FAIL" in refused.out and "Refused" in refused.out
    passed = cli("models", "promote", "churn", str(strong.version), *args)
    assert passed.code == 0 and "churn@2 is now champion" in passed.out
    summary = json.loads(cli("models", "promote", "churn", "2", *args, "--json").out)
    assert summary["passed"] and summary["checks"][0]["check"] == "metric roc_auc"


def test_cards_from_the_command_line(cli, trained: str, tmp_path) -> None:
    cli("models", "register", "churn", "--run", trained, "--owner", "ops", "--intended-use", "x")
    shown = cli("models", "card", "churn@1")
    assert (
        shown.code == 0 and "# Model card: churn@1" in shown.out and "**Owner**: ops" in shown.out
    )
    written = cli("models", "card", "churn@1", "--html", "-o", tmp_path / "card.html")
    assert written.code == 0 and (tmp_path / "card.html").read_text().startswith("<!doctype html>")
    again = cli("models", "card", "churn@1", "--write", "--owner", "risk team")
    assert "**Owner**: risk team" in again.out
