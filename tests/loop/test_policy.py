"""Retraining policies as users write them: the defaults, spans in durations and calendar
months, the dates the pipeline gets for ``$window_start`` and its kin, and errors that name
the line, the span or the gate file at fault."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest

from loopml.errors import PolicyError
from loopml.loop import RetrainingPolicy, read_policy

GATE = "target: y\nchecks:\n  - {check: metric, metric: roc_auc, lower_bound_above: 0.5}\n"
DATES = {
    "train_from": "$window_start",
    "split_at": "$validation_start",
    "data_end": "$data_end",
    "today": "$as_of",
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder with a valid gate.yaml."""
    (tmp_path / "gate.yaml").write_text(GATE)
    return tmp_path


def _write(folder: Path, text: str, name: str = "policy.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def _moment(text: str) -> float:
    return pd.Timestamp(text, tz="UTC").timestamp()


def test_a_small_policy_gets_the_documented_defaults(folder: Path) -> None:
    found = read_policy(_write(folder, "retrain: {pipeline: 'steps:train'}\ngate: gate.yaml\n"))
    retrain = found.retrain
    assert (retrain.window, retrain.validation, retrain.label_delay) == (
        "3 months",
        "1 month",
        "0s",
    )
    assert (retrain.model, retrain.reference, retrain.evaluation) == ("model", None, "valid_rows")
    assert retrain.params == {} and found.cooldown == 0
    assert (found.triggers.alerts, found.triggers.every, found.triggers.new_labels) == (
        [],
        None,
        None,
    )
    rollout = found.rollout
    assert (rollout.shadow_requests, rollout.canary_fraction, rollout.canary_requests) == (
        0,
        0.5,
        5,
    )  # the loop benchmark's sizes
    assert rollout.guardrails.min_requests == 5 and rollout.guardrails.max_prediction_psi is None
    assert found.gate == folder / "gate.yaml" and found.gate.is_absolute()


def test_the_example_policy_reads() -> None:
    example = Path(__file__).parents[2] / "examples" / "flights_policy.yaml"
    found = read_policy(example)
    assert found.triggers.alerts == ["feature_drift", "auc_low"]
    assert found.cooldown == 25 * 86400 and found.rollout.guardrails.min_requests == 5
    assert found.gate == example.parent / "flights_loop_gate.yaml"
    assert found.params(_moment("2013-06-01"))["train_from"] == "2013-03-01"


def test_spans_are_durations_or_calendar_months(folder: Path) -> None:
    path = _write(
        folder,
        """\
        retrain:
          pipeline: steps:train
          params: {train_from: $window_start, split_at: $validation_start, data_end: $data_end}
          window: 3mo
          validation: 2w
          label_delay: 36h
        triggers: {every: 12h, new_labels: 500}
        cooldown: 25d
        gate: gate.yaml
        """,
    )
    found = read_policy(path)
    assert (found.cooldown, found.triggers.every, found.triggers.new_labels) == (
        25 * 86400,
        12 * 3600,
        500,
    )
    assert found.params(_moment("2013-05-02T12:00")) == {
        "train_from": "2013-02-01",
        "split_at": "2013-04-17",
        "data_end": "2013-05-01",
    }


@pytest.mark.parametrize(
    "as_of, label_delay, window, validation, expected",
    [
        (
            "2013-05-01",
            "1 month",
            "3 months",
            "1 month",
            ("2013-01-01", "2013-03-01", "2013-04-01"),
        ),
        # month ends: a month before March 31 is February 28, and on from there
        (
            "2013-03-31",
            "1 month",
            "3 months",
            "1 month",
            ("2012-11-28", "2013-01-28", "2013-02-28"),
        ),
        ("2012-03-31", "1 month", "1 month", "1 month", ("2012-01-29", "2012-01-29", "2012-02-29")),
        ("2013-05-31", 0, "3 months", "1 month", ("2013-02-28", "2013-04-30", "2013-05-31")),
        (
            "2013-01-31",
            "2 months",
            "12 months",
            "1 month",
            ("2011-11-30", "2012-10-30", "2012-11-30"),
        ),
        ("2013-04-01", "1d", "30d", "7d", ("2013-03-01", "2013-03-24", "2013-03-31")),
    ],
)
def test_placeholders_become_the_dates_of_the_window(
    folder: Path, as_of: str, label_delay: object, window: str, validation: str, expected: tuple
) -> None:
    retrain = {
        "pipeline": "steps:train",
        "params": DATES,
        "label_delay": label_delay,
        "window": window,
        "validation": validation,
    }
    found = read_policy({"retrain": retrain, "gate": "gate.yaml"}).params(_moment(as_of))
    assert (found["train_from"], found["split_at"], found["data_end"]) == expected
    assert found["today"] == as_of


def test_a_clock_between_midnights_gives_times(folder: Path) -> None:
    retrain = {"pipeline": "steps:train", "params": DATES, "label_delay": "2h", "window": "1 month"}
    found = read_policy({"retrain": retrain, "gate": "gate.yaml"}).params(
        _moment("2013-03-31T06:30")
    )
    assert found == {
        "train_from": "2013-02-28T04:30:00",
        "split_at": "2013-02-28T04:30:00",
        "data_end": "2013-03-31T04:30:00",
        "today": "2013-03-31T06:30:00",
    }


def test_other_params_are_passed_as_they_are(folder: Path) -> None:
    params = {
        "valid_months": 1,
        "source": "flights",
        "note": "since $window_start",
        "other": "$unknown",
        "listed": ["$as_of"],
        "flag": True,
    }
    found = read_policy(
        {"retrain": {"pipeline": "steps:train", "params": params}, "gate": "gate.yaml"}
    )
    assert found.params(_moment("2013-05-01")) == params


def test_a_policy_reads_from_text_a_dict_or_itself(folder: Path) -> None:
    text = "retrain:\n  pipeline: steps:train\ngate: gate.yaml\n"
    from_text = read_policy(text)  # relative to the working folder, which holds gate.yaml
    assert isinstance(from_text, RetrainingPolicy) and from_text.gate == folder / "gate.yaml"
    assert read_policy(from_text) is from_text
    assert read_policy({"retrain": {"pipeline": "steps:train"}, "gate": "gate.yaml"}) == from_text


@pytest.mark.parametrize(
    "text, fragments",
    [
        (
            "retrain: {pipeline: steps:train}\ntriggers:\n  alert: [drift]\ngate: gate.yaml\n",
            ["triggers.alert (line 3)", "Extra inputs are not permitted"],
        ),
        (
            "retrain: {pipeline: steps:train}\ngate: gate.yaml\nrollouts: {shadow_requests: 5}\n",
            ["rollouts (line 3)", "Extra inputs are not permitted"],
        ),
        (
            "retrain:\n  pipeline: steps:train\n  window: 3 fortnights\ngate: gate.yaml\n",
            ["retrain.window (line 3)", "'3 fortnights' is not a duration"],
        ),
        (
            "retrain: {pipeline: steps:train}\ncooldown: soon\ngate: gate.yaml\n",
            ["cooldown (line 2)", "'soon' is not a duration"],
        ),
        (
            "retrain: {pipeline: steps:train}\ntriggers: {every: -3d}\ngate: gate.yaml\n",
            ["triggers.every (line 2)"],
        ),
        (
            "retrain: {pipeline: steps:train}\ngate: gate.yaml\nrollout:\n  canary_fraction: 1.5\n",
            ["rollout.canary_fraction (line 4)", "less than 1"],
        ),
        (
            "retrain:\n  pipeline: steps:train\n  target: y\n  served: {dataset: d}\n"
            "gate: gate.yaml\n",
            ["retrain (line 2)", "never reads", "source: $served"],
        ),
        (
            "retrain:\n  pipeline: steps:train\n  params: {source: $served}\ngate: gate.yaml\n",
            ["retrain (line 2)", "needs a 'served:' section"],
        ),
        (
            "retrain:\n  pipeline: steps:train\n  params: {source: $served}\n"
            "  served: {dataset: d}\ngate: gate.yaml\n",
            ["needs 'target:'"],
        ),
        (
            "retrain: {pipeline: steps:train}\ngate: gate.yaml\nrollout:\n  canary_requests: 3\n"
            "  guardrails: {min_requests: 10}\n",
            ["rollout (line 4)", "wait for 10 canary requests", "promoted after 3", "unjudged"],
        ),
        ("retrain: {pipeline: steps:train}\n", ["gate", "Field required"]),
        ("retrain: {pipeline: [steps\ngate: gate.yaml\n", ["is not valid YAML"]),
    ],
    ids=[
        "unknown-field",
        "unknown-section",
        "bad-window",
        "bad-cooldown",
        "negative-every",
        "fraction",
        "served-unread",
        "served-undefined",
        "served-no-target",
        "unjudged-canary",
        "no-gate",
        "yaml",
    ],
)
def test_a_bad_policy_is_refused_with_the_place(folder: Path, text: str, fragments: list) -> None:
    path = _write(folder, text)
    with pytest.raises(PolicyError) as caught:
        read_policy(path)
    assert str(caught.value).startswith(str(path))
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_a_gate_is_looked_for_in_the_policy_folder(folder: Path) -> None:
    policies = folder / "policies"
    policies.mkdir()
    text = "retrain: {pipeline: steps:train}\ngate: gate.yaml\n"
    with pytest.raises(PolicyError) as caught:  # gate.yaml is in the working folder only
        read_policy(_write(policies, text))
    message = str(caught.value)
    assert "the gate file 'gate.yaml' does not exist" in message
    assert f"looked for {policies / 'gate.yaml'}" in message
    (policies / "gate.yaml").write_text(GATE)
    assert read_policy(_write(policies, text)).gate == policies / "gate.yaml"
    absolute = f"retrain: {{pipeline: steps:train}}\ngate: {folder / 'gate.yaml'}\n"
    assert read_policy(_write(policies, absolute)).gate == folder / "gate.yaml"


@pytest.mark.parametrize(
    "gate, fragment",
    [
        ("checks:\n  - {check: metric, metric: roc_auc}\n", "target (line 1): Field required"),
        ("target: y\nchecks:\n  - {check: speed}\n", "checks.0 (line 3)"),
        ("target: y\nchecks: []\n", "checks (line 2)"),
    ],
    ids=["no-target", "unknown-check", "no-checks"],
)
def test_an_invalid_gate_is_refused_before_anything_runs(
    folder: Path, gate: str, fragment: str
) -> None:
    (folder / "broken_gate.yaml").write_text(gate)
    with pytest.raises(PolicyError) as caught:
        read_policy(_write(folder, "retrain: {pipeline: steps:train}\ngate: broken_gate.yaml\n"))
    message = str(caught.value)
    assert str(folder / "broken_gate.yaml") in message and "is not a valid policy" in message
    assert fragment in message


@pytest.mark.parametrize("field", ["label_delay", "cooldown"])
def test_a_zero_duration_is_accepted(folder: Path, field: str) -> None:
    text = (
        "retrain:\n  pipeline: steps:train\n  label_delay: 0s\ngate: gate.yaml\n"
        if field == "label_delay"
        else "retrain: {pipeline: steps:train}\ncooldown: 0s\ngate: gate.yaml\n"
    )
    found = read_policy(_write(folder, text))
    assert found.cooldown == 0 and found.params(_moment("2013-05-01")) == {}


def test_the_default_guardrails_judge_a_short_canary(folder: Path) -> None:
    text = "retrain: {pipeline: 'steps:train'}\ngate: gate.yaml\nrollout: {canary_requests: 3}\n"
    found = read_policy(_write(folder, text))
    assert found.rollout.guardrails.min_requests == 3  # judged before it is promoted
