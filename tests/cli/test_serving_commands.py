"""`loopml deploy`, `loopml alerts`, `loopml predict` and `loopml feedback import`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.serving.deployments import raise_alert

CONTRACT = {"columns": {"a": {"type": "float", "max": 10}, "b": {"type": "float"}}}


@pytest.fixture
def churn(sqlite_workspace) -> str:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    for c in (1.0, 0.1):
        loopml.models.register(
            "churn", LogisticRegression(C=c).fit(x, x["a"] > 0), contract=CONTRACT, card=False
        )
    loopml.models.set_alias("churn", "champion", 1)
    return "churn"


def test_deploy_shows_and_changes_what_serves(cli, churn) -> None:
    shown = cli("deploy", churn)
    assert shown.code == 0 and "churn (revision 0): champion champion" in shown.out
    changed = cli("deploy", churn, "--canary", "2", "--fraction", "0.2", "--shadow", "2")
    assert changed.code == 0 and "canary  2 at 20%" in changed.out and "shadow  2" in changed.out
    spec = json.loads(cli("deploy", churn, "--no-canary", "--json").out)
    assert spec["revision"] == 2 and spec["canary"] is None and spec["shadow"] == "2"
    actions = [event.action for event in loopml.models.history(churn)]
    assert actions[-2:] == ["deploy", "deploy"]


def test_a_change_made_meanwhile_is_not_overwritten(cli, one_line_error, churn, monkeypatch):
    from loopml.serving import deployments

    read = deployments.deployment

    def read_then_someone_deploys(name, **kwargs):
        found = read(name, **kwargs)
        deployments.deploy(name, found[0].model_copy(update={"shadow": "2"}), reason="meanwhile")
        return found

    monkeypatch.setattr(deployments, "deployment", read_then_someone_deploys)
    one_line_error(cli("deploy", churn, "--canary", "2", "--fraction", "0.1"), 2, "run it again")
    monkeypatch.undo()
    spec, revision = deployments.deployment(churn)
    assert revision == 1 and spec.shadow == "2" and spec.canary is None


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("--canary", "2"), "--fraction"),
        (("--canary", "2", "--fraction", "2"), "fraction"),
        (("--shadow", "9"), "churn@9"),
    ],
)
def test_bad_deployments_are_one_line(cli, one_line_error, churn, args, fragment) -> None:
    one_line_error(cli("deploy", churn, *args), 2, fragment)


def test_alerts_are_listed(cli, churn) -> None:
    assert "No alerts for churn" in cli("alerts", churn).out
    raise_alert(churn, "load_failed", "churn@2 failed to load", {"version": 2})
    listed = json.loads(cli("alerts", churn, "--json").out)
    assert [(a["kind"], a["details"]) for a in listed] == [("load_failed", {"version": 2})]


def test_predict_then_import_labels(cli, one_line_error, churn, tmp_path) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500)})
    frame.loc[:2, "a"] = 11.0
    frame.to_parquet(tmp_path / "in.parquet")
    scored = cli("predict", "churn@champion", tmp_path / "in.parquet", tmp_path / "out.parquet")
    assert scored.code == 0 and "Scored 497 rows with churn@1" in scored.out
    assert "3 rows broke the contract" in scored.out
    again = cli("predict", "churn@1", tmp_path / "in.parquet", tmp_path / "out.parquet")
    one_line_error(again, 2, "exists already", "--force")
    out = pd.read_parquet(tmp_path / "out.parquet")
    labels = pd.DataFrame({"pid": [*out["prediction_id"][:100], "stray"], "y": [True] * 101})
    labels.to_csv(tmp_path / "labels.csv", index=False)
    imported = cli(
        "feedback",
        "import",
        tmp_path / "labels.csv",
        "--id-column",
        "pid",
        "--label-column",
        "y",
        "--json",
    )
    assert imported.code == 1  # an id matched no prediction
    assert json.loads(imported.out) == {"accepted": 100, "unknown": ["stray"]}
    missing = cli("feedback", "import", tmp_path / "labels.csv")
    one_line_error(missing, 2, "no column 'id'")
