"""Profiles: right statistics per column kind, JSON round trips, and parts that merge into the
profile of the whole."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.data.profile import Profile
from loopml.errors import DataError


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 10_000
    values = rng.normal(10, 3, n)
    values[::100] = np.nan
    return pd.DataFrame(
        {
            "x": values,
            "k": rng.integers(0, 50, n),
            "city": rng.choice(["Paris", "Oslo", "Lima"], n, p=[0.5, 0.3, 0.2]),
            "flag": rng.random(n) < 0.25,
            "when": pd.date_range("2024-01-01", periods=n, freq="min", tz="UTC"),
        }
    )


def test_numeric_statistics(frame: pd.DataFrame) -> None:
    x = Profile().fit(frame)["x"]
    truth = frame["x"].dropna()
    assert (x.count, x.nulls, x.kind) == (len(truth), 100, "numeric")
    assert x.min == truth.min() and x.max == truth.max()
    assert x.mean == pytest.approx(truth.mean(), rel=1e-12)
    assert x.std == pytest.approx(truth.std(ddof=0), rel=1e-9)
    for q, value in x.quantiles([0.1, 0.5, 0.9]).items():
        expected = truth.quantile(q, interpolation="higher")
        assert abs(value - expected) <= 0.05 * abs(expected)  # sketch + rank tolerance


def test_integer_quantiles_are_whole_numbers(frame: pd.DataFrame) -> None:
    k = Profile().fit(frame)["k"]
    assert k.distinct == 50 and k.distinct_exact
    assert all(float(v).is_integer() for v in k.quantiles().values())


def test_categories_booleans_and_times(frame: pd.DataFrame) -> None:
    profile = Profile().fit(frame)
    city = profile["city"]
    assert dict(city.top(3)) == frame["city"].value_counts().to_dict()
    assert city.distinct == 3 and city.kind == "categorical"
    flag = profile["flag"]
    assert flag.kind == "boolean" and dict(flag.top(2))["true"] == int(frame["flag"].sum())
    when = profile["when"]
    assert when.kind == "datetime"
    assert when.min == frame["when"].min().timestamp()
    assert when.max == frame["when"].max().timestamp()


def test_describe_is_plain_json(frame: pd.DataFrame) -> None:
    import json

    described = Profile().fit(frame).describe()
    text = json.dumps(described)
    assert '"rows": 10000' in text
    assert {c["name"] for c in described["columns"]} == set(frame.columns)


def test_json_round_trip(frame: pd.DataFrame) -> None:
    profile = Profile().fit(frame)
    again = Profile.from_json(profile.to_json())
    assert again.to_dict() == profile.to_dict()
    assert again["x"].quantiles() == profile["x"].quantiles()


def test_a_column_appearing_mid_stream_is_refused() -> None:
    first = pa.record_batch({"a": [1, 2]})
    second = pa.record_batch({"a": [3], "b": [4]})
    profile = Profile().partial_fit(first)
    with pytest.raises(DataError, match="'b' appeared in the middle"):
        profile.partial_fit(second)


def test_merging_profiles_with_different_columns_counts_the_gaps_as_missing() -> None:
    a = Profile().fit(pd.DataFrame({"x": [1.0, 2.0]}))
    b = Profile().fit(pd.DataFrame({"x": [3.0], "y": ["u"]}))
    merged = a.merge(b)
    assert merged.rows_ == 3
    assert (merged["y"].count, merged["y"].nulls) == (1, 2)
    assert (merged["x"].count, merged["x"].max) == (3, 3.0)


# --- merging parts equals the whole -------------------------------------------------------

numbers = st.one_of(st.none(), st.floats(-1e9, 1e9, allow_nan=False))
labels = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d"]))


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(2, 60))
    x = draw(st.lists(numbers, min_size=n, max_size=n))
    k = draw(st.lists(st.integers(-1000, 1000), min_size=n, max_size=n))
    c = draw(st.lists(labels, min_size=n, max_size=n))
    t = draw(st.lists(st.integers(0, 10**9), min_size=n, max_size=n))
    return pd.DataFrame(
        {
            "x": pd.array(x, dtype="Float64").astype(float),
            "k": k,
            "c": pd.array(c, dtype=object),
            "t": pd.to_datetime(t, unit="s", utc=True),
        }
    )


@settings(max_examples=100, deadline=None)
@given(frames(), st.integers(1, 59))
def test_merging_profiles_of_parts_equals_the_profile_of_the_whole(
    frame: pd.DataFrame, cut: int
) -> None:
    cut = min(cut, len(frame) - 1)
    whole = Profile().fit(frame)
    merged = Profile().fit(frame.iloc[:cut]).merge(Profile().fit(frame.iloc[cut:]))
    assert merged.rows_ == whole.rows_
    for name in frame.columns:
        a, b = merged[name].to_dict(), whole[name].to_dict()
        for key in (
            "count",
            "nulls",
            "distinct",
            "histogram",
            "categories",
            "min",
            "max",
            "min_us",
            "max_us",
        ):
            assert a.get(key) == b.get(key), (name, key)
        if "mean" in a and whole[name].count:
            assert a["mean"] == pytest.approx(b["mean"], rel=1e-9, abs=1e-6)
            scale = max(b["m2"], 1.0)
            assert math.isclose(a["m2"], b["m2"], rel_tol=1e-6, abs_tol=1e-9 * scale)
    for name in ("x", "k"):
        if whole[name].count:
            assert merged[name].quantiles() == whole[name].quantiles()


# --- values that once broke the statistics ---------------------------------------------------


@pytest.mark.parametrize("values", [[0.0, -0.0, 1.0], [-0.0, 0.0, 1.0], [-0.0, -0.0, 2.0]])
def test_signed_zeros_are_one_value(values: list[float]) -> None:
    x = Profile().fit(pd.DataFrame({"x": values}))["x"]
    assert (x.count, x.distinct) == (3, 2)
    assert x.min == 0.0 and math.copysign(1.0, x.min) == 1.0
    assert x.quantiles([0.0, 1.0]) == {0.0: 0.0, 1.0: max(values)}


@pytest.mark.parametrize(
    "values",
    [
        1e9 + np.arange(1000) % 2,  # floats far from zero
        (1_700_000_000 + np.arange(100_000) % 2).astype(np.int64),  # few integers, bincounted
        (10**15 + np.arange(3_000) * 7).astype(np.int64),  # integers spread wide
    ],
)
def test_the_standard_deviation_of_values_far_from_zero(values: np.ndarray) -> None:
    exact = float(np.std(values - values[0]))  # shifted to zero first: no cancellation
    whole = Profile().fit(pd.DataFrame({"x": values}))
    assert whole["x"].std == pytest.approx(exact, rel=1e-9)
    half = len(values) // 2
    parts = [Profile().fit(pd.DataFrame({"x": part})) for part in (values[:half], values[half:])]
    assert parts[0].merge(parts[1])["x"].std == pytest.approx(exact, rel=1e-9)
    batches = pa.table({"x": values}).to_batches(max_chunksize=len(values) // 7 + 1)
    assert Profile().fit(batches)["x"].std == pytest.approx(exact, rel=1e-9)


@settings(max_examples=100, deadline=None)
@given(
    offset=st.floats(-1e12, 1e12),
    deviations=st.lists(st.floats(-100, 100), min_size=2, max_size=80),
    cut=st.integers(1, 79),
)
def test_the_standard_deviation_does_not_depend_on_the_offset(offset, deviations, cut) -> None:
    values = offset + np.array(deviations)
    cut = min(cut, len(values) - 1)
    batches = pa.table({"x": values}).to_batches(max_chunksize=cut)
    found = Profile().fit(batches)["x"].std
    # values equal up to rounding have a spread of a few ulps of the largest one, no more
    scale = max(1.0, float(np.max(np.abs(values))))
    assert found == pytest.approx(np.std(values), rel=1e-6, abs=1e-13 * scale)


def test_large_integers_are_counted_as_integers() -> None:
    spread = (2**60 + np.arange(3_000) * 3).astype(np.int64)  # one float64 for 256 of them
    assert Profile().fit(pd.DataFrame({"id": spread}))["id"].distinct == 3_000
    close = (2**60 + np.arange(6_000) % 1_000).astype(np.int64)  # a narrow span, bincounted
    assert Profile().fit(pd.DataFrame({"id": close}))["id"].distinct == 1_000
    mixed = Profile().fit(pd.DataFrame({"x": [1, 2, 3]}))
    mixed = mixed.merge(Profile().fit(pd.DataFrame({"x": [2.0, 3.0, 4.0]})))
    assert mixed["x"].distinct == 4  # 3 and 3.0 are one value


def test_pandas_categoricals_of_booleans_times_and_numbers() -> None:
    days = pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-01"])
    profile = Profile().fit(
        pd.DataFrame(
            {
                "flag": pd.Categorical([True, False, True]),
                "day": pd.Categorical(days),
                "size": pd.Categorical([1, 2, 2]),
            }
        )
    )
    assert profile["flag"].kind == "boolean"
    assert dict(profile["flag"].top(2)) == {"true": 2, "false": 1}
    assert profile["day"].kind == "datetime" and profile["day"].distinct == 2
    assert profile["day"].min == days.min().timestamp()
    assert (profile["size"].kind, profile["size"].mean) == ("numeric", pytest.approx(5 / 3))


def test_a_part_where_a_column_holds_only_nulls_merges_with_the_rest() -> None:
    labelled = pd.DataFrame({"c": pd.array(["a", "b", None], dtype=object)})
    empty = pd.DataFrame({"c": pd.array([None, None], dtype=object)})
    whole = Profile().fit(pd.concat([labelled, empty], ignore_index=True))
    for merged in (
        Profile().fit(labelled).merge(Profile().fit(empty)),
        Profile().fit(empty).merge(Profile().fit(labelled)),
    ):
        assert merged["c"].kind == "categorical"
        assert merged["c"].nulls == whole["c"].nulls == 3
        assert merged.rows_ == 5
