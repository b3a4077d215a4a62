"""Validation: every broken rule reported with its count, examples and rows; quarantine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import loopml
from loopml.data.contract import load_contract
from loopml.data.validate import REASON_COLUMN, Validator

CONTRACT = """\
columns:
  id: {type: integer, nullable: false, unique: true}
  price: {type: float, nullable: false, min: 0, max: 100}
  colour: {type: string, categories: [red, blue]}
  at: {type: timestamp, min: 2024-01-01, max: 2024-12-31T23:59:59}
  qty: {type: integer}
unique: [[colour, qty]]
rows: {min: 2, max: 6}
"""


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "price": [10.0, 20.0, 30.0, 40.0],
            "colour": ["red", "blue", "red", None],
            "at": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"]),
            "qty": [1, 1, 2, 3],
        }
    )


def violations(data: pd.DataFrame, contract: str = CONTRACT) -> dict[tuple, object]:
    report = loopml.data.validate(data, contract).report
    return {(v.column, v.rule): v for v in report.violations}


def test_clean_data_passes() -> None:
    result = loopml.data.validate(frame(), CONTRACT)
    assert result.passed and result.report.rows == 4
    assert result.report.summary() == "All 4 rows satisfy the contract."


def test_each_rule_reports_count_examples_and_rows() -> None:
    data = frame()
    data.loc[1, "price"] = -5.0
    data.loc[2, "price"] = 500.0
    data.loc[3, "price"] = np.nan
    data.loc[0, "colour"] = "green"
    data.loc[3, "id"] = 1
    data.loc[2, "at"] = pd.Timestamp("2025-06-01")
    found = violations(data)
    assert found[("price", "min")].count == 1 and found[("price", "min")].rows == [1]
    assert found[("price", "min")].examples == [-5.0]
    assert found[("price", "max")].rows == [2] and found[("price", "max")].examples == [500.0]
    assert found[("price", "not_null")].rows == [3]
    assert found[("colour", "categories")].examples == ["green"]
    assert found[("id", "unique")].rows == [3] and found[("id", "unique")].examples == [1]
    assert found[("at", "max")].rows == [2]
    assert "2024-12-31T23:59:59" in found[("at", "max")].message


def test_schema_and_row_count_rules() -> None:
    data = frame().drop(columns="qty").assign(extra=1, price=["a", "b", "c", "d"])
    found = violations(data)
    assert ("qty", "missing_column") in found
    assert ("extra", "unexpected_column") in found
    assert found[("price", "type")].examples == ["string"]
    too_many = pd.concat([frame()] * 2, ignore_index=True).assign(id=range(8), qty=range(8))
    assert violations(too_many)[(None, "rows_max")].count == 8
    assert violations(frame().head(1))[(None, "rows_min")].count == 1


def test_composite_keys_and_whole_numbers() -> None:
    data = frame()
    data.loc[3, ["colour", "qty"]] = ["red", 1]
    found = violations(data)
    assert found[("colour+qty", "unique")].rows == [3]
    assert found[("colour+qty", "unique")].examples == [{"colour": "red", "qty": 1}]
    floats = frame().assign(qty=[1.0, 2.5, np.nan, 4.0])
    assert violations(floats)[("qty", "type")].rows == [1]


def test_duplicates_are_found_across_batches() -> None:
    contract = load_contract("columns:\n  k: {type: integer, unique: true}\n")
    validator = Validator(contract)
    validator.check(pa.record_batch({"k": [1, 2, 3]}))
    validator.check(pa.record_batch({"k": [4, 2, 4]}))
    found = validator.finish().violations[0]
    assert (found.count, found.rows, found.examples) == (2, [4, 5], [2, 4])


def test_quarantine_splits_rows_and_gives_reasons() -> None:
    data = frame()
    data.loc[1, "price"] = -5.0
    data.loc[2, "colour"] = "green"
    result = loopml.data.validate(data, CONTRACT, mode="quarantine")
    assert result.report.quarantined == 2
    assert result.valid["id"].tolist() == [1, 4]
    assert result.quarantined["id"].tolist() == [2, 3]
    assert result.quarantined[REASON_COLUMN].tolist() == ["min price", "categories colour"]


def test_quarantine_files_stream_both_sides(tmp_path) -> None:
    data = frame()
    data.loc[0, "price"] = 1000.0
    report = loopml.data.api.quarantine_files(
        data, CONTRACT, tmp_path / "ok.parquet", tmp_path / "bad.parquet"
    )
    assert report.quarantined == 1
    assert len(pd.read_parquet(tmp_path / "ok.parquet")) == 3
    bad = pd.read_parquet(tmp_path / "bad.parquet")
    assert bad[REASON_COLUMN].tolist() == ["max price"]


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(loopml.LoopmlError, match="mode must be"):
        loopml.data.validate(frame(), CONTRACT, mode="strict")


# --- pushed outside its bounds, a value is always reported ---------------------------------


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50),
    where=st.integers(0, 49),
    above=st.booleans(),
    push=st.floats(1e-6, 1e9),
)
def test_a_value_outside_the_declared_range_is_always_reported(values, where, above, push):
    where %= len(values)
    low, high = min(values), max(values)
    contract = {"columns": {"x": {"type": "float", "min": low, "max": high}}}
    pushed = list(values)
    pushed[where] = high + push * max(1.0, abs(high)) if above else low - push * max(1.0, abs(low))
    found = {
        v.rule: v
        for v in loopml.data.validate(pd.DataFrame({"x": pushed}), contract).report.violations
    }
    rule = "max" if above else "min"
    assert found[rule].count == 1 and found[rule].rows == [where]


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=40),
    where=st.integers(0, 39),
    intruder=st.text(min_size=1, max_size=5).filter(lambda t: t not in {"a", "b", "c"}),
)
def test_a_value_outside_the_category_set_is_always_reported(values, where, intruder):
    where %= len(values)
    pushed = list(values)
    pushed[where] = intruder
    contract = {"columns": {"c": {"type": "string", "categories": ["a", "b", "c"]}}}
    for data in (
        pd.DataFrame({"c": pushed}),
        pa.table({"c": pa.array(pushed).dictionary_encode()}),
    ):
        found = {v.rule: v for v in loopml.data.validate(data, contract).report.violations}
        assert found["categories"].count == 1 and found["categories"].rows == [where]
        assert found["categories"].examples == [intruder]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.floats(-50, 150)), min_size=1, max_size=60),
    st.lists(st.sampled_from(["red", "blue", "green"]), min_size=60, max_size=60),
)
def test_the_one_pass_check_reports_what_validation_reports(prices, colours):
    data = pd.DataFrame(
        {"price": pd.array(prices, dtype="Float64").astype(float), "colour": colours[: len(prices)]}
    )
    contract = {
        "columns": {
            "price": {"type": "float", "nullable": False, "min": 0, "max": 100},
            "colour": {"type": "string", "categories": ["red", "blue"]},
        }
    }
    plain = loopml.data.validate(data, contract).report.to_dict()
    fused = loopml.data.check(data, contract).report.to_dict()
    assert fused == plain


# --- columns without a value, and keys that once collided ------------------------------------


@pytest.mark.parametrize("source", ["frame", "csv"])
def test_a_column_without_any_value_is_checked(source: str, tmp_path) -> None:
    data: object = pd.DataFrame({"a": [1, 2, 3], "b": [None, None, None]})
    if source == "csv":
        data = tmp_path / "empty_b.csv"
        data.write_text("a,b\n1,\n2,\n3,\n")
    required = {"columns": {"a": {"type": "integer"}, "b": {"type": "string", "nullable": False}}}
    for run in (loopml.data.validate, loopml.data.check):
        found = {(v.column, v.rule): v for v in run(data, required).report.violations}
        assert list(found) == [("b", "not_null")] and found[("b", "not_null")].count == 3
    bounded = {
        "columns": {"a": {"type": "integer"}, "b": {"type": "timestamp", "min": "2020-01-01"}}
    }
    for run in (loopml.data.validate, loopml.data.check):
        assert run(data, bounded).passed  # missing values break no bound


def test_keys_of_several_columns_do_not_collide() -> None:
    contract = {
        "columns": {"user": {"type": "integer"}, "item": {"type": "integer"}},
        "unique": [["user", "item"]],
    }
    data = pd.DataFrame({"user": [2097153, 2097152], "item": [2097152, 3097155]})
    assert loopml.data.validate(data, contract).passed
    rng = np.random.default_rng(5)
    pairs = pd.DataFrame(
        {"user": rng.integers(0, 2**40, 20_000), "item": rng.integers(0, 2**40, 20_000)}
    )
    pairs = pairs.drop_duplicates()
    assert loopml.data.validate(pairs, contract).passed
    repeated = pd.concat([pairs.head(3), pairs], ignore_index=True)
    [found] = loopml.data.validate(repeated, contract).report.violations
    assert (found.rule, found.count, found.rows) == ("unique", 3, [3, 4, 5])


def test_unique_large_integers_and_signed_zeros() -> None:
    ids = {"columns": {"id": {"type": "integer", "unique": True}}}
    assert loopml.data.validate(pd.DataFrame({"id": 2**60 + np.arange(1000)}), ids).passed
    zeros = {"columns": {"x": {"type": "float", "unique": True}}}
    [found] = loopml.data.validate(pd.DataFrame({"x": [0.0, -0.0]}), zeros).report.violations
    assert (found.rule, found.rows) == ("unique", [1])
