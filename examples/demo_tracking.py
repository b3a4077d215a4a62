"""The tracking part of the demo: train scikit-learn models with tracking, then find the best.

Uses scikit-learn's bundled breast-cancer data (nothing is downloaded). One run prepares the
data split and stores it; the training runs read it (lineage by content hash): a dummy
baseline, a sweep of regularised logistic regressions nested under a parent run, and a
gradient-boosting model whose validation loss is logged stage by stage. At the end it prints
the best run and the `loopml runs list` table, exactly as the CLI shows them.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import loopml

EXPERIMENT = "breast-cancer"
SEED = 7


def scores(model, x: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    """Validation metrics of a fitted binary classifier."""
    probability = model.predict_proba(x)[:, 1]
    return {
        "auc": roc_auc_score(y, probability),
        "log_loss": log_loss(y, probability),
        "brier": brier_score_loss(y, probability),
        "accuracy": accuracy_score(y, probability >= 0.5),
    }


def prepare(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, loopml.ArtifactRecord]:
    """Split the data once, store the split, and return it with its artifact record."""
    frame = load_breast_cancer(as_frame=True).frame
    with loopml.start_run(EXPERIMENT, name="prepare", params={"valid_size": 0.3}, seed=SEED) as run:
        train, valid = train_test_split(
            frame, test_size=0.3, random_state=SEED, stratify=frame["target"]
        )
        split = folder / "split"
        split.mkdir()
        train.to_csv(split / "train.csv", index=False)
        valid.to_csv(split / "valid.csv", index=False)
        run.log_metrics(
            {
                "train_rows": len(train),
                "valid_rows": len(valid),
                "positive_rate": float(frame["target"].mean()),
            }
        )
        record = run.log_artifact(split)
    return train, valid, record


def train_baseline(train: pd.DataFrame, valid: pd.DataFrame, data) -> None:
    """The dummy a real model must beat: always the training prior."""
    x, y = train.drop(columns="target"), train["target"]
    with loopml.start_run(
        EXPERIMENT,
        name="dummy-prior",
        params={"model": "dummy"},
        seed=SEED,
        tags={"role": "baseline"},
    ) as run:
        run.log_input(data)
        model = DummyClassifier(strategy="prior").fit(x, y)
        run.log_metrics(scores(model, valid.drop(columns="target"), valid["target"]))


def sweep_logistic(train: pd.DataFrame, valid: pd.DataFrame, data) -> None:
    """A small sweep over the regularisation strength: each trial is a nested run."""
    x, y = train.drop(columns="target"), train["target"]
    with loopml.start_run(EXPERIMENT, name="logreg-sweep", params={"model": "logreg"}, seed=SEED):
        for strength in (0.001, 0.01, 0.1, 1.0, 10.0):
            with loopml.start_run(
                name=f"logreg-C={strength}", params={"model": "logreg", "C": strength}, seed=SEED
            ) as trial:
                trial.log_input(data)
                model = make_pipeline(
                    StandardScaler(), LogisticRegression(C=strength, max_iter=2000)
                )
                model.fit(x, y)
                trial.log_metrics(scores(model, valid.drop(columns="target"), valid["target"]))


def train_boosting(train: pd.DataFrame, valid: pd.DataFrame, data, folder: Path) -> None:
    """Gradient boosting, with the validation loss after every stage as a metric history."""
    x, y = train.drop(columns="target"), train["target"]
    x_valid, y_valid = valid.drop(columns="target"), valid["target"]
    params = {"model": "gbm", "n_estimators": 150, "learning_rate": 0.05, "max_depth": 3}
    with loopml.start_run(EXPERIMENT, name="gbm", params=params, seed=SEED) as run:
        run.log_input(data)
        model = GradientBoostingClassifier(
            n_estimators=150, learning_rate=0.05, max_depth=3, random_state=SEED
        ).fit(x, y)
        for stage, probability in enumerate(model.staged_predict_proba(x_valid)):
            run.log_metric("valid_log_loss", log_loss(y_valid, probability[:, 1]), step=stage)
        run.log_metrics(scores(model, x_valid, y_valid))
        importance = pd.Series(model.feature_importances_, index=x.columns).nlargest(10)
        path = folder / "feature_importance.json"
        path.write_text(json.dumps(importance.round(4).to_dict(), indent=2))
        run.log_artifact(path)
        run.log_artifact(model, name="model")


def show(*args: str, check: bool = True) -> None:
    """Print a loopml command and what it prints."""
    print(f"\n$ loopml {shlex.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "loopml.cli.main", *args], check=check)


def main() -> None:
    started, started_at = time.perf_counter(), time.time()
    np.random.seed(SEED)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        train, valid, data = prepare(folder)
        train_baseline(train, valid, data)
        sweep_logistic(train, valid, data)
        train_boosting(train, valid, data, folder)
    tracked = loopml.search_runs(EXPERIMENT, where=f"start_time >= {started_at}")
    print(f"Trained and tracked {len(tracked)} runs in {time.perf_counter() - started:.1f}s.")
    best = loopml.search_runs(
        EXPERIMENT, where="metrics.auc is not null", sort="-metrics.auc", limit=1
    )[0]
    show("runs", "show", best.id)
    show(
        "runs",
        "list",
        "--experiment",
        EXPERIMENT,
        "--where",
        "metrics.auc is not null",
        "--sort",
        "-metrics.auc",
        "--limit",
        "10",
        "--columns",
        "metrics.auc,metrics.log_loss,metrics.brier,params.model,params.C",
    )
