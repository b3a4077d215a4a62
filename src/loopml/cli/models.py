"""`loopml models ...`: register versions, list and show them, move aliases, roll back."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from loopml.cli import command_group, render
from loopml.cli.serving import (
    WAIT_TIMEOUT,
    WaitOption,
    WaitTimeoutOption,
    server_urls,
    wait_until_served,
)

models_app = command_group(help="The model registry: versions, aliases, rollback, lineage.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Why, recorded in the model's audit log.")
]


ReferenceOption = Annotated[
    str | None,
    typer.Option(
        "--reference",
        help="Data like the training data (a file, a snapshot, or an output of the run, such "
        "as train_rows): the baseline its traffic is monitored against.",
    ),
]
TargetOption = Annotated[
    str | None,
    typer.Option("--target", help="The reference's label column, for feature importance."),
]


@models_app.command("register")
def register(
    name: Annotated[str, typer.Argument(help="The model's name (created on first use).")],
    run: Annotated[str, typer.Option("--run", help="The run (or pipeline run) that made it.")],
    artifact: Annotated[
        str, typer.Option("--artifact", help="The name of the model among the run's outputs.")
    ] = "model",
    description: Annotated[
        str | None, typer.Option("--description", help="A note stored with the version.")
    ] = None,
    owner: Annotated[
        str | None, typer.Option("--owner", help="Who answers for the model (model card).")
    ] = None,
    intended_use: Annotated[
        str | None, typer.Option("--intended-use", help="What the model is for (model card).")
    ] = None,
    contract: Annotated[
        Path | None,
        typer.Option(
            "--contract", help="The input contract (YAML): served requests are checked by it."
        ),
    ] = None,
    reference: ReferenceOption = None,
    target: TargetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register the model a run wrote as a new version (numbered 1, 2, ...), with its card."""
    import loopml

    record = loopml.models.register(
        name,
        run=run,
        artifact=artifact,
        contract=contract,
        reference=reference,
        target=target,
        description=description,
        owner=owner,
        intended_use=intended_use,
    )
    if as_json:
        render.print_json(record.to_dict())
        return
    render.console().print(
        f"Registered {record.ref} ({record.flavor}) from run {record.run_id}, "
        f"sha256:{record.digest[:12]}"
    )


@models_app.command("reference")
def reference(
    ref: Annotated[str, typer.Argument(help="The version: NAME@VERSION or NAME@ALIAS.")],
    data: Annotated[str, typer.Argument(help="A file or snapshot like the training data.")],
    target: TargetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Store (or replace) the reference data a version's traffic is monitored against."""
    from loopml.registry.reference import set_reference

    found = set_reference(ref, data, target=target)
    ranked = found.top_features(5)
    summary = {"ref": ref, "rows": found.rows, "features": found.features, "top_features": ranked}
    if as_json:
        render.print_json(summary | {"importance": found.importance})
        return
    render.console().print(
        f"{ref}: reference of {found.rows:,} rows, {len(found.features)} features"
        + (f"; most important: {', '.join(ranked)}" if found.importance else "")
    )


@models_app.command("list")
def list_models(as_json: JsonOption = False) -> None:
    """Every registered model with its latest version and aliases."""
    import loopml

    found = loopml.models.list_models()
    if as_json:
        render.print_json(found)
        return
    table = Table("model", "versions", "latest", "aliases", "updated", header_style="bold")
    for item in found:
        aliases = ", ".join(f"{a}→{v}" for a, v in item["aliases"].items()) or "-"
        table.add_row(
            item["name"],
            str(item["versions"]),
            str(item["latest"]),
            aliases,
            render.when(item["updated_at"]),
        )
    render.console().print(table)


@models_app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@ALIAS.")],
    as_json: JsonOption = False,
) -> None:
    """One version: its flavor, libraries, contract, output, run and aliases."""
    import loopml

    record = loopml.models.get_version(ref)
    if as_json:
        render.print_json(record.to_dict())
        return
    info = record.info
    table = Table(show_header=False, box=None)
    rows = {
        "version": record.ref,
        "aliases": ", ".join(record.aliases) or "-",
        "flavor": record.flavor,
        "task": info.get("task") or "-",
        "output": render.value(info.get("output")),
        "features": ", ".join(info.get("features") or []) or "-",
        "contract": f"{len((info.get('contract') or {}).get('columns', {}))} columns"
        if info.get("contract")
        else "-",
        "libraries": ", ".join(f"{k} {v}" for k, v in info.get("libraries", {}).items()),
        "run": record.run_id or "-",
        "sha256": record.digest,
        "registered": f"{render.when(record.created_at)} by {record.created_by}",
        "description": record.description or "-",
    }
    for key, value in rows.items():
        table.add_row(key, value)
    render.console().print(table)


