"""Checks on what users log, made before anything is buffered or written.

Both metadata backends must accept whatever passes: keys of 1 to 255 characters, no NUL
characters in text (PostgreSQL cannot store them), and integers within 64 bits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from loopml.errors import InvalidMetricError, InvalidValueError, UsageError

MAX_KEY_LENGTH = 255
INT64 = (-(2**63), 2**63 - 1)
STEPS = (INT64[0], INT64[1] - 1)  # the next automatic step must fit too


def check_key(key: Any, what: str, error: type[InvalidValueError] = InvalidValueError) -> None:
    """A metric, param or tag key: a string of 1 to 255 characters without NUL."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or "\x00" in key:
        raise error(
            f"{what.capitalize()} keys must be strings of 1 to {MAX_KEY_LENGTH} characters "
            f"without NUL characters, not {key!r}."
        )


def check_keys(values: Mapping[str, Any], what: str) -> None:
    """Every key of a mapping of params or tags."""
    for key in values:
        check_key(key, what)


def check_tag_values(values: Mapping[str, Any]) -> None:
    """Tag values are stored as text: no NUL characters."""
    for key, value in values.items():
        if "\x00" in str(value):
            raise InvalidValueError(
                f"Tag {key!r} contains a NUL character, which cannot be stored."
            )


def check_name(value: str | None, what: str) -> None:
    """A run or experiment name: up to 255 characters without NUL."""
    if value is None:
        return
    if not isinstance(value, str) or len(value) > MAX_KEY_LENGTH or "\x00" in value:
        raise UsageError(
            f"The {what} must be a string of at most {MAX_KEY_LENGTH} characters without NUL "
            f"characters, not {value!r}."
        )


def as_int64(value: Any, what: str, bounds: tuple[int, int] = INT64) -> int:
    """An integer that fits in 64 bits (a seed)."""
    if isinstance(value, bool) or not _is_integral(value):
        raise UsageError(f"The {what} must be an integer, not {value!r}.")
    number = int(value)
    if not bounds[0] <= number <= bounds[1]:
        raise UsageError(f"The {what} must fit in 64 bits (|x| < 2**63), not {number}.")
    return number


def as_step(key: str, step: Any) -> int:
    """A metric step: an integer that fits in 64 bits."""
    try:
        return as_int64(step, f"step of metric {key!r}", STEPS)
    except UsageError as error:
        raise InvalidMetricError(str(error)) from None


def _is_integral(value: Any) -> bool:
    try:
        return int(value) == value
    except (TypeError, ValueError, OverflowError):
        return False


def metric_value(key: str, value: Any, run_id: str) -> float:
    """A metric value as a finite float."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidMetricError(
            f"Metric {key!r} of run {run_id} must be a finite real number, not {value!r}."
        ) from None
    if not math.isfinite(number):
        raise InvalidMetricError(
            f"Metric {key!r} of run {run_id} got {number}, which is not finite. Check the "
            "computation for a division by zero or an overflow; loopml stores finite values only."
        )
    return number


def metric_timestamp(key: str, timestamp: Any) -> float:
    """A metric timestamp: finite seconds since the epoch."""
    try:
        moment = float(timestamp)
    except (TypeError, ValueError, OverflowError):
        moment = math.nan
    if not math.isfinite(moment):
        raise InvalidMetricError(
            f"The timestamp of metric {key!r} must be seconds since the epoch, not {timestamp!r}."
        )
    return moment
