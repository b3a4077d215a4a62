"""Turning records into terminal text and JSON: times, durations, values, status colours."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

STATUS_STYLES = {
    "running": "cyan",
    "finished": "green",
    "failed": "bold red",
    "killed": "yellow",
    "ok": "green",
    "skipped": "yellow",
    "empty": "yellow",
}


def console() -> Console:
    """A console on stdout that keeps wide tables intact when piped.

    Markup is off: names, params and tags are printed as they are, never read as styles.
    """
    width = None if sys.stdout.isatty() else 200
    return Console(soft_wrap=False, width=width, markup=False, highlight=False)


def print_error(message: str) -> None:
    """An error on stderr, on one line."""
    Console(stderr=True, soft_wrap=True, markup=False, highlight=False).print(
        Text.assemble(("Error: ", "bold red"), message)
    )


def print_json(value: Any) -> None:
    """Print a JSON document on stdout, unstyled so scripts can parse it."""
    text = json.dumps(_finite(value), indent=2, default=_json_default, allow_nan=False)
    sys.stdout.write(text + "\n")


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as the strings "nan", "inf", "-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


@contextmanager
def progress(label: str) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr for data streamed inside the block (rows, and the total when
    it is known); it disappears when the block ends. Yields a function that marks it done."""
    from loopml.data.io import reporting_progress

    with row_progress(label) as advance, reporting_progress(advance):
        yield lambda: advance(0, None, hide=True)


@contextmanager
def row_progress(label: str) -> Iterator[Callable[..., None]]:
    """A progress bar of rows on stderr (terminals only); yields advance(rows, total)."""
    errors = Console(stderr=True)
    if not errors.is_terminal:  # logs and pipes get no bar, and no stray blank line
        yield lambda rows, total, hide=False: None
        return
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
    )
    task = bar.add_task(label, total=None)

    def advance(rows: int, total: int | None, hide: bool = False) -> None:
        if hide:
            bar.update(task, visible=False)
        else:
            bar.update(task, completed=rows, total=total)

    with bar:
        yield advance


def when(timestamp: float | None) -> str:
    """Local date and time to the second, or '-'."""
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def iso(timestamp: float | None) -> str | None:
    """ISO 8601 local time with offset, for JSON output."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="milliseconds")


def duration(seconds: float | None) -> str:
    """A short human duration: 850ms, 12.3s, 4m05s, 2h03m."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def value(item: Any) -> str:
    """A param, metric or tag value in a table cell."""
    if item is None:
        return "-"
    if isinstance(item, float):
        if math.isfinite(item) and item != 0 and (abs(item) >= 1e6 or abs(item) < 1e-4):
            return f"{item:.4g}"
        return f"{item:.6g}"
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, list | dict):
        return json.dumps(item)
    return str(item)


def param(item: Any) -> str:
    """A param value as it was logged (floats keep every digit)."""
    return repr(item) if isinstance(item, float) else value(item)


def status(text: str) -> Text:
    """A status in its colour."""
    return Text(text, style=STATUS_STYLES.get(text, ""))


def size(count: int) -> str:
    """Bytes as B, KiB, MiB or GiB."""
    amount = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"


def run_json(record: Any) -> dict[str, Any]:
    """A run record for --json output, with ISO times."""
    data = record.to_dict()
    data["start_time"] = iso(record.start_time)
    data["end_time"] = iso(record.end_time)
    return data
