"""HTML reports: one file with its styles and its data, and Plotly's script either inline
(self-contained: it opens from an e-mail attachment or an artifact store) or in one shared
``plotly.min.js`` beside the page, written from the installed plotly package. No CDN either way.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from loopml.errors import UsageError
from loopml.numbers import number

PLOTLY_FILE = "plotly.min.js"  # the shared script, beside the pages that use it

_environment: Environment | None = None


def environment() -> Environment:
    """The Jinja2 environment for loopml's report templates (made on first use)."""
    global _environment
    if _environment is None:
        _environment = Environment(
            loader=PackageLoader("loopml.reports", "templates"),
            autoescape=select_autoescape(["html", "j2"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        _environment.filters["number"] = _number
        _environment.filters["percent"] = lambda v: "-" if v is None else f"{v:.1%}"
    return _environment


def render(
    template: str, path: str | Path | None = None, *, self_contained: bool = True, **context: Any
) -> str:
    """Render a report template; figures are Plotly figures, keyed by name.

    self_contained: Plotly's script inside the page. Otherwise the page refers to
    plotly.min.js beside it, written there with the page (only when missing or different);
    a page that is not written to a path is always self-contained.
    """
    from plotly.offline import get_plotlyjs

    shared = not self_contained and path is not None
    figures = {
        name: json.loads(figure.to_json()) for name, figure in context.pop("figures", {}).items()
    }
    html = (
        environment()
        .get_template(template)
        .render(
            plotly_js=None if shared else get_plotlyjs(),
            plotly_src=PLOTLY_FILE if shared else None,
            figures_json=json.dumps(figures),
            figure_names=list(figures),
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            **context,
        )
    )
    if path is not None:
        path = Path(path)
        if shared:
            _write(path.parent / PLOTLY_FILE, get_plotlyjs(), only_if_changed=True)
        _write(path, html)
    return html


def _write(path: Path, text: str, only_if_changed: bool = False) -> None:
    """Write text to path atomically (a temporary file, then a rename), so a reader never
    sees half a file; with only_if_changed, a file that already holds text is left alone."""
    data = text.encode("utf-8")
    try:
        if only_if_changed and path.is_file() and path.read_bytes() == data:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        try:
            temporary.write_bytes(data)
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    except OSError as error:
        raise UsageError(
            f"Cannot write {path}: {error.strerror}. Choose another path for the report."
        ) from None


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return number(value, digits)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
