"""`loopml serve`: the online server for a registered model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from loopml.cli.serving import CanaryOption, FractionOption, ShadowOption
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
            "--monitor-every", help="Monitor the traffic every so often (15m, 1h) while serving."
        ),
    ] = None,
    rules: Annotated[
        Path | None,
        typer.Option("--rules", help="Alert rules (YAML) judged after each monitored window."),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy", help="A retraining policy (YAML): one loop step after each window."
        ),
    ] = None,
) -> None:
    """Serve NAME as its deployment says: POST /predict, MLflow's /invocations, Open Inference
    Protocol V2, POST /feedback, /metrics, and the OpenAPI docs at /docs. Changes made with
    'loopml deploy', 'models promote' or 'models rollback' reach it within seconds."""
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
    from loopml.serving.app import MONITOR_ENV, POLICY_ENV, RULES_ENV, SERVE_ENV

    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}.")
    if deployment is not None or shadow or canary or fraction is not None:
        from loopml.serving.deployments import deploy, read_deployment, with_changes

        base = read_deployment(deployment) if deployment else loopml.serving.deployment(name)[0]
        spec = with_changes(base, shadow=shadow, canary=canary, fraction=fraction)
        deploy(name, spec, reason="loopml serve")
    champion = alias or loopml.serving.deployment(name)[0].champion
    loopml.models.get_version(f"{name}@{champion}")  # an unknown model or alias fails here
    os.environ[SERVE_ENV] = f"{name}@{alias}" if alias else name
    if (rules is not None or policy is not None) and monitor_every is None:
        raise UsageError(
            "--rules and --policy act after each monitored window: give --monitor-every too."
        )
    if monitor_every is not None:
        os.environ[MONITOR_ENV] = str(seconds(monitor_every))
    if rules is not None:
        read_rules(rules)  # bad rules fail here, not in every worker
        os.environ[RULES_ENV] = str(rules.resolve())
    if policy is not None:
        read_policy(policy)  # a bad policy fails here, not in every worker
        os.environ[POLICY_ENV] = str(policy.resolve())
    uvicorn.run(
        "loopml.serving.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )
