"""`loopml serve`: the online server for a registered model."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from loopml.errors import UsageError


def serve(
    name: Annotated[str, typer.Argument(help="The registered model.")],
    alias: Annotated[str, typer.Option("--alias", help="The alias to serve.")] = "champion",
    host: Annotated[str, typer.Option("--host", help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="The port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option("--workers", help="Server processes.")] = 1,
) -> None:
    """Serve NAME@ALIAS: POST /predict, MLflow's /invocations, Open Inference Protocol V2,
    /metrics, and the OpenAPI docs at /docs."""
    import uvicorn

    import loopml
    from loopml.serving.app import SERVE_ENV

    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}.")
    loopml.models.get_version(f"{name}@{alias}")  # an unknown model or alias fails here, clearly
    os.environ[SERVE_ENV] = f"{name}@{alias}"
    uvicorn.run(
        "loopml.serving.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )
