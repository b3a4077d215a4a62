"""`loopml loop run` and `loopml loop history`: a step of the retraining policy from the command
line, printed as decisions and the state it leaves, or as JSON; one-line errors for a policy
or a clock that cannot be used; the record as a table and as JSON.

The endpoint is trained by the loop tests' tiny pipeline (tests/loop/tiny_pipeline.py)."""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from loopml.loop import decisions
from loopml.serving import deployment
from loopml.serving.deployments import raise_alert

LOOP_TESTS = Path(__file__).parents[1] / "loop"
JULY = pd.Timestamp("2013-07-01", tz="UTC").timestamp()
GATE = """\
target: y
resamples: 50
checks:
  - {check: metric, metric: roc_auc, lower_bound_above: %s}
"""
POLICY = """\
retrain:
  pipeline: tiny_pipeline:train
  params: {train_from: $window_start, split_at: $validation_start, data_end: $data_end}
  window: 2 months
  reference: train_rows
  target: y
triggers:
  alerts: [drift]
gate: %s
rollout: {shadow_requests: 4, canary_requests: 4}
"""


@pytest.fixture
def tiny(sqlite_workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The endpoint "tiny" (champion = version 1 of the tiny pipeline), lenient.yaml and
    strict.yaml gates (nothing passes the strict one), and policy.yaml with the lenient one."""
    monkeypatch.syspath_prepend(str(LOOP_TESTS))
    importlib.import_module("tiny_pipeline").champion("tiny")
    (tmp_path / "lenient.yaml").write_text(GATE % 0.6)
    (tmp_path / "strict.yaml").write_text(GATE % 0.999)
    (tmp_path / "policy.yaml").write_text(POLICY % "lenient.yaml")
    return "tiny"


def _drift(name: str) -> None:
    raise_alert(name, "rule:drift", "psi breached: a=3.1 (psi > 0.25 for 1 window)")


def test_run_prints_the_decisions_and_the_state(cli, tiny) -> None:
    calm = cli("loop", "run", tiny, "--policy", "policy.yaml", "--as-of", "2013-07-01")
    assert calm.code == 0, calm.err
    assert calm.out.splitlines() == ["tiny: no trigger holds; nothing to do (idle)."]
    _drift(tiny)
    stepped = cli("loop", "run", tiny, "--policy", "policy.yaml", "--as-of", "2013-07-01")
    assert stepped.code == 0, stepped.err
    assert stepped.out.splitlines() == [
        "retrain: retrained as version 2 because alert drift is firing",
        "gate_passed: candidate 2 passed the gate against tiny@1",
        "refit: version 3 is version 2's recipe refit on the whole window, its newest data"
        " included",
        "shadow: candidate 3 shadows the champion",
        "tiny: candidate 3 is shadowing (shadow).",
    ]
    assert deployment(tiny)[0].shadow == "3"
    waiting = cli("loop", "run", tiny, "--policy", "policy.yaml", "--as-of", str(JULY))
    assert waiting.out.splitlines() == ["tiny: candidate 3 shadowed 0 of 4 requests (shadow)."]


def test_run_json_is_the_step(cli, tiny, tmp_path) -> None:
    (tmp_path / "strict_policy.yaml").write_text(POLICY % "strict.yaml")
    _drift(tiny)
    shown = cli("loop", "run", tiny, "--policy", "strict_policy.yaml", "--as-of", "2013-07-01")
    found = json.loads(cli("loop", "history", tiny, "--json").out)
    assert shown.code == 0 and [d["action"] for d in found] == ["retrain", "gate_failed"]
    later = str(JULY + 21 * 86400)  # seconds since 1970 do too
    again = cli("loop", "run", tiny, "--policy", "strict_policy.yaml", "--as-of", later, "--json")
    step = json.loads(again.out)
    assert step["state"] == "idle" and step["message"] == "candidate 3 was refused by the gate"
    retrain, refused = step["decisions"]
    assert retrain["action"] == "retrain" and retrain["version"] == 3
    assert retrain["as_of"] == JULY + 21 * 86400
    assert retrain["evidence"]["triggers"] == ["alert drift is firing"]
    assert retrain["evidence"]["params"]["data_end"] == "2013-07-22"
    assert refused["action"] == "gate_failed" and not refused["evidence"]["checks"][0]["passed"]


def test_history_lists_every_decision(cli, tiny) -> None:
    empty = cli("loop", "history", tiny)
    assert empty.code == 0 and empty.out.strip() == "The loop has decided nothing for tiny yet."
    assert json.loads(cli("loop", "history", tiny, "--json").out) == []
    _drift(tiny)
    cli("loop", "run", tiny, "--policy", "policy.yaml", "--as-of", "2013-07-01")

    table = cli("loop", "history", tiny)
    assert table.code == 0, table.err
    rows = [[c.strip() for c in line.strip("│").split("│")] for line in table.out.splitlines()]
    actions = {"retrain", "gate_passed", "refit", "shadow"}
    rows = [row for row in rows if len(row) == 5 and row[2] in actions]
    assert [(row[2], row[3]) for row in rows] == [
        ("retrain", "2"),
        ("gate_passed", "2"),
        ("refit", "3"),
        ("shadow", "3"),
    ]
    assert all(row[1].startswith("2013-07-01T00:00:00") for row in rows)
    found = json.loads(cli("loop", "history", tiny, "--json").out)
    assert found == [d.to_dict() for d in decisions(tiny)]
    assert found[0]["evidence"]["params"] == {
        "train_from": "2013-05-01",
        "split_at": "2013-06-01",
        "data_end": "2013-07-01",
    }


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["tiny", "--policy", "gone.yaml"], ["the gate file 'nowhere.yaml' does not exist"]),
        (
            ["tiny", "--policy", "missing.yaml"],
            ["Cannot read the retraining policy", "missing.yaml"],
        ),
        (["tiny", "--policy", "typo.yaml"], ["typo.yaml: triggers.alert (line 2)"]),
        (["nope", "--policy", "policy.yaml"], ["No model is registered as 'nope'"]),
        (["tiny", "--policy", "policy.yaml", "--as-of", "july"], ["--as-of is a time", "'july'"]),
    ],
    ids=["missing-gate", "missing-policy", "unknown-field", "unknown-endpoint", "bad-clock"],
)
def test_run_errors_are_one_line(cli, one_line_error, tiny, tmp_path, args, fragments) -> None:
    (tmp_path / "gone.yaml").write_text(POLICY % "nowhere.yaml")
    (tmp_path / "typo.yaml").write_text(
        "retrain: {pipeline: tiny_pipeline:train}\ntriggers: {alert: [drift]}\ngate: lenient.yaml\n"
    )
    _drift(tiny)
    one_line_error(cli("loop", "run", *args), 2, *fragments)
    assert decisions(tiny) == []


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone is Europe/Berlin (two hours ahead of UTC in July)."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_an_as_of_date_means_that_date_in_any_time_zone(cli, tiny, berlin) -> None:
    _drift(tiny)
    step = json.loads(
        cli("loop", "run", tiny, "--policy", "policy.yaml", "--as-of", "2013-07-01", "--json").out
    )
    assert step["decisions"][0]["evidence"]["params"]["data_end"] == "2013-07-01"


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["nope", "--every", "1m"], ["No model is registered as 'nope'"]),
        (["tiny", "--every", "soon"], ["soon"]),
        (["tiny", "--every", "1m", "--policy", "missing.yaml"], ["missing.yaml"]),
    ],
    ids=["unknown-endpoint", "bad-period", "missing-policy"],
)
def test_serve_errors_are_one_line(cli, one_line_error, tiny, args, fragments) -> None:
    one_line_error(cli("loop", "serve", *args), 2, *fragments)
