"""`loopml report`: an endpoint's monitoring as one HTML page that opens offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loopml.cli.monitoring import moment


def report(
    name: Annotated[str, typer.Argument(help="The endpoint (registered model).")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write the page (default: reports/monitoring-NAME.html in the "
            "workspace's home).",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only windows ending after this time (ISO or seconds)."),
    ] = None,
    self_contained: Annotated[
        bool,
        typer.Option(
            "--self-contained",
            help="Put Plotly's script inside the page (about 5 MB), to send it as one file; "
            "by default the page uses plotly.min.js, written once beside it.",
        ),
    ] = False,
) -> None:
    """Write NAME's monitoring report: drift per feature, the predictions' distribution,
    performance with intervals, latency, errors, throughput and cost against the SLOs,
    alerts, which version served when, and the loop's decisions. Prints the file's path;
    the page needs no network, only plotly.min.js beside it (or --self-contained)."""
    from loopml.reports.monitoring import monitoring_report
    from loopml.workspace import current_workspace

    path = output or current_workspace().home / "reports" / f"monitoring-{name}.html"
    monitoring_report(name, path, since=moment(since, "since"), self_contained=self_contained)
    typer.echo(str(path))
