"""`loopml deploy`, `loopml alerts`, `loopml predict` and `loopml feedback import`: what serves
an endpoint, what went wrong, batch scoring, and labels that arrive in bulk; and --wait,
which waits until running servers serve a change (deploy, promote, alias, rollback)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.table import Table

from loopml.cli import command_group, render
from loopml.cli.pipelines import ExecutorOption
from loopml.errors import LoopmlError, UsageError

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
RulesOption = Annotated[
    Path | None,
    typer.Option("--rules", help="Alert rules (YAML) judged after each monitored window."),
]
SchedulePolicyOption = Annotated[
    Path | None,
    typer.Option("--policy", help="A retraining policy (YAML): one loop step after each window."),
]
ShadowOption = Annotated[
    str | None, typer.Option("--shadow", help="A version that gets a copy of every request.")
]
CanaryOption = Annotated[
    str | None, typer.Option("--canary", help="A version that answers a share of traffic.")
]
FractionOption = Annotated[
    float | None, typer.Option("--fraction", help="The canary's share of traffic (0-1).")
]
WaitOption = Annotated[
    list[str] | None,
    typer.Option(
        "--wait",
        metavar="URL",
        help="After the change, wait until the server at this base URL (http://HOST:PORT) "
        "serves it; repeatable or comma-separated.",
    ),
]
WaitTimeoutOption = Annotated[
    float,
    typer.Option("--wait-timeout", metavar="SECONDS", help="How long --wait waits at most."),
]
WAIT_TIMEOUT = 60.0
POLL_SECONDS = 0.25

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
    wait: WaitOption = None,
    wait_timeout: WaitTimeoutOption = WAIT_TIMEOUT,
    as_json: JsonOption = False,
) -> None:
    """Show or change what serves NAME; running servers follow within seconds. With no
    options, prints the current deployment. --wait waits until the servers serve it."""
    from loopml.serving.deployments import deploy as store
    from loopml.serving.deployments import deployment, read_deployment, with_changes

    servers = server_urls(wait, wait_timeout)
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
        # Flags change the deployment read above: only if no one changed it since.
        expected = revision if file is None else None
        stored = store(name, spec, reason=reason, expected=expected)
        if stored is None:
            raise UsageError(
                f"The deployment of {name!r} changed while this command ran (it was at "
                f"revision {revision}): run it again to apply the change to the new one."
            )
        revision = stored
    _show_deployment(name, spec, revision, as_json)
    wait_until_served(name, servers, wait_timeout)


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


def server_urls(given: list[str] | None, timeout: float) -> list[str]:
    """The base URLs --wait names (repeated or comma-separated), checked before anything
    changes."""
    urls = [url.strip().rstrip("/") for item in given or [] for url in item.split(",")]
    urls = list(dict.fromkeys(url for url in urls if url))
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(
                f"--wait takes a server's base URL, such as http://127.0.0.1:8080, not {url!r}."
            )
    if urls and not timeout > 0:
        raise UsageError(f"--wait-timeout is a number of seconds above 0, not {timeout:g}.")
    return urls


def wait_until_served(name: str, urls: list[str], timeout: float) -> None:
    """Poll each server's GET /deployment until it serves NAME's stored deployment (its
    revision, and each role at the version its reference names now), printing progress on
    stderr. A server that does not answer, serves another endpoint, or has not followed
    within ``timeout`` seconds is an error that says what it serves."""
    if not urls:
        return
    from loopml.serving.deployments import deployment

    spec, revision = deployment(name)
    wanted = f"revision {revision}: {_roles_text(_versions(name, spec))}"
    _progress(f"Waiting up to {timeout:g}s for {_count(urls)} to serve {name} {wanted}.")
    deadline, pending, seen = time.monotonic() + timeout, list(urls), dict.fromkeys(urls)
    while True:
        for url in list(pending):
            answer = _deployment_of(url, name, deadline)
            shown = f"revision {answer['revision']}: {_roles_text(answer['serving'])}"
            if _follows(name, answer, revision):
                _progress(f"{url} serves {shown}.")
                pending.remove(url)
            elif shown != seen[url]:
                _progress(f"{url} serves {shown}; waiting.")
            seen[url] = shown
        if not pending:
            return
        if time.monotonic() >= deadline:
            servers = "; ".join(f"{url} serves {seen[url]}" for url in pending)
            raise LoopmlError(
                f"Waited {timeout:g}s for {name} {wanted}, but {servers}. A version that "
                f"fails to load is not swapped in (see 'loopml alerts {name}'), and a server "
                "of another workspace never follows this one."
            )
        time.sleep(POLL_SECONDS)


def _progress(text: str) -> None:
    typer.echo(text, err=True)


def _count(urls: list[str]) -> str:
    return urls[0] if len(urls) == 1 else f"{len(urls)} servers"


def _deployment_of(url: str, name: str, deadline: float) -> dict[str, Any]:
    """What the server at URL answers to GET /deployment; an error when it does not answer
    or serves another endpoint."""
    from urllib.error import HTTPError
    from urllib.request import urlopen

    seconds = min(5.0, max(deadline - time.monotonic(), 0.5))
    try:
        with urlopen(f"{url}/deployment", timeout=seconds) as response:
            answer = json.load(response)
    except HTTPError as error:
        raise LoopmlError(
            f"{url} answered GET /deployment with HTTP {error.code}: is it a loopml server? "
            f"Start one with 'loopml serve {name}'."
        ) from None
    except (OSError, ValueError) as error:  # URLError is an OSError; ValueError: not JSON
        reason = getattr(error, "reason", error)
        raise LoopmlError(
            f"{url} does not answer GET /deployment ({reason}): is 'loopml serve {name}' "
            "running there?"
        ) from None
    shape = {"endpoint": str, "revision": int, "deployment": dict, "serving": dict}
    if not isinstance(answer, dict) or not all(
        isinstance(answer.get(key), kind) for key, kind in shape.items()
    ):
        raise LoopmlError(
            f"{url} answered GET /deployment with something other than a loopml server's "
            f"deployment: give --wait the URL of 'loopml serve {name}'."
        )
    if answer["endpoint"] != name:
        raise LoopmlError(
            f"{url} serves the endpoint {answer['endpoint']!r}, not {name!r}: give --wait the "
            f"URL of a server of {name}."
        )
    return answer


def _follows(name: str, answer: dict[str, Any], revision: int) -> bool:
    """Whether a server's /deployment shows the stored revision (or a later one) with each
    role at the version its reference names in the registry now. The server's own
    deployment is the one judged: a server started with --alias serves that champion."""
    from loopml.serving.deployments import Deployment

    if answer["revision"] < revision:
        return False
    spec = Deployment.model_validate(answer["deployment"])
    serving, wanted = answer["serving"], _versions(name, spec)
    return set(serving) <= set(spec.refs(name)) and all(
        serving.get(role) == ref for role, ref in wanted.items()
    )


def _versions(name: str, spec: Any) -> dict[str, str]:
    """Role → NAME@N: the version each role of a deployment names now (roles whose alias
    names no version are left out: a server keeps what it served)."""
    from loopml.registry.api import version_numbers

    selectors = {role: ref.partition("@")[2] for role, ref in spec.refs(name).items()}
    numbers = version_numbers(name, list(selectors.values()))
    return {
        role: f"{name}@{numbers[selector]}"
        for role, selector in selectors.items()
        if selector in numbers
    }


def _roles_text(roles: dict[str, str]) -> str:
    """'champion churn@2, shadow churn@3'."""
    return ", ".join(f"{role} {ref}" for role, ref in roles.items()) or "nothing"


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
    from loopml.monitoring.rules import prometheus_rules
    from loopml.registry.reference import get_reference

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
