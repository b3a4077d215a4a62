"""Gates: policies checked with their line, decisions taken on paired intervals (a candidate no
better than the champion is refused at least 95% of the time), and promotions that move the
alias only when every check passes, or when forced with a reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.errors import PolicyError, UsageError
from loopml.evaluation import evaluate
from loopml.registry.gates import judge, load_policy

POLICY = {
    "target": "y",
    "resamples": 200,
    "checks": [{"check": "difference", "metric": "roc_auc", "lower_bound_above": 0}],
}


def paired_scores(rng: np.random.Generator, n: int, champion: float, candidate: float):
    """Two models scoring the same rows: each sees the label through its own noise."""
    y = rng.random(n) < 0.4

    def score(separation: float) -> np.ndarray:
        raw = rng.normal(size=n) + separation * y
        return 1 / (1 + np.exp(-raw))

    return pd.DataFrame({"y": y, "champion": score(champion), "candidate": score(candidate)})


def decide(frame: pd.DataFrame, seed: int) -> bool:
    policy = load_policy(POLICY)
    found = evaluate(
        "candidate",
        frame,
        target="y",
        baselines={"champion": "champion"},
        resamples=200,
        seed=seed,
        metrics=["roc_auc"],
    )
    return all(check.passed for check in judge(policy, found, None))


def test_a_candidate_no_better_than_the_champion_is_refused() -> None:
    trials = 200
    accepted = sum(
        decide(paired_scores(np.random.default_rng(seed), 1000, 1.0, 1.0), seed)
        for seed in range(trials)
    )
    # a 95% two-sided interval's lower bound exceeds 0 by chance about 2.5% of the time
    assert trials - accepted >= 0.95 * trials, f"accepted {accepted} of {trials}"
    assert accepted <= binom.ppf(0.999, trials, 0.025) + 1


def test_a_clearly_better_candidate_is_accepted() -> None:
    trials = 100
    accepted = sum(
        decide(paired_scores(np.random.default_rng(1000 + seed), 1000, 0.6, 1.4), seed)
        for seed in range(trials)
    )
    assert accepted >= 0.95 * trials


@pytest.mark.parametrize(
    ("policy", "fragment"),
    [
        ("checks:\n  - {check: metric, metric: ece}\n", "target"),
        ("target: y\nchecks:\n  - {check: speed}\n", "checks.0 (line 3)"),
        ("target: y\nchecks: []\n", "at least 1 item"),
        ("target: y\nextra: 1\nchecks:\n  - {check: contract}\n", "extra (line 2)"),
        ("target: y\nchecks:\n  - {check: latency, p99_ms_below: -1}\n", "greater than 0"),
        ("target: [\n", "is not valid YAML"),
    ],
)
def test_invalid_policies_say_where(policy: str, fragment: str) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(policy)
    assert fragment in str(caught.value)


def data(rng: np.random.Generator, n: int = 3000) -> pd.DataFrame:
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    frame["group"] = rng.choice(["x", "y"], n)
    frame["y"] = frame["a"] + 0.5 * frame["b"] + rng.normal(size=n) > 0
    return frame


CONTRACT = {"columns": {"a": {"type": "float"}, "b": {"type": "float"}}}


def register(frame: pd.DataFrame, model) -> int:
    fitted = model.fit(frame[["a", "b"]], frame["y"])
    return loopml.models.register("churn", fitted, contract=CONTRACT).version


GATE = {
    "target": "y",
    "slices": ["group"],
    "resamples": 200,
    "checks": [
        {"check": "difference", "metric": "roc_auc", "lower_bound_above": 0},
        {"check": "metric", "metric": "roc_auc", "lower_bound_above": 0.6},
        {"check": "slices", "metric": "roc_auc"},
        {"check": "contract"},
        {"check": "latency", "p99_ms_below": 1000},
    ],
}


def test_promotion_moves_the_alias_only_through_the_gate(sqlite_workspace) -> None:
    rng = np.random.default_rng(0)
    train, valid = data(rng), data(rng)
    weak = register(train, DummyClassifier(strategy="prior"))
    strong = register(train, LogisticRegression())
    first = loopml.models.promote("churn", weak, policy=GATE, data=valid[["a", "b", "y", "group"]])
    assert not first.passed and not first.moved  # AUC 0.5 fails the 0.6 floor
    failed = {c.check for c in first.checks if not c.passed}
    assert failed == {"metric roc_auc"}, first.checks
    promoted = loopml.models.promote("churn", strong, policy=GATE, data=valid)
    assert promoted.passed and promoted.event.action == "promote"
    assert loopml.models.get_version("churn@champion").version == strong
    again = loopml.models.promote("churn", weak, policy=GATE, data=valid)
    assert not again.moved and again.compared == f"churn@{strong}"
    assert {c.check for c in again.checks if not c.passed} >= {"improvement roc_auc vs champion"}
    with pytest.raises(UsageError, match="needs a reason"):
        loopml.models.promote("churn", weak, policy=GATE, data=valid, force=True)
    forced = loopml.models.promote(
        "churn", weak, policy=GATE, data=valid, force=True, reason="testing the rollback"
    )
    assert forced.moved and forced.forced and forced.event.action == "force"
    assert "forced past failed checks" in forced.event.reason
    assert "testing the rollback" in forced.event.reason
    assert loopml.models.rollback("churn").to_version == strong


def test_a_model_without_a_contract_fails_the_contract_check(sqlite_workspace) -> None:
    frame = data(np.random.default_rng(1))
    version = loopml.models.register(
        "churn", LogisticRegression().fit(frame[["a", "b"]], frame["y"])
    ).version
    gate = {"target": "y", "resamples": 50, "checks": [{"check": "contract"}]}
    outcome = loopml.models.promote("churn", version, policy=gate, data=frame)
    assert not outcome.passed and "without an input contract" in outcome.checks[0].detail


def regression_pair(seed: int = 0, n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.normal(100, 20, n)
    return pd.DataFrame(
        {
            "y": y,
            "good": y + rng.normal(0, 5, n),
            "poor": y + rng.normal(0, 9, n),
            "region": rng.choice(["east", "west"], n),
        }
    )


def judged(checks: list, candidate: str, champion: str, **options) -> list:
    policy = load_policy({"target": "y", "resamples": 200, "checks": checks, **options})
    frame = regression_pair()
    found = evaluate(
        candidate,
        frame,
        target="y",
        baselines={"champion": champion},
        sensitive=policy.sensitive or None,
        resamples=200,
    )
    return judge(policy, found, None)


@pytest.mark.parametrize(
    "check",
    [
        {"check": "improvement", "metric": "mae", "at_least": 0},
        {"improvement": {"metric": "mae", "at_least": 0}},
        {"check": "difference", "metric": "mae", "lower_bound_above": 0},
    ],
)
def test_an_improvement_in_mae_is_read_in_maes_direction(check) -> None:
    better = judged([check], "good", "poor")[0]
    assert better.passed, better.detail
    assert "mae improves by" in better.detail and "lower is better" in better.detail
    worse = judged([check], "poor", "good")[0]
    assert not worse.passed and "mae loses" in worse.detail
    assert "-0" not in better.detail + worse.detail


def test_no_worse_than_lets_a_candidate_lose_at_most_so_much() -> None:
    # poor's MAE is about 7.2 against good's 4.0: it loses about 3.2
    assert judged([{"improvement": {"metric": "mae", "no_worse_than": 5}}], "poor", "good")[
        0
    ].passed
    assert not judged([{"improvement": {"metric": "mae", "no_worse_than": 2}}], "poor", "good")[
        0
    ].passed


def test_identical_models_do_not_print_minus_zero() -> None:
    result = judged([{"check": "improvement", "metric": "mae"}], "good", "good")[0]
    assert not result.passed
    assert "-0" not in result.detail and "improves by 0 [0, 0]" in result.detail


def test_regression_fairness_judges_the_gap_between_groups_errors() -> None:
    check = {"check": "fairness", "column": "region", "rate": "mae", "gap_below": 2}
    result = judged([check], "good", "poor", sensitive=["region"])[0]
    assert result.passed and "largest gap" in result.detail
    tight = {**check, "gap_below": 0.01}
    assert not judged([tight], "good", "poor", sensitive=["region"])[0].passed
    with pytest.raises(PolicyError, match="gap_below"):
        load_policy({"target": "y", "checks": [{**check, "gap_below": None}]})


def test_an_unknown_metric_in_a_gate_is_refused_with_the_known_ones() -> None:
    with pytest.raises(PolicyError, match="Unknown metric 'maee'.*Did you mean mae"):
        load_policy({"target": "y", "checks": [{"check": "improvement", "metric": "maee"}]})


def test_a_rollback_while_the_gate_runs_is_never_overwritten(sqlite_workspace, monkeypatch) -> None:
    """The champion is rolled back (by a person, or a server judging its error rate) while
    a promotion's gate is evaluating: the promotion passes its checks but does not move the
    alias, and says why."""
    import loopml.registry.promotion as promotion

    rng = np.random.default_rng(0)
    train, valid = data(rng), data(rng)
    old, bad, strong = (register(train, LogisticRegression(C=c)) for c in (1.0, 0.5, 2.0))
    loopml.models.set_alias("churn", "champion", old)
    loopml.models.set_alias("churn", "champion", bad)
    judge = promotion.judge

    def judged_while_rolled_back(*args, **kwargs):
        loopml.models.rollback("churn", reason="bad answers 500")
        return judge(*args, **kwargs)

    monkeypatch.setattr(promotion, "judge", judged_while_rolled_back)
    lenient = {"target": "y", "resamples": 50, "checks": [{"check": "contract"}]}
    outcome = loopml.models.promote("churn", strong, policy=lenient, data=valid)
    assert outcome.passed and not outcome.moved
    assert outcome.moved_meanwhile.startswith(f"churn@champion moved from version {bad} to {old}")
    assert outcome.to_dict()["moved_meanwhile"] == outcome.moved_meanwhile
    assert loopml.models.get_version("churn@champion").version == old
    assert loopml.models.history("churn")[-1].action == "rollback"
