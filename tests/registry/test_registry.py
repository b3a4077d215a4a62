"""The registry: numbered versions, aliases and rollback with an audit log without gaps, even
under concurrent writers; tampered models refused; lineage back to the snapshot."""

from __future__ import annotations

import itertools
import multiprocessing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.data.snapshots import Snapshot
from loopml.errors import (
    ArtifactCorruptedError,
    ArtifactNotFoundError,
    ModelNotFoundError,
    RunNotFoundError,
    UsageError,
    WorkspaceError,
)
from loopml.pipeline import Pipeline
from loopml.registry.api import version_numbers
from loopml.registry.operations import create_model


def fitted(c: float = 1.0) -> LogisticRegression:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    return LogisticRegression(C=c).fit(x, x["a"] > 0)


def test_versions_are_numbered_and_aliases_move_with_an_audit_log(workspace) -> None:
    first = loopml.models.register("churn", fitted(), description="first try")
    second = loopml.models.register("churn", fitted(0.1))
    assert (first.ref, second.ref) == ("churn@1", "churn@2")
    assert loopml.models.get_version("churn").version == 2  # the latest
    loopml.models.set_alias("churn", "champion", 1, reason="the only one we had")
    loopml.models.set_alias("churn", "champion", 2, reason="better on March")
    assert loopml.models.get_version("churn@champion").version == 2
    assert loopml.models.get_version("churn@1").aliases == ()
    log = loopml.models.history("churn")
    assert [(e.sequence, e.action, e.from_version, e.to_version) for e in log] == [
        (1, "register", None, 1),
        (2, "register", None, 2),
        (3, "alias", None, 1),
        (4, "alias", 1, 2),
    ]
    assert log[3].reason == "better on March" and log[3].actor


def test_rollback_walks_back_one_version_at_a_time(workspace) -> None:
    for c in (1.0, 0.5, 0.1):
        loopml.models.register("churn", fitted(c))
    for version in (1, 2, 3):
        loopml.models.set_alias("churn", "champion", version)
    event = loopml.models.rollback("churn", reason="p99 too high")
    assert (event.from_version, event.to_version, event.action) == (3, 2, "rollback")
    assert loopml.models.rollback("churn").to_version == 1
    with pytest.raises(UsageError, match="no earlier version to roll back to"):
        loopml.models.rollback("churn")
    assert loopml.models.get_version("churn@champion").version == 1


def test_a_loaded_model_predicts_like_the_registered_one(workspace) -> None:
    model = fitted()
    loopml.models.register("churn", model)
    x = pd.DataFrame({"a": [0.5, -1.0], "b": [0.0, 2.0]})
    np.testing.assert_allclose(
        loopml.models.load("churn@1").predict_proba(x), model.predict_proba(x)
    )


