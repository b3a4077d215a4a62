"""Lists a page at a time, each page starting after the last row of the one before.

A list operation takes ``page_size`` and ``cursor`` and returns a ``Page``: its items, and the
cursor of the next page, None at the end. The cursor holds the sort key of the page's last
row, so a row added while a client pages is never served twice and no row is skipped (an
offset would shift under it). Rows are read with their sort key unique: the key ends with a
column that tells ties apart.

The SDK reads every page (``every``); an HTTP client asks for the pages it wants.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

import sqlalchemy as sa
from pydantic import Field

from loopml.errors import UsageError

T = TypeVar("T")
PAGE = 1000  # rows per page, unless asked otherwise
MAX_PAGE = 10_000
PageSize = Annotated[int, Field(ge=1, le=MAX_PAGE)]
Cursor = Annotated[str, Field(max_length=4096)]


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: its items, and the cursor of the next page (None at the end)."""

    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True)
class Sort:
    """One column of a list's order."""

    column: sa.ColumnElement[Any]
    descending: bool = False

    @property
    def clause(self) -> sa.ColumnElement[Any]:
        return self.column.desc() if self.descending else self.column.asc()


def ordered(
    query: sa.Select[Any], order: Sequence[Sort], cursor: str | None, size: int | None
) -> sa.Select[Any]:
    """The query in this order, from after the cursor's row, with one row more than a page
    (to tell whether another page follows); every row when size is None."""
    query = query.order_by(*(sort.clause for sort in order))
    if size is None:
        return query
    after = decode(cursor, [sort.column for sort in order])
    if after is not None:
        query = query.where(_after(order, after))
    return query.limit(size + 1)


def page(items: Sequence[T], size: int, key: Callable[[T], Sequence[Any]]) -> Page[T]:
    """The page of what ``ordered`` read: the first size items, and a cursor after the last
    of them (its sort key) when there were more."""
    following = encode({"after": list(key(items[size - 1]))}) if len(items) > size else None
    return Page(list(items[:size]), following)


def every(fetch: Callable[..., Page[T]], *args: Any, **kwargs: Any) -> Iterator[T]:
    """Every item of a list operation, page after page: ``every(list_models, store)``."""
    cursor = None
    while True:
        found = fetch(*args, **kwargs, page_size=MAX_PAGE, cursor=cursor)
        yield from found.items
        if found.next_cursor is None:
            return
        cursor = found.next_cursor


def encode(position: dict[str, Any]) -> str:
    """A cursor: where a list stands, opaque to the client."""
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


def decode_position(cursor: str, field: str) -> Any:
    """What a cursor of ``encode`` holds under field; a cursor that is not one is refused."""
    try:
        return json.loads(base64.urlsafe_b64decode(cursor.encode()))[field]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise _not_ours(cursor) from None


def decode(cursor: str | None, columns: Sequence[sa.ColumnElement[Any]]) -> list[Any] | None:
    """The sort key a cursor of ``page`` holds (None for the first page), each value of its
    column's type."""
    if not cursor:
        return None
    after = decode_position(cursor, "after")
    if not isinstance(after, list) or len(after) != len(columns):
        raise _not_ours(cursor)
    if not all(_fits(value, column) for value, column in zip(after, columns, strict=True)):
        raise _not_ours(cursor)
    return after


def _fits(value: Any, column: sa.ColumnElement[Any]) -> bool:
    kind = column.type.python_type
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)


def _after(order: Sequence[Sort], key: Sequence[Any]) -> sa.ColumnElement[bool]:
    """Rows that come after key in this order: (a, b) after (x, y) when a > x, or a = x and
    b > y (with < for a descending column)."""
    alternatives = []
    for i, sort in enumerate(order):
        equal = [order[j].column == key[j] for j in range(i)]
        beyond = sort.column < key[i] if sort.descending else sort.column > key[i]
        alternatives.append(sa.and_(*equal, beyond))
    return sa.or_(*alternatives)


def _not_ours(cursor: str) -> UsageError:
    return UsageError(
        f"{cursor[:80]!r} is not a cursor this server gave: start from the first page."
    )
