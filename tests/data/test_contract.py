"""Contracts: YAML in and out, clear errors that say where, a JSON Schema, and inference that
the data itself always satisfies."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import loopml
from loopml.data.contract import Contract, InferredBounds, json_schema, load_contract
from loopml.errors import ContractError, InvalidValueError

GOOD = """\
version: 1
columns:
  carrier: {type: string, nullable: false, categories: [AA, B6]}
  dep_delay: {type: float, min: -60, max: 1500}
  time_hour: {type: timestamp, role: time, min: 2013-01-01}
  arr_delay: {type: float, available_at: after_prediction}
unique: [[carrier, time_hour]]
rows: {min: 10}
"""


def test_a_contract_round_trips_through_yaml() -> None:
    contract = load_contract(GOOD)
    assert contract.columns["carrier"].categories == ["AA", "B6"]
    assert contract.columns["time_hour"].min.year == 2013
    again = load_contract(contract.to_yaml())
    assert again == contract
    assert contract.columns_with(available_at="after_prediction") == ["arr_delay"]


def test_files_load_and_save(tmp_path: Path) -> None:
    path = load_contract(GOOD).save(tmp_path / "c.yaml")
    assert load_contract(path) == load_contract(GOOD)
    assert load_contract(str(path)) == load_contract(GOOD)


def test_the_json_schema_accepts_valid_contracts_and_rejects_invalid_ones() -> None:
    schema = json_schema()
    jsonschema.validate(yaml.safe_load(load_contract(GOOD).to_yaml()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"columns": {"a": {"type": "complex"}}}, schema)


def test_the_published_json_schema_is_current() -> None:
    published = Path(__file__).parents[2] / "docs" / "contract.schema.json"
    import json

    assert json.loads(published.read_text()) == json_schema()


INVALID = [
    ("columns:\n  a: {type: float, colour: red}\n", "columns.a.colour (line 2)", "Extra inputs"),
    ("columns:\n  a:\n    type: float\n    min: low\n", "columns.a (line 3)", "must be a number"),
    ("columns:\n  a: {type: integer, min: 5, max: 1}\n", "columns.a (line 2)", "greater than max"),
    ("columns:\n  a: {type: string, min: 1}\n", "columns.a", "use categories"),
    ("columns:\n  a: {type: decimal}\n", "columns.a.type (line 2)", "'integer'"),
    ("columns: {}\n", "columns (line 1)", "at least one column"),
    ("columns:\n  a: {type: float}\nunique: [[a, b]]\n", "(top level)", "lacks: ['b']"),
    ("columns:\n  a: {type: timestamp, min: yesterday}\n", "columns.a", "ISO date"),
    ("columns: [\n", "line", "not valid YAML"),
    ("- a\n- b\n", "", "YAML mapping"),
]


@pytest.mark.parametrize(("text", "where", "problem"), INVALID)
def test_invalid_contracts_say_where(text: str, where: str, problem: str) -> None:
    with pytest.raises(ContractError) as caught:
        load_contract(text)
    message = str(caught.value)
    assert where in message and problem in message


def test_a_missing_contract_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="No contract file at .*loopml data contract infer"):
        load_contract(tmp_path / "missing.yaml")


def test_inference_captures_types_ranges_categories_and_keys() -> None:
    frame = pd.DataFrame(
        {
            "id": np.arange(100),
            "price": np.linspace(1.5, 9.5, 100),
            "colour": ["red", "blue"] * 50,
            "note": [None] * 50 + ["x"] * 50,
            "at": pd.date_range("2020-01-01", periods=100, freq="D"),
            "ok": [True, False] * 50,
        }
    )
    contract = loopml.data.contract_for(frame)
    rules = contract.columns
    assert rules["id"].type == "integer" and rules["id"].unique and not rules["id"].nullable
    assert (rules["price"].min, rules["price"].max) == (1.5, 9.5)
    assert rules["colour"].categories == ["blue", "red"]
    assert rules["note"].nullable and rules["note"].categories == ["x"]
    assert rules["at"].type == "timestamp" and rules["at"].min.isoformat().startswith("2020-01-01")
    assert rules["ok"].type == "boolean"
    assert contract.rows is not None and contract.rows.min == 1


def test_inference_leaves_out_infinite_bounds() -> None:
    frame = pd.DataFrame(
        {
            "x": [1.0, np.inf, 2.0],
            "y": [-np.inf, 0.5, np.nan],
            "flag": pd.Categorical([True, False, True]),
        }
    )
    rules = loopml.data.contract_for(frame).columns
    assert (rules["x"].min, rules["x"].max) == (1.0, None)
    assert (rules["y"].min, rules["y"].max) == (None, 0.5)
    assert rules["flag"].type == "boolean"
    assert loopml.data.validate(frame, loopml.data.contract_for(frame).to_yaml()).passed


# --- inference with margins: widened and quantile bounds ----------------------------------


def season(start: str, rows: int = 90) -> pd.DataFrame:
    """Daily sales: a whole-number count and a price that both drift upward over time."""
    days = pd.date_range(start, periods=rows, freq="D")
    trend = np.arange(rows)
    return pd.DataFrame({"day": days, "sold": 10 + trend, "price": 2.0 + trend / 10})


def test_widened_bounds_accept_the_next_season_that_observed_ones_refuse() -> None:
    first, next_season = (
        season("2024-01-01"),
        season("2024-01-01").assign(sold=lambda f: f.sold + 5),
    )
    observed = loopml.data.contract_for(first).columns
    assert (observed["sold"].min, observed["sold"].max) == (10, 99)
    assert not loopml.data.validate(next_season, loopml.data.contract_for(first)).passed

    for widen in ("10%", 0.1, "0.1", " 10 %"):
        contract = loopml.data.contract_for(first, widen=widen)
        rules = contract.columns
        # range 89: 8.9 on each side, rounded outward to whole numbers
        assert (rules["sold"].min, rules["sold"].max) == (1, 108)
        assert isinstance(rules["sold"].min, int) and isinstance(rules["sold"].max, int)
        assert rules["price"].min == pytest.approx(2.0 - 0.89)
        assert rules["price"].max == pytest.approx(10.9 + 0.89)
        assert rules["day"].min == observed["day"].min  # times stay as observed
        assert rules["day"].max == observed["day"].max
        assert loopml.data.validate(next_season, contract).passed


def test_quantile_bounds_leave_out_the_extremes_and_can_be_widened() -> None:
    rng = np.random.default_rng(3)
    values = rng.integers(0, 1000, 10_000)
    values[:5] = [-(10**6), -(10**6), 10**6, 10**6, 10**6]  # a few wild values
    frame = pd.DataFrame({"n": values, "x": values * 0.5})
    rules = loopml.data.contract_for(frame, quantiles=0.001).columns
    assert 0 <= rules["n"].min <= 5 and 994 <= rules["n"].max <= 1000
    assert isinstance(rules["n"].min, int) and isinstance(rules["n"].max, int)
    assert 0 <= rules["x"].min <= 3 and 497 <= rules["x"].max <= 500
    assert loopml.data.contract_for(frame, quantiles="0.1%").columns == rules

    widened = loopml.data.contract_for(frame, quantiles=0.001, widen="50%").columns
    span = rules["n"].max - rules["n"].min
    assert widened["n"].min == pytest.approx(rules["n"].min - span / 2, abs=1)
    assert widened["n"].max == pytest.approx(rules["n"].max + span / 2, abs=1)
    assert widened["n"].min <= rules["n"].min - span / 2  # outward, never inward
    assert widened["n"].max >= rules["n"].max + span / 2


def test_a_widened_contract_of_a_constant_or_infinite_column() -> None:
    frame = pd.DataFrame({"same": [4, 4, 4], "x": [1.0, np.inf, 2.0]})
    rules = loopml.data.contract_for(frame, widen="10%").columns
    assert (rules["same"].min, rules["same"].max) == (4, 4)  # no range, no margin
    assert (rules["x"].min, rules["x"].max) == (None, None)  # an infinite range: no bound


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"widen": "-5%"}, "widen must be 0 or more .* not '-5%'"),
        ({"widen": -0.05}, "widen must be 0 or more"),
        ({"widen": "abc"}, "widen takes a fraction such as 0.1 or a percentage such as 10%"),
        ({"widen": "nan"}, "widen takes a fraction"),
        ({"widen": True}, "widen takes a fraction"),
        ({"widen": "10"}, "widen '10' is more than 1, the whole range: write 10%"),
        ({"quantiles": 0}, "quantiles must lie strictly between 0 and 0.5"),
        ({"quantiles": 0.5}, "strictly between 0 and 0.5 .* not 0.5"),
        ({"quantiles": "60%"}, "strictly between 0 and 0.5"),
        ({"quantiles": "low"}, "quantiles takes a fraction such as 0.001"),
    ],
)
def test_bad_margins_are_refused_before_the_data_is_read(settings: dict, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        loopml.data.contract_for("no-such-file.csv", **settings)


def test_the_contract_says_how_its_bounds_were_made(tmp_path: Path) -> None:
    assert InferredBounds.of().describe() == (
        "Bounds are the observed min and max, with no margin."
    )
    both = InferredBounds.of("10%", 0.001).describe()
    assert "0.1% and 99.9% quantiles" in both and "widened by 10% of their range" in both
    assert (
        InferredBounds.of(0.25)
        .describe()
        .startswith("Numeric bounds are the observed min and max, widened by 25%")
    )

    contract = loopml.data.contract_for(season("2024-01-01"), widen="10%")
    text = contract.to_yaml(comment=InferredBounds.of("10%").describe())
    assert text.startswith("# Numeric bounds are the observed min and max, widened by 10%")
    assert all(len(line) <= 100 for line in text.splitlines())
    assert load_contract(text) == contract
    path = contract.save(tmp_path / "c.yaml", comment="made by hand\nand checked")
    assert path.read_text().startswith("# made by hand\n# and checked\nversion: 1\n")
    assert load_contract(path) == contract


# --- any DataFrame satisfies the contract inferred from it ---------------------------------

column_values = st.one_of(
    st.lists(st.one_of(st.none(), st.integers(-(10**12), 10**12)), min_size=1, max_size=40),
    st.lists(st.one_of(st.none(), st.floats(-1e300, 1e300)), min_size=1, max_size=40),
    st.lists(st.one_of(st.none(), st.text(max_size=8)), min_size=1, max_size=40),
    st.lists(st.one_of(st.none(), st.booleans()), min_size=1, max_size=40),
    st.lists(st.one_of(st.none(), st.datetimes()), min_size=1, max_size=40),
)


@st.composite
def any_frame(draw: st.DrawFn) -> pd.DataFrame:
    columns = draw(st.lists(column_values, min_size=1, max_size=5))
    n = min(len(c) for c in columns)
    data = {
        f"c{i}": pd.Series(values[:n], dtype=object).infer_objects()
        for i, values in enumerate(columns)
    }
    frame = pd.DataFrame(data)
    for name in frame.columns:  # pandas-style missing values in mixed object columns
        if frame[name].dtype == object and frame[name].map(type).nunique() > 2:
            frame[name] = frame[name].astype(str)
    return frame


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_frame())
@example(pd.DataFrame({"c0": [None, "\x85", "a\u2028b"]}))  # YAML line breaks inside text
def test_any_dataframe_validates_against_the_contract_inferred_from_it(frame: pd.DataFrame):
    contract = loopml.data.contract_for(frame)
    result = loopml.data.validate(frame, load_contract(contract.to_yaml()))
    assert result.passed, result.report.summary()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_frame(), st.sampled_from(["10%", 0.5, "300%"]))
def test_any_dataframe_validates_against_its_widened_contract(frame: pd.DataFrame, widen) -> None:
    contract = loopml.data.contract_for(frame, widen=widen)
    result = loopml.data.validate(frame, load_contract(contract.to_yaml()))
    assert result.passed, result.report.summary()


def test_contracts_are_plain_pydantic_models() -> None:
    assert Contract.model_validate({"columns": {"a": {"type": "float"}}}).extra_columns == "forbid"
