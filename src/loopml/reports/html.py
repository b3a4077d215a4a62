"""Self-contained HTML reports: one file with its styles, its data and Plotly's script inline,
so it opens offline, from an e-mail attachment or an artifact store, without any CDN."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from loopml.errors import UsageError

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


def render(template: str, path: str | Path | None = None, **context: Any) -> str:
    """Render a report template; figures are Plotly figures, keyed by name."""
    from plotly.offline import get_plotlyjs

    figures = {
        name: json.loads(figure.to_json()) for name, figure in context.pop("figures", {}).items()
    }
    html = (
        environment()
        .get_template(template)
        .render(
            plotly_js=get_plotlyjs(),
            figures_json=json.dumps(figures),
            figure_names=list(figures),
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            **context,
        )
    )
    if path is not None:
        _write(Path(path), html)
    return html


def _write(path: Path, html: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
    except OSError as error:
        raise UsageError(
            f"Cannot write the report to {path}: {error.strerror}. Choose another path."
        ) from None


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        from loopml.evaluation.wording import number

        return number(value, digits)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