def test_a_tampered_model_is_refused(sqlite_workspace) -> None:
    record = loopml.models.register("churn", fitted(), card=False)  # the model's files alone
    objects = Path(sqlite_workspace.artifacts.root) / "objects"
    pickled = max(objects.rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
    pickled.write_bytes(pickled.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ArtifactCorruptedError):
        loopml.models.load(record.ref)


def test_unknown_names_versions_and_aliases(workspace) -> None:
    with pytest.raises(ModelNotFoundError, match="No model is registered as 'nope'"):
        loopml.models.get_version("nope@1")
    loopml.models.register("churn", fitted())
    with pytest.raises(ModelNotFoundError, match="no version or alias 'champion'.*aliases: none"):
        loopml.models.get_version("churn@champion")
    with pytest.raises(ModelNotFoundError, match="has no version 7"):
        loopml.models.set_alias("churn", "champion", 7)
    with pytest.raises(ModelNotFoundError, match="no alias 'champion' to roll back"):
        loopml.models.rollback("churn")
    with pytest.raises(UsageError, match="Aliases are"):
        loopml.models.set_alias("churn", "12", 1)
    with pytest.raises(UsageError, match="Model names are"):
        loopml.models.register("no spaces", fitted())
    with pytest.raises(UsageError, match="Model names are"):
        loopml.models.register("churn\n", fitted())  # names are matched whole
    with pytest.raises(UsageError, match="Aliases are"):
        loopml.models.set_alias("churn", "champion\n", 1)
    with pytest.raises(UsageError, match="either a model object or the output of a run"):
        loopml.models.register("churn")


def test_a_pipeline_run_registers_with_lineage_to_its_snapshot(sqlite_workspace) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    snapshot = loopml.data.add("rows", frame.assign(y=frame["a"] > 0))

    def table(rows: Snapshot) -> pd.DataFrame:
        return rows.to_pandas()

    def model(table: pd.DataFrame) -> LogisticRegression:
        return LogisticRegression().fit(table[["a", "b"]], table["y"])

    result = Pipeline([table, model], name="train", params={"rows": "rows"}).run()
    record = loopml.models.register("churn", run=result.run_id)
    assert record.run_id == result.step("model").run_id
    found = loopml.models.lineage("churn@1")
    assert found["pipeline"]["run"] == result.run_id
    assert found["snapshots"] == {snapshot.ref: snapshot.digest}
    assert found["run"]["name"] == "model"
    with pytest.raises(ArtifactNotFoundError, match="no output named 'tabel'"):
        loopml.models.register("churn", run=result.run_id, artifact="tabel")


def test_a_run_output_registers_with_lineage_to_its_run(workspace) -> None:
    with loopml.start_run(experiment="e", name="train") as run:
        run.log_artifact(fitted(), name="model")
    record = loopml.models.register("churn", run=run.id[:8], card=False)
    assert record.run_id == run.id and record.created_by
    found = loopml.models.lineage(record.ref)
    assert found["run"] == {"id": run.id, "name": "train", "status": "finished"}
    assert found["pipeline"] is None and found["snapshots"] == {}
    with pytest.raises(RunNotFoundError):
        loopml.models.register("churn", run="ffffffffffffffff")
    assert [v.ref for v in loopml.models.versions("churn")] == ["churn@1"]


def test_every_model_is_listed_with_its_versions_and_aliases(workspace) -> None:
    assert loopml.models.list_models() == []
    for name in ("b-model", "a.model", "b-model"):
        loopml.models.register(name, fitted(), card=False)
    loopml.models.set_alias("b-model", "challenger", 1)
    for _ in range(2):  # a model without versions (as MLflow's client makes them), once
        create_model(workspace.metadata, "c")
    listed = loopml.models.list_models()
    assert [(m["name"], m["versions"], m["latest"]) for m in listed] == [
        ("a.model", 1, 1),
        ("b-model", 2, 2),
        ("c", 0, None),
    ]
    with pytest.raises(ModelNotFoundError, match="'c' has no versions yet"):
        loopml.models.get_version("c")
    assert listed[1]["aliases"] == {"challenger": 1} and listed[1]["updated_at"] > 0
    assert version_numbers("b-model", ["challenger", "2", "9", "gone"]) == {
        "challenger": 1,
        "2": 2,
    }


def _move_alias(home: str, versions: list[int]) -> None:
    import os

    os.environ["LOOPML_HOME"] = home
    for version in versions:
        loopml.models.set_alias("churn", "champion", version, reason=f"process {os.getpid()}")


@pytest.mark.slow
def test_concurrent_alias_moves_leave_a_log_without_gaps(tmp_path: Path) -> None:
    home = str(tmp_path / ".loopml")
    with loopml.use_workspace(loopml.open_workspace(tmp_path, home=home)):
        for c in (1.0, 0.5, 0.1):
            loopml.models.register("churn", fitted(c))
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_move_alias, args=(home, [1, 2, 3] * 5)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    with loopml.use_workspace(loopml.open_workspace(tmp_path, home=home)):
        log = [e for e in loopml.models.history("churn") if e.action == "alias"]
        final = loopml.models.get_version("churn@champion").version
    assert len(log) == 60
    sequences = [e.sequence for e in log]
    assert sequences == list(range(4, 64))  # after the 3 registrations, no gap
    for before, after in itertools.pairwise(log):
        assert after.from_version == before.to_version  # each move saw the one before it
    assert log[-1].to_version == final


def test_an_alias_moves_from_an_expected_version_only(workspace) -> None:
    for c in (1.0, 0.5):
        loopml.models.register("churn", fitted(c))
    assert loopml.models.set_alias("churn", "champion", 1, expected=2) is None  # it is unset
    assert loopml.models.set_alias("churn", "champion", 1, expected=0).to_version == 1
    assert loopml.models.set_alias("churn", "champion", 2, expected=0) is None
    assert loopml.models.set_alias("churn", "champion", 2, expected=1).from_version == 1
    assert loopml.models.get_version("churn@champion").version == 2
    assert [e.action for e in loopml.models.history("churn")] == ["register"] * 2 + ["alias"] * 2


def test_a_version_is_stored_with_its_reference_or_not_at_all(workspace, monkeypatch) -> None:
    """The reference's record is written in the version's transaction: a failure there
    leaves neither behind (the version used to stay, without the baseline monitoring needs)."""
    from loopml.registry.reference import get_reference
    from loopml.store import monitoring as references

    x = pd.DataFrame({"a": np.linspace(-1, 1, 50), "b": np.linspace(1, -1, 50)})

    def broken(*args, **kwargs):
        raise RuntimeError("the store went away")

    # a server answers its own failure with 500, and the SDK raises it as a WorkspaceError
    served = workspace.metadata.dialect == "http"
    failure = (WorkspaceError, "HTTP 500") if served else (RuntimeError, "the store went away")
    with monkeypatch.context() as patched:
        patched.setattr(references, "set_reference", broken)
        with pytest.raises(failure[0], match=failure[1]):
            loopml.models.register("churn", fitted(), reference=x, card=False)
    with pytest.raises(ModelNotFoundError):
        loopml.models.get_version("churn")
    record = loopml.models.register("churn", fitted(), reference=x, card=False)
    assert record.version == 1 and get_reference(record.ref).rows == 50


def test_a_card_that_cannot_be_written_is_a_warning_and_the_version_stands(
    workspace, monkeypatch
) -> None:
    import loopml.registry.cards as cards

    def broken(*args, **kwargs):
        raise RuntimeError("no room for the card")

    monkeypatch.setattr(cards, "gather", broken)
    with pytest.warns(loopml.models.CardNotWrittenWarning, match="loopml models card churn@1"):
        record = loopml.models.register("churn", fitted())
    assert record.version == 1 and not record.card
    assert [e.action for e in loopml.models.history("churn")] == ["register"]


def test_concurrent_first_registrations_of_a_name_make_one_model(workspace) -> None:
    import threading

    from loopml.registry import operations as ops

    version = ops.NewVersion("0" * 64, "sklearn", {}, "tester")
    start, numbers, failures = threading.Barrier(4), [], []

    def register() -> None:
        start.wait()
        try:
            numbers.append(ops.register_version(workspace.metadata, "fresh", version).version)
        except Exception as error:  # any failure is the finding
            failures.append(error)

    threads = [threading.Thread(target=register) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and sorted(numbers) == [1, 2, 3, 4]
    assert [m["name"] for m in loopml.models.list_models()] == ["fresh"]
