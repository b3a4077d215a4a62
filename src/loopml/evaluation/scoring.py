"""Turning a model, a rule or a column into scores for the rows being evaluated."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import ColumnNotFoundError, InvalidValueError, UsageError


def feature_frame(model: Any, frame: pd.DataFrame, exclude: Sequence[str]) -> pd.DataFrame:
    """The columns a model reads: its ``feature_names_in_`` when it has them, else every
    column but the target and the other excluded ones."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return frame.drop(columns=[c for c in exclude if c in frame.columns])
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise ColumnNotFoundError(
            f"The model reads columns the data does not have: {', '.join(map(str, missing))}."
        )
    names = list(names)
    return frame if list(frame.columns) == names else frame[names]


def scores(
    model: Any, frame: pd.DataFrame, task: str, exclude: Sequence[str], what: str
) -> np.ndarray:
    """One score per row: the positive class's probability (classification) or the prediction
    (regression). ``model`` may be a fitted model, a function of the frame (a rule), or the
    name of a column holding scores already."""
    if isinstance(model, str):
        if model not in frame.columns:
            raise ColumnNotFoundError(
                f"The {what} names a column {model!r} the data does not have."
            )
        return _as_scores(frame[model].to_numpy(), len(frame), what)
    if _is_model(model):
        features = feature_frame(model, frame, exclude)
        if task == "classification" and hasattr(model, "predict_proba"):
            return _as_scores(
                _positive_column(model, model.predict_proba(features)), len(frame), what
            )
        return _as_scores(model.predict(features), len(frame), what)
    if callable(model):
        return _as_scores(_call_rule(model, frame, what), len(frame), what)
    raise UsageError(
        f"The {what} must be a fitted model (predict or predict_proba), a function of the "
        f"rows (a rule), or a column name, not a {type(model).__name__}."
    )


def _is_model(value: Any) -> bool:
    return hasattr(value, "predict_proba") or hasattr(value, "predict")


def _call_rule(rule: Callable[[pd.DataFrame], Any], frame: pd.DataFrame, what: str) -> Any:
    try:
        return rule(frame)
    except Exception as error:
        raise InvalidValueError(
            f"The {what} rule failed on the data: {type(error).__name__}: {error}"
        ) from None


def _positive_column(model: Any, probabilities: Any) -> np.ndarray:
    array = np.asarray(probabilities)
    if array.ndim == 1:
        return array
    if array.shape[1] != 2:
        raise InvalidValueError(
            f"Only binary classification is evaluated; the model gives {array.shape[1]} "
            "class probabilities."
        )
    return array[:, 1]


def _as_scores(values: Any, rows: int, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(array) != rows:
        raise InvalidValueError(f"The {what} gave {len(array)} scores for {rows} rows.")
    return array


def binary_target(values: pd.Series, positive: Any | None) -> np.ndarray:
    """The target as booleans: True for the positive class (the larger of two, by default)."""
    if values.isna().any():
        raise InvalidValueError(
            f"The target {values.name!r} has {int(values.isna().sum())} missing values; drop "
            "those rows before evaluating."
        )
    classes = sorted(pd.unique(values).tolist())
    if positive is None:
        if len(classes) > 2:
            raise InvalidValueError(
                f"The target {values.name!r} has {len(classes)} classes ({classes[:5]}...); "
                "classification is evaluated for two. Pass positive= to pick one against the "
                "rest, or task='regression' if it is a quantity to predict."
            )
        positive = classes[-1]
    return (values == positive).to_numpy()
