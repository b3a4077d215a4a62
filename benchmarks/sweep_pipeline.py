"""The pipeline the sweep benchmark tunes: a single-threaded model in cross-validation.

Lives in its own module so worker processes import it by name (benchmarks/pipeline.py puts
this folder on the path, and worker processes inherit it).
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.model_selection import cross_val_score

from loopml import Pipeline, StepContext

FOLDS = 3


def data() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled breast-cancer data: 569 rows, 30 features."""
    bunch = load_breast_cancer()
    return bunch.data, bunch.target


def cv_auc(
    data: tuple[np.ndarray, np.ndarray], learning_rate: float, min_samples_split: int
) -> float:
    """Mean cross-validated AUC of gradient boosting with these settings."""
    x, y = data
    model = GradientBoostingClassifier(
        n_estimators=100,
        learning_rate=learning_rate,
        min_samples_split=min_samples_split,
        random_state=0,
    )
    return float(cross_val_score(model, x, y, cv=FOLDS, scoring="roc_auc").mean())


def score(
    data: tuple[np.ndarray, np.ndarray],
    context: StepContext,
    learning_rate: float = 0.1,
    min_samples_split: int = 2,
) -> float:
    value = cv_auc(data, learning_rate, min_samples_split)
    context.log_metric("cv_auc", value)
    return value


tune = Pipeline([data, score], name="tune")
