"""`loopml loop run` and `loopml loop history`: the retraining policy, one step at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from loopml.cli import command_group, render
from loopml.cli.monitoring import moment
from loopml.cli.serving import JsonOption, RulesOption, SchedulePolicyOption

loop_app = command_group(help="Retrain and roll out by a policy.")


@loop_app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="The endpoint (registered model).")],
    policy: Annotated[Path, typer.Option("--policy", help="The retraining policy (YAML).")],
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="The loop's clock (ISO time or seconds; default now)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Take one step of the retraining policy: retrain when a trigger holds, gate the
    candidate against the champion, shadow it, make it a canary, promote it. Prints what was
    decided."""
    from loopml.loop.controller import run_loop

    step = run_loop(name, policy, as_of=moment(as_of, "as-of"))
    if as_json:
        render.print_json(step.to_dict())
        return
    out = render.console()
    for decision in step.decisions:
        out.print(f"{decision.action}: {decision.message}")
    out.print(f"{name}: {step.message} ({step.state}).")


@loop_app.command("serve")
def serve(
    name: Annotated[str, typer.Argument(help="The endpoint (registered model).")],
    every: Annotated[
        str, typer.Option("--every", help="Monitor the traffic every so often (15m, 1h).")
    ],
    rules: RulesOption = None,
    policy: SchedulePolicyOption = None,
    parent: Annotated[
        int | None, typer.Option("--parent", hidden=True, help="Stop when this process ends.")
    ] = None,
) -> None:
    """Run the loop's schedule for NAME until stopped: monitor its traffic every period, judge
    the alert rules, take a step of the policy. Start as many as you like, on any host: one
    holds the endpoint's lease and works, the others stand by and take over when it stops."""
    import signal
    import threading

    from loopml.durations import seconds
    from loopml.loop.schedule import Scheduler

    scheduler = Scheduler(name, seconds(every), rules=rules, policy=policy)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if parent is not None:
        _stop_with(parent, stop)
    out = render.console()
    out.print(f"Scheduling {name} every {every} (Ctrl-C stops).")
    last = {"state": None}

    def report(tick) -> None:
        if tick.state == "standby" and last["state"] != "standby":
            out.print("Another scheduler holds the lease; standing by.")
        last["state"] = tick.state
        if tick.result is not None:
            window = tick.result.window
            out.print(f"{render.when(window.end)}: {window.rows} rows, {tick.result.status}.")
        for decision in tick.decisions:
            out.print(f"{decision.action}: {decision.message}")

    scheduler.run(stop, report)
    out.print("Stopped; the lease is released.")


def _stop_with(parent: int, stop) -> None:
    """Set ``stop`` once process ``parent`` has ended (this one is then re-parented)."""
    import os
    import threading

    def watch() -> None:
        while not stop.wait(1.0):
            if os.getppid() != parent:
                stop.set()

    threading.Thread(target=watch, name="loopml-parent", daemon=True).start()


@loop_app.command("history")
def history(
    name: Annotated[str, typer.Argument(help="The endpoint (registered model).")],
    as_json: JsonOption = False,
) -> None:
    """Every decision the loop took for NAME, oldest first, with its evidence (--json)."""
    from loopml.loop.history import decisions

    found = decisions(name)
    if as_json:
        render.print_json([decision.to_dict() for decision in found])
        return
    if not found:
        render.console().print(f"The loop has decided nothing for {name} yet.")
        return
    table = Table("when", "as of", "action", "version", "why", header_style="bold")
    for decision in found:
        table.add_row(
            render.when(decision.at),
            render.iso(decision.as_of) or "-",
            decision.action,
            str(decision.version or "-"),
            decision.message,
        )
    render.console().print(table)
