"""Pages from the UI's templates, with the filters they format numbers and times with."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from loopml.numbers import number


@functools.cache
def environment() -> Environment:
    """The Jinja2 environment of the UI's templates (made on first use)."""
    found = Environment(
        loader=PackageLoader("loopml.server.ui", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    found.filters["number"] = number
    found.filters["when"] = when
    found.filters["seconds"] = seconds
    found.filters["size"] = size
    found.globals["sort_toggle"] = sort_toggle
    return found


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A template as the answer to a request."""
    page = environment().get_template(template).render(request=request, **context)
    return HTMLResponse(page, status_code=status)


def when(moment: float | None) -> str:
    """A time as the UI shows it: 2026-12-07 23:14:05 UTC."""
    if moment is None:
        return "-"
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def seconds(value: float | None) -> str:
    """A duration: 0.42 s, 12.5 s, 3 min 20 s, 2 h 5 min."""
    if value is None:
        return "-"
    if value < 60:
        return f"{number(value, 3)} s"
    minutes, rest = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    return f"{minutes // 60} h {minutes % 60} min"


def size(value: int) -> str:
    """Bytes as B, kB, MB or GB."""
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{number(value, 3)} {unit}"
        value /= 1000
    return f"{number(value, 3)} GB"


def sort_toggle(current: str, field: str) -> str:
    """The --sort a click on a column asks for: descending first, then ascending."""
    return field if current == f"-{field}" else f"-{field}"
