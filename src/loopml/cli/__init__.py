"""The loopml command line: thin commands over the Python API."""

from __future__ import annotations

from typing import Any

import typer


def command_group(help: str, **options: Any) -> typer.Typer:
    """A group of sub-commands, shown with `--help` when called bare. Help is click's plain
    text: Typer's Rich help costs half a second of imports on every `--help`."""
    options.setdefault("no_args_is_help", True)
    return typer.Typer(help=help, rich_markup_mode=None, add_completion=False, **options)
