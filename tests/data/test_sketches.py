"""The sketches behind profiles: accuracy within their stated error, and exact merges."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from loopml.data.sketches import (
    RELATIVE_ACCURACY,
    CategoryCounts,
    DistinctSketch,
    LogHistogram,
    TimeHistogram,
    float_bits,
    hash_bits,
    hash_objects,
)

finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)


def histogram_of(values: np.ndarray) -> LogHistogram:
    made = LogHistogram()
    made.update_bits(float_bits(values))
    return made


@settings(max_examples=200, deadline=None)
@given(
    arrays(np.float64, st.integers(1, 300), elements=finite),
    st.lists(st.floats(0, 1), min_size=1, max_size=5),
)
def test_quantiles_are_within_the_relative_accuracy(values: np.ndarray, qs: list[float]) -> None:
    histogram = histogram_of(values)
    found = histogram.quantiles(np.array(qs), values.min(), values.max())
    ordered = np.sort(values)
    for q, estimate in zip(qs, found, strict=True):
        rank = min(max(int(np.ceil(q * len(values))), 1), len(values)) - 1
        truth = ordered[rank]
        assert abs(estimate - truth) <= RELATIVE_ACCURACY * abs(truth) + 1e-300


@given(
    arrays(np.float64, st.integers(0, 200), elements=finite),
    arrays(np.float64, st.integers(0, 200), elements=finite),
)
def test_merging_histograms_equals_the_histogram_of_the_whole(a: np.ndarray, b: np.ndarray):
    merged = histogram_of(a)
    merged.merge(histogram_of(b))
    whole = histogram_of(np.concatenate([a, b]))
    assert merged.keys.tolist() == whole.keys.tolist()
    assert merged.counts.tolist() == whole.counts.tolist()


def test_small_integers_have_a_bucket_each() -> None:
    values = np.repeat(np.arange(0, 64, dtype=float), 3)
    _keys_values, counts = histogram_of(values).representatives()
    assert len(counts) == 64 and set(counts.tolist()) == {3}


def sketch_of(hashes: np.ndarray, k: int = 4096) -> DistinctSketch:
    sketch = DistinctSketch(k)
    sketch.update(hashes)
    return sketch


def test_distinct_counts_are_exact_below_k() -> None:
    values = np.repeat(np.arange(3000, dtype=float), 7)
    sketch = sketch_of(hash_bits(float_bits(values)))
    assert sketch.exact and sketch.estimate() == 3000


@pytest.mark.parametrize("seed", range(8))
def test_distinct_estimates_are_within_about_three_standard_errors(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for values in (
        rng.normal(size=200_000),
        rng.integers(0, 10**9, 200_000).astype(float),
        np.arange(200_000, dtype=float),
    ):
        truth = len(np.unique(values))
        estimate = sketch_of(hash_bits(float_bits(values))).estimate()
        assert abs(estimate - truth) / truth < 3 / np.sqrt(4096 - 2)


def test_strings_hash_the_same_in_every_process() -> None:
    first = hash_objects(np.array(["a", "b", "c"], dtype=object))
    assert first.tolist() == hash_objects(np.array(["a", "b", "c"], dtype=object)).tolist()
    assert len(set(first.tolist())) == 3


@given(st.lists(st.integers(0, 10**6), max_size=500), st.lists(st.integers(0, 10**6), max_size=500))
def test_merging_distinct_sketches_equals_the_sketch_of_the_whole(a: list[int], b: list[int]):
    k = 64
    to_hashes = lambda xs: hash_bits(float_bits(np.array(xs, dtype=float)))  # noqa: E731
    merged = sketch_of(to_hashes(a), k)
    merged.merge(sketch_of(to_hashes(b), k))
    assert merged.hashes.tolist() == sketch_of(to_hashes(a + b), k).hashes.tolist()


def counts_of(values: list[str], capacity: int) -> CategoryCounts:
    made = CategoryCounts(capacity)
    made.update(pd.Series(values).value_counts())
    return made


@given(
    st.lists(st.sampled_from("abcdefghij"), max_size=300),
    st.lists(st.sampled_from("abcdefghij"), max_size=300),
)
def test_category_counts_are_exact_within_capacity_and_merge(a: list[str], b: list[str]):
    merged = counts_of(a, 100)
    merged.merge(counts_of(b, 100))
    truth = pd.Series(a + b).value_counts()
    assert merged.exact
    assert dict(merged.top(20)) == {k: int(v) for k, v in truth.items()}


@given(st.lists(st.integers(0, 40), min_size=1, max_size=400))
def test_pruned_counts_undercount_by_at_most_the_reported_error(values: list[int]):
    labels = [f"v{v}" for v in values]
    counts = counts_of(labels, 5)
    truth = pd.Series(labels).value_counts()
    for value, count in counts.top(100):
        assert truth[value] - counts.error <= count <= truth[value]
    for value, true_count in truth.items():
        if true_count > counts.error:
            assert value in dict(counts.top(100))


def test_time_histograms_count_hours_and_merge() -> None:
    hours = np.array([0, 3599, 3600, 7200, 7201, 10**9], dtype=np.int64)
    whole, a, b = TimeHistogram(), TimeHistogram(), TimeHistogram()
    whole.update_seconds(hours)
    a.update_seconds(hours[:3])
    b.update_seconds(hours[3:])
    a.merge(b)
    assert a.keys.tolist() == whole.keys.tolist() == [0, 1, 2, 10**9 // 3600]
    assert a.counts.tolist() == whole.counts.tolist() == [2, 1, 2, 1]
