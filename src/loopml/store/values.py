"""How param values are stored: display text, a type tag and a number when there is one."""

from __future__ import annotations

import json
import math
from pathlib import PurePath
from typing import Any, NamedTuple

from loopml.errors import InvalidValueError


class StoredValue(NamedTuple):
    """A param value as stored in the params table."""

    text: str
    type: str
    number: float | None


def encode_param(value: Any) -> StoredValue:
    """The stored form of a param value; unknown objects are stored as their str()."""
    stored = _encode(_plain(value))
    if "\x00" in stored.text:
        raise InvalidValueError(f"Param value {value!r} contains a NUL character; remove it.")
    return stored


def _encode(value: Any) -> StoredValue:
    if value is None:
        return StoredValue("null", "null", None)
    if isinstance(value, bool):
        return StoredValue("true" if value else "false", "bool", None)
    if isinstance(value, int):
        return StoredValue(str(value), "int", float(value) if abs(value) < 2**63 else None)
    if isinstance(value, float):
        number = value if math.isfinite(value) else None
        return StoredValue(repr(value), "float", number)
    if isinstance(value, str):
        return StoredValue(value, "str", None)
    if isinstance(value, list | tuple | dict):
        return StoredValue(json.dumps(value, sort_keys=True), "json", None)
    return StoredValue(str(value), "str", None)


def decode_param(text: str, type_: str) -> Any:
    """The Python value of a stored param."""
    if type_ == "str":
        return text
    if type_ == "int":
        return int(text)
    if type_ == "float":
        return float(text)
    return json.loads(text)  # null, bool and json are valid JSON


def _plain(value: Any) -> Any:
    """Plain Python values, recursively: NumPy scalars become numbers, dict keys strings,
    paths strings, and anything else inside a list or dict its str()."""
    if isinstance(value, PurePath):
        return str(value)
    item = getattr(value, "item", None)  # NumPy and pandas scalars
    if callable(item) and getattr(value, "ndim", None) == 0:
        return item()
    if isinstance(value, dict):
        return {str(key): _plain_item(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_item(v) for v in value]
    return value


def plain_value(value: Any) -> Any:
    """A plain Python value for anything a param may be (see _plain); other objects as
    their str(), as they are stored."""
    return _plain_item(value)


def _plain_item(value: Any) -> Any:
    value = _plain(value)
    if value is None or isinstance(value, bool | int | float | str | list | dict):
        return value
    return str(value)
