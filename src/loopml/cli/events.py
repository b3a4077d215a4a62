"""`loopml events`: seal, compact and inspect the prediction and feedback logs."""

from __future__ import annotations

from rich.table import Table

from loopml.cli import command_group, render
from loopml.cli.serving import JsonOption

events_app = command_group(help="The prediction and feedback logs: seal, compact, status.")


@events_app.command("seal")
def seal_command(as_json: JsonOption = False) -> None:
    """Seal closed log segments into Parquet partitions now (servers do it every minute)."""
    from loopml.events.log import KINDS, seal

    sealed = {kind: seal(kind) for kind in KINDS}
    if as_json:
        render.print_json(sealed)
        return
    render.console().print(
        f"Sealed {sealed['predictions']:,} predictions and {sealed['feedback']:,} labels."
    )


@events_app.command("compact")
def compact_command(as_json: JsonOption = False) -> None:
    """Merge each finished hour's files into one, and delete the hours older than
    events_retention_days (when set)."""
    from loopml.events.log import compact

    done = compact()
    if as_json:
        render.print_json(done)
        return
    out = render.console()
    for kind, counts in done.items():
        out.print(
            f"{kind}: merged {counts['merged']:,} files, deleted {counts['expired']:,} "
            "expired hours."
        )


@events_app.command("status")
def status_command(as_json: JsonOption = False) -> None:
    """Segments waiting to be sealed, sealed files and hours, and events, per log."""
    from loopml.events.log import status

    found = status()
    if as_json:
        render.print_json(found)
        return
    table = Table("log", "events", "segments waiting", "waiting", "sealed files", "hours")
    for kind, counts in found.items():
        table.add_row(
            kind,
            f"{counts['events']:,}",
            f"{counts['segments']:,}",
            render.size(counts["segment_bytes"]),
            f"{counts['files']:,}",
            f"{counts['hours']:,}",
        )
    render.console().print(table)
