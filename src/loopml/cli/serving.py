"""`loopml deploy`, `loopml alerts`, `loopml predict` and `loopml feedback import`: what serves
an endpoint, what went wrong, batch scoring, and labels that arrive in bulk."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from loopml.cli import command_group, render
from loopml.cli.pipelines import ExecutorOption

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
ShadowOption = Annotated[
    str | None, typer.Option("--shadow", help="A version that gets a copy of every request.")
]
CanaryOption = Annotated[
    str | None, typer.Option("--canary", help="A version that answers a share of traffic.")
]
FractionOption = Annotated[
    float | None, typer.Option("--fraction", help="The canary's share of traffic (0-1).")
]

feedback_app = command_group(help="Ground truth for logged predictions.")


def deploy(
    name: Annotated[str, typer.Argument(help="The registered model (the endpoint).")],
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="A deployment file (YAML).")
    ] = None,
    champion: Annotated[
        str | None, typer.Option("--champion", help="The alias or version that answers.")
    ] = None,
    shadow: ShadowOption = None,
    no_shadow: Annotated[bool, typer.Option("--no-shadow", help="Stop the shadow.")] = False,
    canary: CanaryOption = None,
    fraction: FractionOption = None,
    no_canary: Annotated[bool, typer.Option("--no-canary", help="End the canary.")] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why, recorded in the model's history.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show or change what serves NAME; running servers follow within seconds. With no
    options, prints the current deployment."""
    from loopml.serving.deployments import deploy as store
    from loopml.serving.deployments import deployment, read_deployment, with_changes

    spec, revision = deployment(name)
    changes = (champion, shadow, canary, fraction)
    if file is not None or any(c is not None for c in changes) or no_shadow or no_canary:
        base = read_deployment(file) if file is not None else spec
        spec = with_changes(
            base,
            champion=champion,
            shadow=shadow,
            canary=canary,
            fraction=fraction,
            remove_shadow=no_shadow,
            remove_canary=no_canary,
        )
        revision = store(name, spec, reason=reason)
    _show_deployment(name, spec, revision, as_json)


def _show_deployment(name: str, spec, revision: int, as_json: bool) -> None:
    if as_json:
        render.print_json({"endpoint": name, "revision": revision, **spec.model_dump(mode="json")})
        return
    out = render.console()
    out.print(f"{name} (revision {revision}): champion {spec.champion}")
    if spec.shadow:
        out.print(f"  shadow  {spec.shadow}")
    if spec.canary:
        rails = spec.canary.guardrails
        out.print(
            f"  canary  {spec.canary.version} at {spec.canary.fraction:.0%} "
            f"(sticky by header {spec.canary.key}; rolled back above "
            f"{rails.max_error_rate:.0%} errors"
            + (f", p99 {rails.max_p99_latency_ms:g} ms" if rails.max_p99_latency_ms else "")
            + (f", PSI {rails.max_prediction_psi:g}" if rails.max_prediction_psi else "")
            + ")"
        )
    if spec.last_rollback:
        last = spec.last_rollback
        out.print(
            f"  last canary rollback: {last['version']} at {render.when(last['at'])}: "
            f"{last['reason']}"
        )


def alerts(
    name: Annotated[str, typer.Argument(help="The endpoint (registered model).")],
    open_only: Annotated[bool, typer.Option("--open", help="Only alerts not resolved.")] = False,
    prometheus: Annotated[
        Path | None,
        typer.Option(
            "--prometheus",
            help="Instead, print these alert rules (YAML) as a Prometheus rule file over the "
            "loopml_monitor_value gauges.",
        ),
    ] = None,
    every: Annotated[
        str, typer.Option("--every", help="With --prometheus: the server's --monitor-every.")
    ] = "15m",
    as_json: JsonOption = False,
) -> None:
    """The alerts raised for an endpoint: alert rules that fired, versions that failed to
    load, canaries rolled back."""
    from loopml.serving.deployments import alerts as found

    if prometheus is not None:
        _print_prometheus_rules(name, prometheus, every)
        return

    raised = found(name, open_only=open_only)
    if as_json:
        render.print_json([alert.to_dict() for alert in raised])
        return
    if not raised:
        render.console().print(f"No alerts for {name}.")
        return
    table = Table("when", "kind", "message", "resolved")
    for alert in raised:
        table.add_row(
            render.when(alert.at), alert.kind, alert.message, render.when(alert.resolved_at)
        )
    render.console().print(table)