@models_app.command("alias")
def alias(
    name: Annotated[str, typer.Argument(help="The model.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="champion, challenger, ...")],
    version: Annotated[int, typer.Argument(help="The version the alias points at.")],
    reason: ReasonOption = None,
    wait: WaitOption = None,
    wait_timeout: WaitTimeoutOption = WAIT_TIMEOUT,
    as_json: JsonOption = False,
) -> None:
    """Point an alias at a version (recorded in the audit log)."""
    import loopml

    servers = server_urls(wait, wait_timeout)
    event = loopml.models.set_alias(name, alias_name, version, reason=reason)
    _print_event(event, as_json)
    wait_until_served(name, servers, wait_timeout)


@models_app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="The model.")],
    version: Annotated[int, typer.Argument(help="The candidate version.")],
    to: Annotated[str, typer.Option("--to", help="The alias to move.")] = "champion",
    policy: Annotated[
        str, typer.Option("--policy", help="The gate: a YAML policy file (see docs/gates.md).")
    ] = ...,
    data: Annotated[
        str | None,
        typer.Option("--data", help="Evaluation data: a snapshot or a file (else the policy's)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Move the alias even if checks fail (needs --reason).")
    ] = False,
    reason: ReasonOption = None,
    wait: WaitOption = None,
    wait_timeout: WaitTimeoutOption = WAIT_TIMEOUT,
    as_json: JsonOption = False,
) -> None:
    """Move an alias to a version only if it passes the gate; exit code 1 when refused.
    --wait waits until the servers serve the version."""
    import loopml

    servers = server_urls(wait, wait_timeout)
    outcome = loopml.models.promote(
        name, version, to=to, policy=policy, data=data, force=force, reason=reason
    )
    if as_json:
        render.print_json(outcome.to_dict())
    else:
        _print_promotion(outcome)
    if not outcome.moved:
        raise typer.Exit(1)
    wait_until_served(name, servers, wait_timeout)


def _print_promotion(outcome) -> None:
    out = render.console()
    table = Table("", "check", "numbers", header_style="bold", box=None)
    for check in outcome.checks:
        mark = Text("pass", style="green") if check.passed else Text("FAIL", style="bold red")
        table.add_row(mark, check.check, check.detail)
    out.print(table)
    compared = f" against {outcome.compared}" if outcome.compared else ""
    if outcome.moved and outcome.forced:
        out.print(f"Forced: {outcome.ref} is now {outcome.alias} despite failed checks{compared}.")
    elif outcome.moved:
        out.print(f"Gate passed{compared}: {outcome.ref} is now {outcome.alias}.")
    elif outcome.moved_meanwhile:
        out.print(f"Not promoted: {outcome.moved_meanwhile}.")
    else:
        failed = sum(not c.passed for c in outcome.checks)
        out.print(
            f"Refused: {failed} of {len(outcome.checks)} checks failed{compared}; "
            f"{outcome.alias} is unchanged. Override with --force --reason '...'."
        )


@models_app.command("rollback")
def rollback(
    name: Annotated[str, typer.Argument(help="The model.")],
    alias_name: Annotated[
        str, typer.Option("--alias", help="The alias to move back.")
    ] = "champion",
    reason: ReasonOption = None,
    wait: WaitOption = None,
    wait_timeout: WaitTimeoutOption = WAIT_TIMEOUT,
    as_json: JsonOption = False,
) -> None:
    """Return an alias to the version it pointed at before, in one transaction. --wait
    waits until the servers serve that version."""
    import loopml

    servers = server_urls(wait, wait_timeout)
    _print_event(loopml.models.rollback(name, alias_name, reason=reason), as_json)
    wait_until_served(name, servers, wait_timeout)


@models_app.command("card")
def card(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@ALIAS.")],
    html: Annotated[bool, typer.Option("--html", help="The HTML page, not Markdown.")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
    write: Annotated[
        bool,
        typer.Option("--write", help="Generate the card again (with --owner, --intended-use)."),
    ] = False,
    owner: Annotated[str | None, typer.Option("--owner", help="With --write.")] = None,
    intended_use: Annotated[
        str | None, typer.Option("--intended-use", help="With --write.")
    ] = None,
) -> None:
    """A version's model card, as Markdown or a self-contained HTML page."""
    import loopml

    if write:
        loopml.models.write_card(ref, owner=owner, intended_use=intended_use)
    text = loopml.models.read_card(ref, "html" if html else "markdown")
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    render.console().print(f"Wrote {output}")


@models_app.command("history")
def history(
    name: Annotated[str, typer.Argument(help="The model.")], as_json: JsonOption = False
) -> None:
    """The model's audit log: every registration, alias move and rollback."""
    import loopml

    events = loopml.models.history(name)
    if as_json:
        render.print_json([event.to_dict() for event in events])
        return
    table = Table("#", "when", "who", "action", "alias", "from", "to", "why", header_style="bold")
    for event in events:
        table.add_row(
            str(event.sequence),
            render.when(event.at),
            event.actor,
            event.action,
            event.alias or "-",
            _version(event.from_version),
            _version(event.to_version),
            event.reason or "-",
        )
    render.console().print(table)


@models_app.command("lineage")
def lineage(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@ALIAS.")],
    as_json: JsonOption = False,
) -> None:
    """Where a version came from: run, pipeline, snapshots, code version."""
    import loopml

    found = loopml.models.lineage(ref)
    if as_json:
        render.print_json(found)
        return
    out = render.console()
    out.print(f"{found['ref']}  sha256:{found['digest']}")
    if found["run"] is None:
        out.print("  registered from a model object: no run recorded")
        return
    run, pipeline = found["run"], found["pipeline"]
    out.print(f"  run       {run['id']} ({run['name']}, {run['status']})")
    if pipeline:
        out.print(f"  pipeline  {pipeline['ref']} (run {pipeline['run']})")
    for snapshot, digest in found["snapshots"].items():
        out.print(f"  snapshot  {snapshot} sha256:{digest[:12]}")
    code = found["code"]
    dirty = " (uncommitted changes)" if code["git_dirty"] else ""
    out.print(f"  code      {code['git_commit'] or 'not in a git repository'}{dirty}")


def _version(number: int | None) -> str:
    return "-" if number is None else str(number)


def _print_event(event, as_json: bool) -> None:
    if as_json:
        render.print_json(event.to_dict())
        return
    render.console().print(
        f"{event.name}@{event.alias}: {_version(event.from_version)} → {event.to_version} "
        f"({event.action}, audit entry {event.sequence})"
    )
