"""Numbers in words: in the metric's own direction, and never '-0'."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.evaluation.wording import better_or_worse, improvement, interval, number


@given(st.floats(min_value=-1e300, max_value=1e300))
def test_no_number_is_written_as_minus_zero(value: float) -> None:
    text = number(value)
    assert not text.startswith("-0") or float(text) != 0
    assert text == "-" or math.isclose(float(text), value, rel_tol=1e-3, abs_tol=1e-300)


@pytest.mark.parametrize("value", [-0.0, -1e-320, -0.00001])
def test_negative_zeros_read_as_zero(value: float) -> None:
    assert not number(value).startswith("-0")
    assert interval(-0.0, -0.0, 0.0) == "0 [0, 0]"


def test_improvement_follows_the_metrics_direction() -> None:
    # candidate − champion: MAE fell by 2 [1, 3], which is an improvement of 2 [1, 3]
    assert improvement("mae", -2.0, -3.0, -1.0) == (2.0, 1.0, 3.0)
    assert improvement("roc_auc", 0.02, 0.01, 0.03) == (0.02, 0.01, 0.03)
    assert better_or_worse("rmse", 87.0, 73.6) == "worse"
    assert better_or_worse("roc_auc", 0.7, 0.6) == "better"
