"""The reference stored with a model version: the profile of its inputs and of its scores, a
bounded random sample, and permutation importance that ranks the feature the label depends on
first. Stored from a frame or from a run's output, read back as it was stored."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import loopml
from loopml.errors import ColumnNotFoundError, UsageError
from loopml.registry.reference import SAMPLE, get_reference, set_reference


def _training(rows: int, seed: int = 0) -> pd.DataFrame:
    """The label y depends on a alone; b and c are noise."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=rows)
    return pd.DataFrame(
        {
            "a": a,
            "b": rng.normal(size=rows),
            "c": rng.choice(["x", "y", "z"], rows),
            "y": a + rng.normal(scale=0.3, size=rows) > 0,
        }
    )


def _model(frame: pd.DataFrame):
    encode = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["c"]), remainder="passthrough"
    )
    return make_pipeline(encode, LogisticRegression()).fit(frame[["a", "b", "c"]], frame["y"])


def test_register_stores_the_profile_scores_sample_and_importance(sqlite_workspace) -> None:
    frame = _training(6000)
    model = _model(frame)
    version = loopml.models.register("churn", model, reference=frame, target="y", card=False)
    found = get_reference(version.ref)
    assert found.rows == 6000 and found.target == "y"
    assert found.features == ["a", "b", "c"]  # the model's inputs, not the label
    assert found.profile["a"].rows == 6000
    assert found.profile["a"].mean == pytest.approx(frame["a"].mean())
    assert set(found.profile["c"].categories.counts.index) == {"x", "y", "z"}
    scores = model.predict_proba(frame[["a", "b", "c"]])[:, 1]
    assert found.scores["score"].rows == 6000
    assert found.scores["score"].mean == pytest.approx(scores.mean())
    assert len(found.sample) == SAMPLE
    assert {"a", "b", "c", "y", "__score__"} <= set(found.sample.columns)
    assert found.top_features(3)[0] == "a"
    assert found.importance["a"] > 10 * max(abs(found.importance["b"]), 1e-3)


def test_a_small_reference_is_kept_whole(sqlite_workspace) -> None:
    frame = _training(400)
    version = loopml.models.register("churn", _model(frame), reference=frame, card=False)
    found = get_reference(version.ref)
    assert len(found.sample) == 400 and found.rows == 400
    assert sorted(found.sample["a"]) == sorted(frame["a"])
    assert found.importance == {} and found.target is None  # no target: no importance
    assert found.top_features(2) == ["a", "b"]


def test_the_reference_can_be_a_run_output(workspace) -> None:
    frame = _training(500)
    with loopml.start_run(name="train") as run:
        run.log_artifact(_model(frame), name="model")
        run.log_artifact(frame, name="train_rows")
    version = loopml.models.register(
        "churn", run=run.id, reference="train_rows", target="y", card=False
    )
    found = get_reference(version.ref)
    assert found.rows == 500 and found.top_features(1) == ["a"]


def test_set_and_get_reference_round_trip(workspace) -> None:
    frame = _training(1000)
    version = loopml.models.register("churn", _model(frame), card=False)
    stored = set_reference(version.ref, frame, target="y", seed=3)
    back = get_reference("churn@1")
    assert back.rows == stored.rows == 1000 and back.seed == 3
    assert back.importance == stored.importance
    assert back.profile.to_dict() == stored.profile.to_dict()
    assert back.scores.to_dict() == stored.scores.to_dict()
    pd.testing.assert_frame_equal(back.sample, stored.sample)
    replaced = set_reference(version.ref, frame.iloc[:200])
    assert get_reference(version.ref).rows == replaced.rows == 200


def test_a_version_without_a_reference_says_how_to_store_one(workspace) -> None:
    frame = _training(200)
    loopml.models.register("churn", _model(frame), card=False)
    with pytest.raises(UsageError, match="loopml models reference churn@1"):
        get_reference("churn@1")


@pytest.mark.parametrize(
    ("drop", "target", "fragment"),
    [
        ("b", None, "lacks the model's input columns: b"),
        ("y", "y", "no target column 'y'"),
    ],
)
def test_a_reference_without_the_models_columns_is_refused(
    sqlite_workspace, drop: str, target: str | None, fragment: str
) -> None:
    frame = _training(200)
    model = _model(frame)
    with pytest.raises(ColumnNotFoundError, match=fragment):
        loopml.models.register(
            "churn", model, reference=frame.drop(columns=drop), target=target, card=False
        )


def test_a_refused_reference_leaves_no_version_behind(workspace) -> None:
    frame = _training(200)
    model = _model(frame)
    with pytest.raises(ColumnNotFoundError):
        loopml.models.register("churn", model, reference=frame.drop(columns="b"), card=False)
    again = loopml.models.register("churn", model, reference=frame, card=False)
    assert again.version == 1


class _Counting:
    """A fitted model that counts its predict_proba calls and the rows they scored."""

    def __init__(self, model) -> None:
        self.model, self.calls, self.rows = model, 0, 0
        self.feature_names_in_ = model.feature_names_in_
        self.classes_ = model.classes_

    def predict_proba(self, frame):
        self.calls, self.rows = self.calls + 1, self.rows + len(frame)
        return self.model.predict_proba(frame)


def test_importance_scores_its_shuffles_in_a_few_large_predictions() -> None:
    from loopml.registry.reference import (
        IMPORTANCE_REPEATS,
        IMPORTANCE_ROWS,
        make_reference,
    )

    frame = _training(6000)
    counting = _Counting(_model(frame))
    found = make_reference(counting, frame, target="y")
    assert found.top_features(1) == ["a"]
    # the reference's scores, the baseline on the importance rows, then one call for every
    # shuffle of every feature: not one call per feature and shuffle
    assert counting.calls == 3
    assert counting.rows == 6000 + IMPORTANCE_ROWS * (1 + 3 * IMPORTANCE_REPEATS)
