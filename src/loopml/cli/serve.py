"""`loopml serve`: the online server for a registered model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from loopml.cli.serving import (
    CanaryOption,
    FractionOption,
    RulesOption,
    SchedulePolicyOption,
    ShadowOption,
)
from loopml.errors import UsageError


def serve(
    name: Annotated[str, typer.Argument(help="The registered model (the endpoint).")],
    alias: Annotated[
        str | None,
        typer.Option("--alias", help="Serve this alias or version as the champion."),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="The port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option("--workers", help="Server processes.")] = 1,
    deployment: Annotated[
        Path | None,
        typer.Option("--deployment", help="Set the endpoint's deployment from a file first."),
    ] = None,
    shadow: ShadowOption = None,
    canary: CanaryOption = None,
    fraction: FractionOption = None,
    monitor_every: Annotated[
        str | None,
        typer.Option(
            "--monitor-every",
            help="Also run the loop's schedule (loopml loop serve) beside the server: "
            "monitor the traffic every so often (15m, 1h).",
        ),
    ] = None,
    rules: RulesOption = None,
    policy: SchedulePolicyOption = None,
    token_role: Annotated[
        str | None,
        typer.Option(
            "--token-role",
            help="Where the workspace has tokens, /predict (and the other scoring routes) "
            "need a token of this role: viewer, editor or admin. /feedback always needs an "
            "editor's token there.",
        ),
    ] = None,
) -> None:
    """Serve NAME as its deployment says: POST /predict, MLflow's /invocations, Open Inference
    Protocol V2, POST /feedback, /metrics, and the OpenAPI docs at /docs. Changes made with
    'loopml deploy', 'models promote' or 'models rollback' reach it within seconds. With
    --monitor-every, the loop's schedule runs in a process of its own beside the server."""
    # Before any model library loads: its native code (OpenMP, BLAS) runs on one thread per
    # server process, on every thread that predicts. Requests are small; --workers scales.
    from loopml.pipeline.executors import THREAD_VARIABLES

    for variable in THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")
    import uvicorn

    import loopml
    from loopml.durations import seconds
    from loopml.loop.policy import read_policy
    from loopml.monitoring.rules import read_rules
    from loopml.serving.app import SERVE_ENV

    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}.")
    if token_role is not None:
        if token_role not in ("viewer", "editor", "admin"):
            raise UsageError(f"--token-role is viewer, editor or admin, not {token_role!r}.")
        os.environ["LOOPML_SERVE_TOKEN_ROLE"] = token_role  # read by every worker's settings
    if (rules is not None or policy is not None) and monitor_every is None:
        raise UsageError(
            "--rules and --policy act after each monitored window: give --monitor-every too."
        )
    if monitor_every is not None:
        seconds(monitor_every)  # a bad period, rules or policy fails here, before serving
    if rules is not None:
        read_rules(rules)
    if policy is not None:
        read_policy(policy)
    if deployment is not None or shadow or canary or fraction is not None:
        from loopml.serving.deployments import deploy, read_deployment, with_changes

        base = read_deployment(deployment) if deployment else loopml.serving.deployment(name)[0]
        spec = with_changes(base, shadow=shadow, canary=canary, fraction=fraction)
        deploy(name, spec, reason="loopml serve")
    champion = alias or loopml.serving.deployment(name)[0].champion
    loopml.models.get_version(f"{name}@{champion}")  # an unknown model or alias fails here
    os.environ[SERVE_ENV] = f"{name}@{alias}" if alias else name
    schedule = None
    if monitor_every is not None:
        schedule = subprocess.Popen(_schedule_command(name, monitor_every, rules, policy))
    try:
        uvicorn.run(
            "loopml.serving.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
        )
    finally:
        if schedule is not None:
            schedule.terminate()  # it gives its lease up as it stops
            schedule.wait(timeout=30)


def _schedule_command(name: str, every: str, rules: Path | None, policy: Path | None) -> list[str]:
    """`loopml loop serve NAME --every EVERY [--rules R] [--policy P]`, run by this Python."""
    command = [sys.executable, "-m", "loopml.cli.main", "loop", "serve", name, "--every", every]
    command += ["--parent", str(os.getpid())]  # a server killed outright stops it too
    if rules is not None:
        command += ["--rules", str(rules.resolve())]
    if policy is not None:
        command += ["--policy", str(policy.resolve())]
    return command
