"""loopml server: the workspace's metadata operations over HTTP, for a team.

Every operation declared with ``loopml.store.operations.operation`` becomes a route under
/api/v1, with its arguments as the path, the query (GET) or a JSON body, and its result as the
JSON answer. The server adds transport and nothing else: who may call (tokens and roles), the
error answers, writes done once under an idempotency key, /health and /metrics.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Path, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, create_model

from loopml import errors
from loopml.ids import new_id
from loopml.server.auth import Credentials, Guard
from loopml.server.mlflow import add_mlflow_routes
from loopml.server.transfer import TooLarge, received, verified_file
from loopml.server.ui import add_ui
from loopml.store.operations import ARGUMENTS_CONFIG, OPERATIONS, Operation, acting_for
from loopml.store.requests import perform_once
from loopml.store.tokens import Refused
from loopml.workspace import Workspace

PREFIX = "/api/v1"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DOMAINS = (
    "loopml.store.tokens",
    "loopml.tracking.operations",
    "loopml.tracking.logged_models",
    "loopml.data.operations",
    "loopml.registry.operations",
    "loopml.serving.operations",
    "loopml.monitoring.operations",
    "loopml.loop.operations",
)
log = logging.getLogger("loopml.server")


class ServerError(Exception):
    """An answer other than 200, with its status and error body."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def load_operations() -> dict[str, Operation]:
    """Every operation of the domain packages, registered by importing their modules."""
    for module in DOMAINS:
        importlib.import_module(module)
    return OPERATIONS


def create_server(workspace: Workspace) -> FastAPIOffline:
    """The loopml server app for a workspace."""
    workspace.prepare()
    app = FastAPIOffline(
        title="loopml server",
        version="1",
        description="The metadata of a loopml workspace: runs, datasets, models, deployments, "
        "monitoring. Send `Authorization: Bearer <token>`.",
    )
    metrics = _Metrics()
    guard = Guard(workspace)
    guard.install(app)
    schemas: dict[str, Any] = {}
    for operation in sorted(load_operations().values(), key=lambda o: o.route.path):
        _add_route(app, workspace, guard, metrics, operation, schemas)
    _with_result_schemas(app, schemas)
    app.get("/health", include_in_schema=True, tags=["server"])(_health(workspace))
    app.get("/metrics", tags=["server"], response_class=Response, responses=_PROMETHEUS)(
        lambda: Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
    )
    app.add_exception_handler(ServerError, _answer_error)
    add_mlflow_routes(app, workspace, guard)
    add_ui(app, workspace, guard)
    _add_artifact_routes(app, workspace, guard)
    return app


_PROMETHEUS = {200: {"content": {"text/plain": {"schema": {"type": "string"}}}}}


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "loopml_server_requests_total",
            "Requests answered, by operation and status.",
            ["operation", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "loopml_server_request_seconds",
            "Time to answer, by operation.",
            ["operation"],
            registry=self.registry,
        )


_DIGEST = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="The content's sha256.")]


def _add_artifact_routes(app: FastAPIOffline, workspace: Workspace, guard: Guard) -> None:
    """Content by its sha256, streamed both ways: what a client without the artifact store's
    credentials reads and writes (artifacts/remote.py)."""
    store = workspace.artifacts
    responses = {404: {"description": "Nothing is stored under this sha256."}}

    def exists(digest: _DIGEST, credentials: Credentials) -> Response:
        guard.caller(credentials, "viewer")
        return Response(status_code=200 if store.exists(digest) else 404)

    def download(digest: _DIGEST, credentials: Credentials) -> Response:
        guard.caller(credentials, "viewer")
        if not store.exists(digest):
            raise ServerError(404, "ArtifactNotFoundError", f"No content is stored as {digest}.")
        try:
            return verified_file(store, digest)
        except errors.LoopmlError as error:
            raise ServerError(_status(error), type(error).__name__, str(error)) from None

    async def upload(digest: _DIGEST, request: Request, credentials: Credentials) -> Response:
        guard.caller(credentials, "editor")
        limit = workspace.settings.server_max_upload_mb * 1024 * 1024
        try:
            async with received(request, limit) as upload:
                if upload.digest != digest:
                    raise ServerError(
                        400,
                        "ArtifactCorruptedError",
                        f"The upload's bytes hash to {upload.digest}, not {digest}: it was "
                        "changed or cut on the way, and is not stored.",
                    )
                await asyncio.to_thread(store.put_file, upload.path)
        except TooLarge as refused:
            raise ServerError(413, "UsageError", refused.message) from None
        return JSONResponse({"digest": digest, "size": upload.size})

    path = f"{PREFIX}/artifacts/{{digest}}"
    app.add_api_route(path, exists, methods=["HEAD"], tags=["artifacts"], responses=responses)
    app.add_api_route(path, download, methods=["GET"], tags=["artifacts"], responses=responses)
    app.add_api_route(path, upload, methods=["PUT"], tags=["artifacts"])


