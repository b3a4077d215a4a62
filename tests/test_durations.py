"""Durations written as text (30s, 15m, 2h, 1d, 1w) or as seconds, and what is refused."""

from __future__ import annotations

import pytest

from loopml.durations import seconds
from loopml.errors import InvalidValueError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", 30.0),
        ("15m", 900.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1w", 604800.0),
        ("1.5h", 5400.0),
        (" 10 m ", 600.0),
        ("90", 90.0),
        (45, 45.0),
        (0.25, 0.25),
    ],
)
def test_durations_are_read_in_seconds(text: str | float, expected: float) -> None:
    assert seconds(text) == expected


@pytest.mark.parametrize("text", ["", "m", "3 weeks", "1y", "1h30m", "-5m", "1e3s", "1,5h", True])
def test_text_that_is_not_a_duration_says_how_to_write_one(text: object) -> None:
    with pytest.raises(InvalidValueError, match="is not a duration. Write a number and a unit"):
        seconds(text)


@pytest.mark.parametrize("value", ["0s", "0", 0, -1.0])
def test_a_duration_is_longer_than_zero(value: object) -> None:
    with pytest.raises(InvalidValueError, match="longer than zero"):
        seconds(value)
