"""Saved models: every flavor reads back a model that predicts the same, records what it was
saved with, and warns when loaded with other library versions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from loopml.errors import InvalidValueError
from loopml.registry import LibraryVersionWarning, load_model, save_model

lightgbm = pytest.importorskip("lightgbm")
xgboost = pytest.importorskip("xgboost")


def data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    return x, (x["a"] + rng.normal(size=300) > 0).to_numpy()


class Threshold:
    """A hand-written model: predict_proba from one column."""

    def __init__(self, column: str) -> None:
        self.column = column

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        p = 1 / (1 + np.exp(-frame[self.column].to_numpy()))
        return np.column_stack([1 - p, p])


def fitted_models() -> dict[str, object]:
    x, y = data()
    booster = lightgbm.train({"objective": "binary", "verbose": -1}, lightgbm.Dataset(x, y), 10)
    xgb_booster = xgboost.train({"objective": "binary:logistic"}, xgboost.DMatrix(x, y), 10)
    return {
        "sklearn": make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y),
        "lightgbm": lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(x, y),
        "lightgbm-booster": booster,
        "xgboost": xgboost.XGBClassifier(n_estimators=10).fit(x, y),
        "xgboost-booster": xgb_booster,
        "generic": Threshold("a"),
    }


def predictions(model: object, x: pd.DataFrame) -> np.ndarray:
    if isinstance(model, xgboost.Booster):
        return model.predict(xgboost.DMatrix(x))
    if hasattr(model, "predict_proba"):
        return model.predict_proba(x)
    return model.predict(x)


@pytest.mark.parametrize("kind", list(fitted_models()))
def test_every_flavor_round_trips(kind: str, tmp_path: Path) -> None:
    model = fitted_models()[kind]
    x, _ = data()
    info = save_model(model, tmp_path / "saved", contract=x)
    loaded, read = load_model(tmp_path / "saved")
    np.testing.assert_allclose(predictions(loaded, x), predictions(model, x))
    assert read.flavor == kind.split("-")[0]
    assert read.libraries == info.libraries and "numpy" in read.libraries
    assert set(read.contract["columns"]) == {"a", "b"}


def test_what_a_saved_model_records(tmp_path: Path) -> None:
    x, y = data()
    info = save_model(LogisticRegression().fit(x, y), tmp_path / "saved")
    assert info.features == ["a", "b"]
    assert info.output == {"kind": "probabilities", "classes": [False, True]}
    assert info.task == "classification" and info.contract is None
    assert "scikit-learn" in info.libraries


def test_other_library_versions_warn(tmp_path: Path) -> None:
    x, y = data()
    save_model(LogisticRegression().fit(x, y), tmp_path / "saved")
    path = tmp_path / "saved" / "loopml-model.json"
    recorded = json.loads(path.read_text())
    recorded["libraries"]["scikit-learn"] = "0.1.0"
    path.write_text(json.dumps(recorded))
    with pytest.warns(LibraryVersionWarning, match=r"scikit-learn 0\.1\.0 \(installed: "):
        load_model(tmp_path / "saved")


def test_bad_models_and_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidValueError, match="neither predict nor predict_proba"):
        save_model(object(), tmp_path / "a")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(InvalidValueError, match="not empty"):
        save_model(Threshold("a"), tmp_path / "full")
    with pytest.raises(InvalidValueError, match="is not a saved model"):
        load_model(tmp_path / "full")
