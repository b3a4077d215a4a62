"""Model cards: written for every registered version, from the pipeline's evaluation, with
intervals, weak slices as limitations, the training snapshot and the lineage."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.data.snapshots import Snapshot
from loopml.errors import ArtifactNotFoundError
from loopml.pipeline import Pipeline, StepContext


def rows(rng: np.random.Generator, n: int = 4000) -> pd.DataFrame:
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    frame["carrier"] = rng.choice(["AA", "UA", "ZZ"], n, p=[0.4975, 0.4975, 0.005])
    signal = np.where(frame["carrier"] == "UA", 0.1, 1.0)  # UA: almost no signal
    frame["late"] = signal * frame["a"] + rng.normal(size=n) > 0
    return frame


def table(flights: Snapshot) -> pd.DataFrame:
    return flights.to_pandas()


def model(table: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression().fit(table[["a", "b"]], table["late"])


def prior(table: pd.DataFrame) -> DummyClassifier:
    return DummyClassifier().fit(table[["a", "b"]], table["late"])


def evaluation(
    model: LogisticRegression, prior: DummyClassifier, table: pd.DataFrame, context: StepContext
) -> loopml.Evaluation:
    found = loopml.evaluate(
        model,
        table,
        target="late",
        baselines={"prior": prior},
        slices=["carrier"],
        resamples=200,
    )
    context.log_metric("val_auc", found.metrics["roc_auc"].value)
    return found


@pytest.fixture
def trained(sqlite_workspace) -> str:
    loopml.data.add("flights", rows(np.random.default_rng(0)))
    pipeline = Pipeline([table, model, prior, evaluation], params={"flights": "flights"})
    return pipeline.run().run_id


def test_a_card_is_written_from_the_pipeline_evaluation(trained: str) -> None:
    record = loopml.models.register(
        "late", run=trained, owner="ops", intended_use="Plan gate staffing."
    )
    assert record.card["owner"] == "ops"
    text = loopml.models.read_card(record.ref)
    assert "**Owner**: ops" in text and "Plan gate staffing." in text
    assert "| roc_auc |" in text and "vs prior" in text
    assert "Weak slice carrier=UA" in text  # found worse beyond its interval
    assert "Too few rows to judge: carrier=ZZ" in text
    assert "Snapshot `flights@" in text and "4,000 rows" in text
    assert "spans these ranges" in text and "a " in text
    assert "Saved without an input contract" in text
    assert "Pipeline `" in text and trained in text
    page = loopml.models.read_card(record.ref, "html")
    assert page.startswith("<!doctype html>") and "Plotly.newPlot" in page
    assert '"slices"' in page and "<script src=" not in page  # self-contained


def test_a_card_without_an_evaluation_says_so(workspace) -> None:
    frame = rows(np.random.default_rng(1))
    fitted = LogisticRegression().fit(frame[["a", "b"]], frame["late"])
    record = loopml.models.register("late", fitted, contract=frame[["a", "b"]])
    text = loopml.models.read_card(record.ref)
    assert "No evaluation was recorded" in text and "not given" in text
    assert "input contract" not in text


def test_cards_can_be_skipped_and_written_later(workspace) -> None:
    frame = rows(np.random.default_rng(2))
    fitted = LogisticRegression().fit(frame[["a", "b"]], frame["late"])
    record = loopml.models.register("late", fitted, card=False)
    with pytest.raises(ArtifactNotFoundError, match="has no model card yet"):
        loopml.models.read_card(record.ref)
    found = loopml.evaluate(fitted, frame, target="late", resamples=50)
    loopml.models.write_card(record.ref, owner="me", evaluation=found)
    assert "| roc_auc |" in loopml.models.read_card(record.ref)


def test_a_fully_cached_run_still_finds_its_evaluation(trained: str) -> None:
    rerun = Pipeline([table, model, prior, evaluation], params={"flights": "flights"}).run()
    assert rerun.cached == ["table", "model", "prior", "evaluation"]
    record = loopml.models.register("late", run=rerun.run_id)
    assert "| roc_auc |" in loopml.models.read_card(record.ref)


def demand_rows(n: int = 3000) -> pd.DataFrame:
    """A year of demand: x grows through the year; y follows it, noisier in the west."""
    rng = np.random.default_rng(5)
    day = pd.date_range("2024-01-01", periods=n, freq="3h", tz="UTC")
    x = np.linspace(0, 100, n) + rng.normal(0, 1, n)
    region = rng.choice(["east", "west"], n)
    y = 3 * x + rng.normal(0, 1, n) * np.where(region == "east", 2, 12)
    return pd.DataFrame(
        {"time": day, "x": x, "region": region, "y": y, "after": y + rng.normal(0, 20, n)}
    )


def demand_split(demand: Snapshot) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = demand.to_pandas()
    first = frame[frame["time"] < "2024-04-01"].reset_index(drop=True)  # three months
    return first, frame[frame["time"] >= "2024-04-01"].reset_index(drop=True)


def demand_model(demand_split):
    from sklearn.linear_model import LinearRegression

    train_rows, _ = demand_split
    return LinearRegression().fit(train_rows[["x", "after"]], train_rows["y"])


def demand_train_rows(demand_split):
    return demand_split[0]


def demand_evaluation(demand_model, demand_split) -> loopml.Evaluation:
    _, valid_rows = demand_split
    return loopml.evaluate(
        demand_model,
        valid_rows,
        target="y",
        slices=["region"],
        sensitive=["region"],
        resamples=100,
    )


def test_a_regression_card_reads_in_the_metrics_direction_and_its_training_rows(
    sqlite_workspace,
) -> None:
    loopml.data.add("demand", demand_rows(), time_column="time")
    pipeline = Pipeline(
        [demand_split, demand_model, demand_train_rows, demand_evaluation],
        params={"demand": "demand"},
    )
    run = pipeline.run(progress=False).run_id
    contract = {
        "columns": {
            "x": {"type": "float"},
            "after": {"type": "float", "available_at": "after_prediction"},
        }
    }
    record = loopml.models.register(
        "demand",
        run=run,
        artifact="demand_model",
        reference="demand_train_rows",
        target="y",
        contract=contract,
    )
    text = loopml.models.read_card(record.ref)
    assert "Weak slice region=west: rmse" in text and "worse than the overall" in text
    assert "lower is better" in text and "below the overall" not in text
    assert "| group | rows | MAE | mean prediction | mean target |" in text
    assert "mae differs across region" in text
    # the ranges of the three months it was trained on, not of the whole year's snapshot
    assert "The rows the model was trained on span these ranges" in text
    x_range = text.split("extrapolation: ")[1].split(",")[0]
    assert x_range.startswith("x ") and float(x_range.split(" to ")[1]) < 30
    assert "Trained on " in text and "rows of it" in text
    assert "after is only known after the moment of prediction" in text  # from the contract
    assert not re.search(r"(?<![\w-])-0(?![.\d])", text)  # no "-0" among the numbers
