"""Numbers as every message, card and report prints them: significant digits, '-' for a
missing value, and never "-0"."""

from __future__ import annotations

import math
import re
from typing import Any

NEGATIVE_ZERO = re.compile(r"^-(0(\.0*)?)(e[+-]?\d+)?$")


def number(value: Any, digits: int = 4) -> str:
    """A number in ``digits`` significant digits; '-' for missing, never '-0'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if not isinstance(value, int | float) or isinstance(value, bool):
        return str(value)
    text = f"{value:.{digits}g}"
    return text[1:] if NEGATIVE_ZERO.match(text) else text
