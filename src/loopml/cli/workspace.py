"""`loopml init` and `loopml config`: create a workspace and show its settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from loopml.cli import render

CONFIG_FILENAME = "loopml.toml"  # loopml.settings.CONFIG_FILENAME, which needs pydantic to import

TEMPLATE = """\
# loopml settings for this project. LOOPML_* environment variables override them.
# Every setting is described in docs/configuration.md; relative paths are relative to this file.
home = ".loopml"
{metadata}
{artifacts}
"""


def init(
    directory: Annotated[
        Path, typer.Argument(help="Project folder to set up (default: the current one).")
    ] = Path("."),
    metadata_url: Annotated[
        str | None,
        typer.Option(help="Metadata store URL, e.g. postgresql+psycopg://user@host/db."),
    ] = None,
    artifacts_url: Annotated[
        str | None, typer.Option(help="Artifact store URL or path, e.g. s3://bucket/prefix.")
    ] = None,
    force: Annotated[bool, typer.Option(help=f"Overwrite an existing {CONFIG_FILENAME}.")] = False,
) -> None:
    """Create loopml.toml and the workspace (by default SQLite + a folder in ./.loopml/)."""
    from loopml.workspace import open_workspace

    directory.mkdir(parents=True, exist_ok=True)
    config = directory / CONFIG_FILENAME
    out = render.console()
    if config.exists() and not force:
        out.print(f"{config} exists; keeping it (use --force to replace it).")
    else:
        config.write_text(_config_text(metadata_url, artifacts_url), encoding="utf-8")
        out.print(f"Wrote {config}")
    workspace = open_workspace(directory)
    _ignore_local_state(workspace.home)
    out.print(f"Workspace ready: metadata {workspace.metadata.url}")
    out.print(f"                 artifacts {workspace.artifacts.url}")


def _config_text(metadata_url: str | None, artifacts_url: str | None) -> str:
    metadata = (
        f"metadata_url = {json.dumps(metadata_url)}"
        if metadata_url
        else '# metadata_url = "postgresql+psycopg://user@127.0.0.1:5432/loopml"  '
        "# default: SQLite in home"
    )
    artifacts = (
        f"artifacts_url = {json.dumps(artifacts_url)}"
        if artifacts_url
        else '# artifacts_url = "s3://bucket/loopml"  # default: <home>/artifacts'
    )
    return TEMPLATE.format(metadata=metadata, artifacts=artifacts)


def _ignore_local_state(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    ignore = home / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# loopml's local state; not for version control\n*\n", encoding="utf-8")


def config(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show every setting, its value and where it came from (env, file or default)."""
    from loopml.settings import Settings, env_name, hide_password, load_settings

    settings = load_settings()
    rows = [
        {
            "setting": name,
            "value": hide_password(str(getattr(settings, name))),
            "source": settings.source_of(name),
            "env": env_name(name),
        }
        for name in Settings.model_fields
    ]
    if as_json:
        file = str(settings.config_file) if settings.config_file else None
        render.print_json({"config_file": file, "settings": rows})
        return
    out = render.console()
    out.print(f"config file: {settings.config_file or f'none (no {CONFIG_FILENAME} found)'}")
    table = Table(box=None, header_style="bold")
    for header in ("setting", "value", "source", "environment variable"):
        table.add_column(header)
    for row in rows:
        table.add_row(row["setting"], row["value"], row["source"], row["env"])
    out.print(table)
