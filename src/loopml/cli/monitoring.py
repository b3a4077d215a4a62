"""`loopml monitor`: check a window of an endpoint's traffic and judge the alert rules."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from loopml.cli import render
from loopml.cli.serving import JsonOption
from loopml.errors import UsageError

HEADLINES = (
    ("drifted_share", "", "share of features drifted", "{:.0%}"),
    ("max_psi", "", "largest feature PSI", "{:.3f}"),
    ("max_psi_previous", "", "largest feature PSI against the previous window", "{:.3f}"),
    ("correlation_changed_pairs", "", "feature pairs whose correlation changed", "{:.0f}"),
    ("violation_rate", "", "requests rejected by the contract", "{:.2%}"),
    ("label_coverage", "", "predictions labelled so far", "{:.0%}"),
    ("label_delay_p50", "", "median label delay (s)", "{:,.0f}"),
    ("latency_p99_ms", "", "p99 latency (ms)", "{:.1f}"),
    ("error_rate", "", "error rate", "{:.2%}"),
    ("throughput_rps", "", "requests per second", "{:.2f}"),
    ("cost_per_1k", "", "cost per 1,000 predictions", "{:.4g}"),
)


def moment(text: str | None, what: str) -> float | None:
    """A time given on the command line: ISO (UTC unless it names a zone), or seconds since
    1970."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--{what} is a time (2026-11-22T10:00, or seconds since 1970), not {text!r}."
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def monitor(
    name: Annotated[str, typer.Argument(help="The endpoint (registered model).")],
    window: Annotated[
        str | None,
        typer.Option("--window", help="The window's length before its end: 15m, 1h, 1d."),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="The window's start (ISO time or seconds).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="The window's end (default: now).")
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="A name for the window in reports.")
    ] = None,
    exact: Annotated[
        bool, typer.Option("--exact", help="Also run exact two-sample tests on samples.")
    ] = False,
    rules: Annotated[
        Path | None, typer.Option("--rules", help="Alert rules (YAML) to judge afterwards.")
    ] = None,
    min_rows: Annotated[
        int,
        typer.Option("--min-rows", min=1, help="Fewer answered rows are not judged for drift."),
    ] = 100,
    as_json: JsonOption = False,
) -> None:
    """Check one window of NAME's logged traffic: data and prediction drift against the
    version's reference, data quality, performance on feedback, latency, errors and cost
    against the SLOs. The values are stored as time series; exit code 1 when the window
    could not be checked or an alert fired."""
    from loopml.monitoring.window import monitor as run_monitor

    found = run_monitor(
        name,
        window=window,
        since=moment(since, "since"),
        until=moment(until, "until"),
        label=label,
        exact=exact,
        rules=rules,
        min_rows=min_rows,
    )
    if as_json:
        render.print_json(found.to_dict())
    else:
        _show(found)
    if found.status == "failed" or found.fired:
        raise typer.Exit(1)


def _show(found) -> None:
    out, window = render.console(), found.window
    out.print(
        f"{window.endpoint}: {render.iso(window.start)} to {render.iso(window.end)}, "
        f"{window.rows:,} answered rows, versions {', '.join(map(str, window.versions)) or '-'}"
        f" — {window.status}" + (f": {window.message}" if window.message else "")
    )
    checks = Table("check", "status", "found", header_style="bold")
    for check in found.checks:
        checks.add_row(check.name, render.status(check.status), check.message)
    out.print(checks)
    values = Table("value", "in this window", header_style="bold")
    for metric, key, text, shape in HEADLINES:
        measured = found.value(metric, key)
        if measured is not None:
            values.add_row(text, shape.format(measured))
    performance = found.check("performance").details if found.checks else {}
    from loopml.evaluation.wording import interval

    measured = performance.get("metrics") or {}
    for metric, estimate in measured.items():  # every metric of the task
        values.add_row(
            f"{metric} (feedback)", interval(estimate["value"], estimate["low"], estimate["high"])
        )
    out.print(values)
    for alert in found.fired:
        out.print(f"ALERT {alert['rule']} ({alert['severity']}): {alert['message']}")
    for alert in found.resolved:
        out.print(f"resolved {alert['rule']}: {alert['message']}")
    for alert in found.persistent:
        since = alert.label or render.iso(alert.since)
        out.print(f"NEVER RESOLVES {alert.rule} (open since {since}): {alert.hint}")
