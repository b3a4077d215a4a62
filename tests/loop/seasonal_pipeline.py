"""A small seasonal regression for the loop's tests, run by module path
(``seasonal_pipeline:train``).

The dataset ``demand`` has a row every three hours of 2013's first half: the temperature
``temp`` (warmer month by month), the hour's position on the clock (``hour_sin``,
``hour_cos``) and the demand ``y``. Demand falls with warmth in winter (heating) and rises with
it as summer comes (cooling): the slope on temperature grows a little every month, so a model
trained on January and February errs more and more, and one retrained on recent months errs
less. A run makes ``model`` (a linear regression), ``train_rows`` and ``valid_rows``.

``champion(name)`` registers the January-February model as version 1 with its training rows as
the reference, and makes it champion.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression

import loopml
from loopml.data.snapshots import Snapshot
from loopml.pipeline import REQUIRED, Pipeline, step

DATASET = "demand"
FEATURES = ["temp", "hour_sin", "hour_cos"]
TARGET = "y"
START, END = "2013-01-01", "2013-07-01"


def rows(seed: int = 0, every: str = "3h") -> pd.DataFrame:
    """The dataset, drifting as the module docstring says."""
    rng = np.random.default_rng(seed)
    time = pd.date_range(START, END, freq=every, tz="UTC", inclusive="left")
    month = time.month.to_numpy().astype(float)
    hour = time.hour.to_numpy() * 2 * np.pi / 24
    temp = rng.normal(2 + 3 * month, 4.0)
    slope = -3.0 + 1.0 * (month - 1)  # -3 in January, +2 in June
    y = 200 + slope * temp + 15 * np.sin(hour) + rng.normal(0, 4.0, len(time))
    frame = pd.DataFrame({"time": time, "temp": temp, "hour_sin": np.sin(hour)})
    return frame.assign(hour_cos=np.cos(hour), y=y)


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


def model(train_rows: pd.DataFrame) -> LinearRegression:
    """A linear regression of demand on the features."""
    return LinearRegression().fit(train_rows[FEATURES], train_rows[TARGET])


train = Pipeline(
    [load, split, model],
    name="seasonal",
    params={"source": DATASET, "split_at": REQUIRED, "data_end": REQUIRED},
)


def champion(name: str) -> int:
    """Register the first model of endpoint NAME (trained on January and February) and make
    it champion; returns its version."""
    loopml.data.add(DATASET, rows(), time_column="time")
    params = {"train_from": START, "split_at": "2013-03-01", "data_end": "2013-04-01"}
    run = train.run(params, progress=False)
    version = loopml.models.register(
        name, run=run.run_id, reference="train_rows", target=TARGET, card=False
    ).version
    loopml.models.set_alias(name, "champion", version)
    return version
