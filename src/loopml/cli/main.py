"""The `loopml` command: sub-commands, and one-sentence errors instead of tracebacks."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from loopml import __version__
from loopml.cli import render
from loopml.cli.data import data_app
from loopml.cli.loop import loop_app
from loopml.cli.models import models_app
from loopml.cli.monitoring import monitor
from loopml.cli.pipelines import run, sweep
from loopml.cli.report import report
from loopml.cli.runs import experiments_app, runs_app
from loopml.cli.serve import serve
from loopml.cli.serving import alerts, deploy, feedback_app, predict
from loopml.cli.workspace import config, init
from loopml.errors import LoopmlError

app = typer.Typer(
    name="loopml",
    help="Run machine learning in production as a loop: track, evaluate, serve, monitor.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("init")(init)
app.command("config")(config)
app.add_typer(runs_app, name="runs")
app.add_typer(experiments_app, name="experiments")
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
app.command("run")(run)
app.command("sweep")(sweep)
app.command("serve")(serve)
app.command("deploy")(deploy)
app.command("alerts")(alerts)
app.command("predict")(predict)
app.add_typer(feedback_app, name="feedback")
app.command("monitor")(monitor)
app.command("report")(report)
app.add_typer(loop_app, name="loop")


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
        render.print_error(str(error))
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        render.print_error("Interrupted.")
        sys.exit(130)


if __name__ == "__main__":
    main()
