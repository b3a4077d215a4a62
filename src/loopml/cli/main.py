"""The `loopml` command: sub-commands, and one-sentence errors instead of tracebacks.

Each sub-command's module is imported when that command runs (or when help lists it), and
the modules import the SDK, and through it pandas, SQLAlchemy and the rest, inside the
commands that use them: `loopml --help` loads only Typer, and lists the commands without
importing any of them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, MutableMapping
from importlib import import_module
from typing import Annotated, Any, NoReturn

import click
import typer
from typer.core import TyperGroup

from loopml import __version__
from loopml.errors import LoopmlError

COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("loopml.cli.workspace:init", "Create loopml.toml and the workspace."),
    "config": ("loopml.cli.workspace:config", "Show every setting and where it came from."),
    "run": ("loopml.cli.pipelines:run", "Run a pipeline as a tracked run."),
    "sweep": ("loopml.cli.pipelines:sweep", "Search a pipeline's parameters with Optuna."),
    "serve": ("loopml.cli.serve:serve", "Serve an endpoint over HTTP as its deployment says."),
    "deploy": ("loopml.cli.serving:deploy", "Show or change what serves an endpoint."),
    "alerts": ("loopml.cli.serving:alerts", "List an endpoint's alerts, firing first."),
    "predict": ("loopml.cli.serving:predict", "Score a file with a registered version, in batch."),
    "monitor": ("loopml.cli.monitoring:monitor", "Check a window of an endpoint's logged traffic."),
    "report": ("loopml.cli.report:report", "Write an endpoint's monitoring report as HTML."),
    "runs": ("loopml.cli.runs:runs_app", "Find, inspect and compare runs."),
    "experiments": ("loopml.cli.runs:experiments_app", "List experiments."),
    "data": ("loopml.cli.data:data_app", "Snapshots, profiles, contracts and audits of data."),
    "models": ("loopml.cli.models:models_app", "The model registry: versions, aliases, cards."),
    "feedback": ("loopml.cli.serving:feedback_app", "Ground truth for logged predictions."),
    "loop": ("loopml.cli.loop:loop_app", "Retrain and roll out by a policy."),
    "events": ("loopml.cli.events:events_app", "Seal, compact and inspect the event logs."),
    "server": ("loopml.cli.server:server_app", "Serve the workspace's API to a team; tokens."),
    "ui": ("loopml.cli.server:ui", "Open the web UI of this workspace in a browser."),
}
"""Every sub-command, in the order help lists them: 'module:attribute' of its Typer app (a
group of commands) or function (one command), and the summary help lists it with, so that
listing the commands imports none of them."""


def load_command(name: str) -> click.Command:
    """The click command of `loopml NAME`, made from its entry in COMMANDS."""
    target, summary = COMMANDS[name]
    module, attribute = target.split(":")
    found = getattr(import_module(module), attribute)
    holder = typer.Typer(add_completion=False, rich_markup_mode=None)
    if isinstance(found, typer.Typer):
        holder.add_typer(found, name=name)
        command = typer.main.get_command(holder).commands[name]  # type: ignore[attr-defined]
    else:
        holder.command(name)(found)
        command = typer.main.get_command(holder)
    command.short_help = summary
    return command


class LazyCommands(MutableMapping[str, click.Command]):
    """The root group's commands by name: every name of COMMANDS at once, each command
    imported on first use."""

    def __init__(self, loaded: MutableMapping[str, click.Command]) -> None:
        self._names = list(COMMANDS)
        self._loaded = dict(loaded)

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            if name not in self._names:
                raise KeyError(name)
            self._loaded[name] = load_command(name)
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        self._loaded.pop(name, None)
        self._names = [known for known in self._names if known != name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._names, *self._loaded]))

    def __len__(self) -> int:
        return len(set(self._names) | set(self._loaded))


class LazyGroup(TyperGroup):
    """The root group, whose sub-commands are the entries of COMMANDS, loaded when used."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(self.commands)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands' section of help, from COMMANDS' summaries: no command is imported."""
        rows = [(name, summary) for name, (_, summary) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    name="loopml",
    cls=LazyGroup,
    help="Run machine learning in production as a loop: track, evaluate, serve, monitor.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain help, as command_group's
    pretty_exceptions_enable=False,
)


def _version(show: bool) -> None:
    if show:
        typer.echo(f"loopml {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Run machine learning in production as a loop: track, evaluate, serve, monitor."""


def main() -> None:
    """Entry point of the `loopml` command."""
    try:
        app()
    except LoopmlError as error:
        _fail(str(error), error.exit_code)
    except KeyboardInterrupt:
        _fail("Interrupted.", 130)


def _fail(message: str, code: int) -> NoReturn:
    from loopml.cli import render

    render.print_error(message)
    sys.exit(code)


if __name__ == "__main__":
    main()
