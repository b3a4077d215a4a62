"""The flights model as a pipeline: will a flight from New York in 2013 arrive more than 15
minutes late, predicted from what is known before take-off (schedule, route, weather)?

    load (snapshot) → validated (contract) → features → split (temporal) → baseline, model
    → evaluation (bootstrap intervals, slices) → trained

``retrain`` is the same recipe without the evaluation: the loop retrains with it (its gate
evaluates the candidate) and refits with it after the gate on the whole window, the newest
month included.

Run it with ``loopml run flights_pipeline:train`` from this folder (or with it on
PYTHONPATH); a second run takes every unchanged step from the cache. Sweep the model with
``loopml sweep flights_pipeline:train --space flights_space.yaml --metric val_auc``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

import loopml
from loopml import Pipeline, StepContext, step
from loopml.data.snapshots import Snapshot

CONTRACT = Path(__file__).with_name("flights.contract.yaml")
CATEGORIES = ["carrier", "origin", "dest"]
NUMBERS = [
    "month",
    "sched_dep_time",
    "sched_arr_time",
    "distance",
    "hour",
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
]
TARGET = "delayed"
STAGE = 25  # boosting iterations between two reports of the validation AUC


def load(source: Snapshot) -> pd.DataFrame:
    """The snapshot's rows."""
    return source.to_pandas()


def validated(load: pd.DataFrame, context: StepContext, contract: Path = CONTRACT) -> pd.DataFrame:
    """The rows that satisfy the contract; the others are counted and set aside."""
    result = loopml.data.validate(load, contract, mode="quarantine")
    context.log_metrics({"rows": len(load), "quarantined": len(result.quarantined)})
    return result.valid


def features(validated: pd.DataFrame, contract: Path = CONTRACT) -> pd.DataFrame:
    """What is known before take-off, with the target; columns the contract marks as known
    only after prediction are left out, whatever else the data holds."""
    after = {
        name
        for name, rule in loopml.data.contract.load_contract(contract).columns.items()
        if rule.available_at == "after_prediction"
    }
    frame = validated[validated[TARGET].notna()]
    frame = frame.drop(columns=[c for c in after if c in frame.columns])
    out = frame[["time_hour", *NUMBERS]].copy()
    out["weekday"] = frame["time_hour"].dt.dayofweek
    for name in CATEGORIES:
        out[name] = frame[name].astype("category")
    out[TARGET] = frame[TARGET].astype(bool)
    return out.reset_index(drop=True)


@step(outputs=("train_rows", "valid_rows"))
def split(
    features: pd.DataFrame,
    split_at: str = "2013-03-01",
    valid_months: int = 1,
    train_from: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on what came before split_at (from train_from, when given); validate on the
    valid_months after it."""
    start = pd.Timestamp(split_at, tz="UTC")
    end = start + pd.DateOffset(months=valid_months)
    when = features["time_hour"]
    first = pd.Timestamp(train_from, tz="UTC") if train_from else when.min()
    return features[(when >= first) & (when < start)], features[(when >= start) & (when < end)]


def _xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    return frame.drop(columns=["time_hour", TARGET]), frame[TARGET].to_numpy()


def baseline(train_rows: pd.DataFrame) -> DummyClassifier:
    """The training prior for every flight: what the model must beat."""
    x, y = _xy(train_rows)
    return DummyClassifier(strategy="prior").fit(x, y)


def model(
    train_rows: pd.DataFrame,
    valid_rows: pd.DataFrame,
    context: StepContext,
    max_depth: int = 6,
    learning_rate: float = 0.1,
    iterations: int = 150,
) -> HistGradientBoostingClassifier:
    """Gradient boosting, grown STAGE iterations at a time; each stage reports the
    validation AUC, so a sweep can stop a poor trial early. Without validation rows (a
    refit on the whole window), or with rows of one class only (a few flights of the next
    month, by UTC), it grows all its iterations at once."""
    x, y = _xy(train_rows)
    x_valid, y_valid = _xy(valid_rows)
    fitted = HistGradientBoostingClassifier(
        max_depth=max_depth,
        learning_rate=learning_rate,
        categorical_features="from_dtype",
        warm_start=True,
        random_state=context.seed or 0,
    )
    if len(np.unique(y_valid)) < 2:
        return fitted.set_params(max_iter=iterations).fit(x, y)
    for stage, grown in enumerate(range(STAGE, iterations + STAGE, STAGE)):
        fitted.set_params(max_iter=min(grown, iterations)).fit(x, y)
        auc = roc_auc_score(y_valid, fitted.predict_proba(x_valid)[:, 1])
        context.log_metric("stage_val_auc", auc, step=stage)
        if context.report(auc, stage):
            break
    return fitted


def evaluation(
    model: HistGradientBoostingClassifier,
    baseline: DummyClassifier,
    valid_rows: pd.DataFrame,
    context: StepContext,
) -> loopml.Evaluation:
    """The model against the prior baseline on the validation month, with 95% bootstrap
    intervals, the paired difference, and slices by carrier and origin."""
    found = loopml.evaluate(
        model,
        valid_rows,
        target=TARGET,
        baselines={"prior": baseline},
        slices=["carrier", "origin"],
        seed=context.seed or 0,
    )
    logged = {
        "val_auc": found.metrics["roc_auc"],
        "baseline_auc": found.baselines["prior"]["roc_auc"],
    }
    logged |= {f"val_{name}": estimate for name, estimate in found.metrics.items()}
    logged |= {f"baseline_{name}": est for name, est in found.baselines["prior"].items()}
    logged["val_auc_gain"] = found.differences["prior"]["roc_auc"]
    for key, estimate in logged.items():  # undefined values (precision of the prior) are left out
        bounds = {key: estimate.value, f"{key}_low": estimate.low, f"{key}_high": estimate.high}
        context.log_metrics({k: v for k, v in bounds.items() if math.isfinite(v)})
    context.set_tag("weakest_slice", f"{found.slices[0].column}={found.slices[0].value}")
    return found


def trained(
    model: HistGradientBoostingClassifier, evaluation: loopml.Evaluation, features: pd.DataFrame
) -> dict:
    """The model with what it needs to be used and judged: its feature columns and scores."""
    columns = [c for c in features.columns if c not in ("time_hour", TARGET)]
    return {
        "model": model,
        "features": columns,
        "target": TARGET,
        "evaluation": evaluation.to_dict(),
    }


train = Pipeline(
    [load, validated, features, split, baseline, model, evaluation, trained],
    name="flights",
    params={"source": "flights"},
)
# The loop's retrain and refit: the recipe without its evaluation, which the loop's gate makes.
retrain = Pipeline(
    [load, validated, features, split, model], name="flights-retrain", params={"source": "flights"}
)
