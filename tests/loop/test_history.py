"""The loop's record of decisions, on each metadata store (SQLite, PostgreSQL, a server)."""

from __future__ import annotations

from loopml.loop.history import decisions, record


def test_decisions_keep_their_evidence_and_read_oldest_first(any_workspace) -> None:
    evidence = {"alerts": ["rule:drift"], "psi": 0.4}
    first = record(
        "churn",
        "retrain",
        "drift on a",
        version=2,
        as_of=1.5e9,
        evidence=evidence,
        workspace=any_workspace,
    )
    second = record("churn", "held", "the gate failed", workspace=any_workspace)
    record("other", "retrain", "another endpoint", workspace=any_workspace)
    assert decisions("churn") == [first, second]
    assert (first.version, first.as_of, first.evidence) == (2, 1.5e9, evidence)
    assert (second.version, second.as_of, second.evidence) == (None, None, {})
    assert decisions("nobody") == []
