"""`loopml serve`: the online server for a registered model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from loopml.cli.serving import CanaryOption, FractionOption, ShadowOption
from loopml.errors import UsageError
from loopml.pipeline.executors import THREAD_VARIABLES


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
) -> None:
    """Serve NAME as its deployment says: POST /predict, MLflow's /invocations, Open Inference
    Protocol V2, POST /feedback, /metrics, and the OpenAPI docs at /docs. Changes made with
    'loopml deploy', 'models promote' or 'models rollback' reach it within seconds."""
    # Before any model library loads: its native code (OpenMP, BLAS) runs on one thread per
    # server process, on every thread that predicts. Requests are small; --workers scales.
    for variable in THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")
    import uvicorn

    import loopml
    from loopml.serving.app import SERVE_ENV

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
    uvicorn.run(
        "loopml.serving.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )
