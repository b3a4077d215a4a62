"""Durations written as text: ``30s``, ``15m``, ``2h``, ``1d``, ``1w`` (or a number of seconds)."""

from __future__ import annotations

import math
import re

from loopml.errors import InvalidValueError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def seconds(value: str | float | int) -> float:
    """The number of seconds a duration stands for; a clear error for anything else."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        found = float(value)
    else:
        match = PATTERN.match(str(value))
        if match is None:
            raise InvalidValueError(
                f"{value!r} is not a duration. Write a number and a unit: 30s, 15m, 2h, 1d or 1w."
            )
        found = float(match.group(1)) * UNITS[match.group(2) or "s"]
    if not math.isfinite(found) or found <= 0:
        raise InvalidValueError(f"A duration is a finite time longer than zero, not {value!r}.")
    return found