def _add_route(app, workspace, guard, metrics, operation: Operation, schemas: dict) -> None:
    route = operation.route
    in_path = set(route.path_fields)
    in_query = route.method == "GET"
    body = None if in_query else _body_model(operation, in_path)

    def endpoint(request: Request, **given: Any) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            credentials = given.pop("credentials")
            arguments = _arguments(given)
            caller = guard.caller(credentials, operation.role_for(arguments, workspace.settings))
            with acting_for(caller.actor):
                key = request.headers.get(IDEMPOTENCY_HEADER)
                answer = _perform(workspace, operation, arguments, key)
            status = 200
            return Response(answer, media_type="application/json")
        except (ServerError, Refused) as error:
            status = error.status
            raise
        finally:
            metrics.requests.labels(operation.name, str(status)).inc()
            metrics.latency.labels(operation.name).observe(time.perf_counter() - started)

    endpoint.__signature__ = _signature(operation, in_path, in_query, body)
    endpoint.__name__ = operation.function.__name__
    app.add_api_route(
        PREFIX + route.path,
        endpoint,
        methods=[route.method],
        name=operation.name,
        summary=operation.summary,
        description=inspect.getdoc(operation.function) or "",
        tags=[operation.name.split(".")[0]],
        response_class=Response,
        responses={
            200: {"content": {"application/json": {"schema": _schema(operation, schemas)}}},
            **_ERRORS,
        },
        operation_id=operation.name.replace(".", "_"),
    )


def _schema(operation: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    """The result's JSON schema; the records it refers to go to schemas."""
    schema = operation.result.json_schema(
        ref_template="#/components/schemas/{model}", mode="serialization"
    )
    schemas.update(schema.pop("$defs", {}))
    return schema


def _with_result_schemas(app: FastAPIOffline, schemas: dict[str, Any]) -> None:
    """Add the results' records to the OpenAPI components FastAPI makes."""
    make = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = make()
            known = spec.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in schemas.items():
                known.setdefault(name, schema)
        return app.openapi_schema

    app.openapi = openapi


_ERROR_BODY = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "error": {
                        "type": "object",
                        "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
                    }
                },
            }
        }
    }
}
_ERRORS = {
    code: {"description": text, **_ERROR_BODY}
    for code, text in {
        400: "The request asks for something invalid",
        401: "No valid token",
        403: "The token's role does not allow it",
        404: "Not found",
        409: "Conflicts with what is stored",
        503: "The workspace's store does not answer",
    }.items()
}


def _body_model(operation: Operation, in_path: set[str]) -> type[BaseModel]:
    fields = {
        name: (field.annotation, field)
        for name, field in operation.arguments.model_fields.items()
        if name not in in_path
    }
    name = operation.arguments.__name__ + "Request"
    return create_model(name, __config__=ARGUMENTS_CONFIG, **fields)


def _signature(operation, in_path, in_query, body) -> inspect.Signature:
    fields = operation.arguments.model_fields
    parameters = [
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)
    ]
    for name in operation.route.path_fields:
        annotation = _constrained(fields[name], Path())
        parameters.append(_keyword(name, annotation))
    if in_query:
        for name, field in fields.items():
            if name not in in_path:
                annotation = _constrained(field, Query())
                parameters.append(_keyword(name, annotation, field.get_default()))
    elif body is not None:
        parameters.append(_keyword("body", body))
    parameters.append(_keyword("credentials", Credentials))
    return inspect.Signature(parameters)


def _constrained(field: Any, source: Any) -> Any:
    """A field's type with its constraints (lengths, patterns, bounds), from source."""
    return Annotated[(field.annotation, *field.metadata, source)]


def _keyword(name: str, annotation: Any, default: Any = inspect.Parameter.empty):
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
    )


def _arguments(given: dict[str, Any]) -> dict[str, Any]:
    """The operation's arguments from the validated path, query and body."""
    found = dict(given)
    sent = found.pop("body", None)
    if sent is not None:
        found.update({name: getattr(sent, name) for name in type(sent).model_fields})
    return found


def _perform(workspace, operation, arguments, key) -> bytes:
    try:
        return perform_once(workspace.metadata, operation, arguments, key)
    except errors.LoopmlError as error:
        raise ServerError(_status(error), type(error).__name__, str(error)) from None
    except ValueError as error:  # a value the operation's checks did not know to refuse
        raise ServerError(400, "UsageError", str(error)) from None
    except Exception:
        reference = new_id()
        log.exception("operation %s failed (error %s)", operation.name, reference)
        raise ServerError(
            500,
            "ServerError",
            f"The server failed on this request; its log names it error {reference}.",
        ) from None


def _status(error: errors.LoopmlError) -> int:
    if isinstance(error, errors.NotFoundError):
        return 404
    if isinstance(error, errors.AccessDeniedError):
        return 403
    if isinstance(
        error, errors.ParamConflictError | errors.ArtifactExistsError | errors.RunStateError
    ):
        return 409
    if isinstance(error, errors.UsageError):
        return 400
    if isinstance(error, errors.StoreUnavailableError):
        return 503
    return 500


def _answer_error(_request: Request, error: ServerError) -> JSONResponse:
    body = {"error": {"type": error.kind, "message": error.message}}
    return JSONResponse(body, error.status)


def _health(workspace: Workspace) -> Callable[[], dict[str, str]]:
    def health() -> dict[str, str]:
        """Whether the server answers and its metadata store does."""
        try:
            with workspace.metadata.read() as connection:
                connection.exec_driver_sql("SELECT 1")
        except errors.LoopmlError as error:
            raise ServerError(503, type(error).__name__, str(error)) from None
        return {"status": "ok"}

    return health


def app_from_settings() -> FastAPIOffline:
    """The server of the configured workspace: the factory each uvicorn worker calls."""
    from loopml.workspace import current_workspace

    return create_server(current_workspace())
