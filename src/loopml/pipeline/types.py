"""Type annotations as the pipeline checks them: when the graph is built, and on step results.

Checks are deliberately shallow: a class is checked with isinstance, a generic by its origin
(``list[int]`` is a list), a union by its members. What cannot be checked at run time
(``Any``, type variables, protocols that are not runtime-checkable, unresolved names) passes.
"""

from __future__ import annotations

import types
import typing
from typing import Any

UNCHECKED = object()  # a hint that says nothing checkable


def describe(hint: Any) -> str:
    """A short readable name for an annotation."""
    if hint is UNCHECKED:
        return "anything"
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__qualname__
    return str(hint).replace("typing.", "")


def runtime_classes(hint: Any) -> tuple[type, ...] | None:
    """The classes a value must be an instance of, or None when anything goes."""
    if hint is UNCHECKED or hint is Any or hint is object:
        return None
    if hint is None or hint is type(None):
        return (type(None),)
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        members = [runtime_classes(member) for member in typing.get_args(hint)]
        if any(member is None for member in members):
            return None
        return tuple(cls for member in members for cls in member or ())
    if origin is typing.Annotated:
        return runtime_classes(typing.get_args(hint)[0])
    if origin is typing.Literal:
        return tuple({type(value) for value in typing.get_args(hint)})
    if isinstance(origin, type):
        return (origin,)
    if isinstance(hint, type) and _checkable(hint):
        return (hint,)
    return None


def _checkable(cls: type) -> bool:
    if getattr(cls, "_is_protocol", False):
        return getattr(cls, "_is_runtime_protocol", False)
    return True


def conforms(value: Any, hint: Any) -> bool:
    """Whether a value matches an annotation, as far as can be told at run time."""
    classes = runtime_classes(hint)
    if classes is None:
        return True
    if float in classes and isinstance(value, int) and not isinstance(value, bool):
        return True  # PEP 484: an int is acceptable where a float is expected
    return isinstance(value, classes)


def compatible(produced: Any, accepted: Any) -> bool:
    """Whether every value of the produced type is acceptable where ``accepted`` is declared."""
    wanted = runtime_classes(accepted)
    given = runtime_classes(produced)
    if wanted is None or given is None:
        return True
    return all(_accepts(wanted, cls) for cls in given)


def _accepts(wanted: tuple[type, ...], cls: type) -> bool:
    if float in wanted and cls is int:
        return True
    try:
        return any(issubclass(cls, target) for target in wanted)
    except TypeError:  # classes that refuse issubclass checks
        return True


def tuple_members(hint: Any, count: int) -> tuple[Any, ...] | None:
    """The member types of ``tuple[A, B, ...]`` with ``count`` members, else None."""
    if typing.get_origin(hint) is not tuple:
        return None
    members = typing.get_args(hint)
    if len(members) != count or Ellipsis in members:
        return None
    return members