def _print_prometheus_rules(name: str, rules: Path, every: str) -> None:
    import yaml

    from loopml.durations import seconds
    from loopml.errors import LoopmlError
    from loopml.monitoring.reference import get_reference
    from loopml.monitoring.rules import prometheus_rules

    try:
        top = get_reference(f"{name}@champion").top_features(100)
    except LoopmlError:
        top = []
    found = prometheus_rules(name, rules, every=seconds(every), top=top)
    typer.echo(yaml.safe_dump(found, sort_keys=False), nl=False)


def predict(
    ref: Annotated[str, typer.Argument(help="The version: NAME@ALIAS or NAME@N.")],
    source: Annotated[Path, typer.Argument(help="The input: Parquet or CSV.")],
    destination: Annotated[Path, typer.Argument(help="The output Parquet file.")],
    chunk_rows: Annotated[
        int, typer.Option("--chunk-rows", help="Rows scored at a time (bounds memory).")
    ] = 1 << 18,
    quarantine: Annotated[
        Path | None,
        typer.Option("--quarantine", help="Where rows that break the contract go."),
    ] = None,
    executor: ExecutorOption = None,
    no_log: Annotated[
        bool, typer.Option("--no-log", help="Do not write the prediction log.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace existing outputs.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Score a file with a registered version, in chunks; rows that break the contract are
    quarantined with their reasons; every prediction is logged."""
    from loopml.serving.batch import predict_batch

    with render.row_progress(f"scoring with {ref}") as advance:
        result = predict_batch(
            ref,
            source,
            destination,
            chunk_rows=chunk_rows,
            quarantine=quarantine,
            executor=executor,
            log=not no_log,
            overwrite=force,
            progress=advance,
        )
    if as_json:
        render.print_json(result.to_dict())
        return
    out = render.console()
    rate = result.rows / result.seconds if result.seconds else float("inf")
    out.print(
        f"Scored {result.scored:,} rows with {result.ref} into {result.output} in "
        f"{render.duration(result.seconds)} ({rate:,.0f} rows/s)."
    )
    if result.quarantined:
        out.print(f"{result.quarantined:,} rows broke the contract: see {result.quarantine}.")


@feedback_app.command("import")
def import_labels(
    source: Annotated[Path, typer.Argument(help="Labels: Parquet or CSV.")],
    id_column: Annotated[
        str, typer.Option("--id-column", help="The column of prediction ids.")
    ] = "id",
    label_column: Annotated[
        str, typer.Option("--label-column", help="The column of labels.")
    ] = "label",
    as_json: JsonOption = False,
) -> None:
    """Join labels to logged predictions by id; exit code 1 when some ids match none."""
    from loopml.serving.feedback import import_feedback

    with render.row_progress("importing labels") as advance:
        done = 0

        def count(rows: int) -> None:
            nonlocal done
            done += rows
            advance(done, None)

        result = import_feedback(
            source, id_column=id_column, label_column=label_column, progress=count
        )
    if as_json:
        render.print_json(result.to_dict())
    else:
        out = render.console()
        out.print(f"Joined {result.accepted:,} labels to their predictions.")
        if result.unknown:
            shown = ", ".join(result.unknown[:5]) + (", ..." if len(result.unknown) > 5 else "")
            out.print(
                f"{len(result.unknown):,} ids match no logged prediction (kept in the feedback "
                f"log as unknown): {shown}"
            )
    if result.unknown:
        sys.exit(1)
