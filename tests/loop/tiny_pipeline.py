"""A tiny pipeline for the loop's tests, run by module path (``tiny_pipeline:train``).

The dataset ``tiny`` has a row every few hours of 2013's first half: two features ``a`` and
``b`` and a label ``y``. It drifts twice: ``a`` moves up by half a standard deviation a month,
and from April on ``y`` follows ``b`` the other way round, so a model trained on January and
February loses to one retrained on May. A run makes ``model`` (a logistic regression on a and
b), ``train_rows`` and ``valid_rows``; ``fail=True`` makes the model step raise.

``champion(name)`` sets up an endpoint the way a user would before the loop takes over: the
dataset as a snapshot, a run trained on January and February (validated on March), its model
registered as version 1 with its training rows as the reference, and the ``champion`` alias.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.data.snapshots import Snapshot
from loopml.pipeline import REQUIRED, Pipeline, step

DATASET = "tiny"
FEATURES = ["a", "b"]
TARGET = "y"
START, END = "2013-01-01", "2013-07-01"


def rows(seed: int = 0, every: str = "4h") -> pd.DataFrame:
    """The dataset: time, a, b and y, drifting as the module docstring says."""
    rng = np.random.default_rng(seed)
    time = pd.date_range(START, END, freq=every, tz="UTC", inclusive="left")
    month = time.month.to_numpy()
    a = rng.normal(0.5 * (month - 1), 1.0)
    b = rng.normal(0.0, 1.0, len(time))
    sign = np.where(month <= 3, 1.0, -1.0)
    y = (a - 0.5 * (month - 1)) + 2 * sign * b + rng.normal(0.0, 1.0, len(time)) > 0
    return pd.DataFrame({"time": time, "a": a, "b": b, "y": y})


def load(source: Snapshot) -> pd.DataFrame:
    """The snapshot's rows."""
    return source.to_pandas()


@step(outputs=("train_rows", "valid_rows"))
def split(
    load: pd.DataFrame, split_at: str, data_end: str, train_from: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on [train_from, split_at), validate on [split_at, data_end)."""
    when = load["time"]
    first = pd.Timestamp(train_from, tz="UTC") if train_from else when.min()
    middle, last = pd.Timestamp(split_at, tz="UTC"), pd.Timestamp(data_end, tz="UTC")
    train = load[(when >= first) & (when < middle)].reset_index(drop=True)
    return train, load[(when >= middle) & (when < last)].reset_index(drop=True)


def model(train_rows: pd.DataFrame, fail: bool = False) -> LogisticRegression:
    """A logistic regression on the features; raises when asked to."""
    if fail:
        raise RuntimeError("the training data is broken today")
    return LogisticRegression().fit(train_rows[FEATURES], train_rows[TARGET])


train = Pipeline(
    [load, split, model],
    name="tiny",
    params={"source": DATASET, "split_at": REQUIRED, "data_end": REQUIRED},
)


def champion(name: str) -> int:
    """Register the first model of endpoint NAME (trained on January and February, validated
    on March) and make it champion; returns its version."""
    loopml.data.add(DATASET, rows(), time_column="time")
    params = {"train_from": START, "split_at": "2013-03-01", "data_end": "2013-04-01"}
    run = train.run(params, progress=False)
    version = loopml.models.register(
        name, run=run.run_id, reference="train_rows", target=TARGET, card=False
    ).version
    loopml.models.set_alias(name, "champion", version)
    return version


@step(outputs=("model",))
def prior(train_rows: pd.DataFrame) -> DummyClassifier:
    """The training prior for every row: one score for all, which no refit may roll out."""
    return DummyClassifier(strategy="prior").fit(train_rows[FEATURES], train_rows[TARGET])


constant = Pipeline(
    [load, split, prior],
    name="tiny-constant",
    params={"source": DATASET, "split_at": REQUIRED, "data_end": REQUIRED},
)
