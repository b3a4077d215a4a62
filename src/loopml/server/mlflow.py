"""MLflow's REST protocol, spoken by loopml server: the MLflow client, pointed at this server
with MLFLOW_TRACKING_URI, logs ordinary loopml runs.

Every route translates MLflow's request into loopml operations and their result back into
MLflow's JSON; nothing is stored that loopml's own API could not store. What is carried:
experiments, runs (create, update, get, search), params, metrics (one, batched, history),
tags, and run artifacts through MLflow's artifact proxy (``mlflow-artifacts:/runs/<run id>``).
Errors answer as MLflow's do: ``{"error_code": ..., "message": ...}``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import posixpath
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loopml import errors
from loopml.ids import new_id
from loopml.registry import operations as registry_ops
from loopml.registry.cards import write_card_of_new_version
from loopml.registry.saved import adopt_mlflow_model
from loopml.server.auth import Credentials, Guard
from loopml.server.transfer import TooLarge, received, verified_file
from loopml.store.operations import Operation, acting_for
from loopml.store.pages import every
from loopml.store.records import ENDED_STATUSES, MetricSummary, RunRecord
from loopml.store.tokens import Presented, Refused
from loopml.tracking import artifacts as content
from loopml.tracking import logged_models as models_ops
from loopml.tracking import operations as ops
from loopml.workspace import Workspace

PREFIX = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
DEFAULT_EXPERIMENT = "Default"  # MLflow's experiment "0", the one a client uses unless told
MAX_RESULTS = 10_000  # runs per page of a search
MODEL_HISTORY = "mlflow.log-model.history"


class MlflowError(Exception):
    """An answer in MLflow's error format."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class _Message(BaseModel):
    """A request body: MLflow's clients send fields this server does not need (run_uuid)."""

    model_config = ConfigDict(extra="ignore")


class _Pair(_Message):
    key: str
    value: str = ""


Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


class _Metric(_Message):
    key: str
    value: float
    timestamp: Int64 = 0
    step: Int64 = 0


class _CreateExperiment(_Message):
    name: str
    artifact_location: str | None = None
    tags: list[_Pair] = []


class _SearchExperiments(_Message):
    max_results: int = 1000
    filter: str | None = None
    page_token: str | None = None


class _CreateRun(_Message):
    experiment_id: str = "0"
    user_id: str | None = None
    start_time: Int64 | None = None
    tags: list[_Pair] = []
    run_name: str | None = None


class _UpdateRun(_Message):
    run_id: str
    status: str | None = None
    end_time: Int64 | None = None
    run_name: str | None = None


class _LogParam(_Message):
    run_id: str
    key: str
    value: str = ""


class _LogMetric(_Message):
    run_id: str
    key: str
    value: float
    timestamp: Int64 = 0
    step: Int64 = 0


class _SetTag(_Message):
    run_id: str
    key: str
    value: str = ""


class _LogBatch(_Message):
    run_id: str
    metrics: list[_Metric] = []
    params: list[_Pair] = []
    tags: list[_Pair] = []


class _SearchRuns(_Message):
    experiment_ids: list[str] = []
    filter: str | None = None
    max_results: int = Field(1000, ge=1)
    order_by: list[str] = []
    page_token: str | None = None


class _NewModel(_Message):
    name: str
    description: str | None = None


class _SetAlias(_Message):
    name: str
    alias: str
    version: str


class _NewVersion(_Message):
    name: str
    source: str
    run_id: str | None = None
    description: str | None = None


class _LogModel(_Message):
    run_id: str
    model_json: str


class _CreateLoggedModel(_Message):
    experiment_id: str = "0"
    name: str | None = None
    model_type: str | None = None
    source_run_id: str | None = None
    params: list[_Pair] = []
    tags: list[_Pair] = []


class _FinalizeLoggedModel(_Message):
    status: str


class _ModelTags(_Message):
    tags: list[_Pair] = []


class _ModelParams(_Message):
    params: list[_Pair] = []


class _SearchLoggedModels(_Message):
    experiment_ids: list[str] = []
    filter: str | None = None
    max_results: int = Field(100, ge=1)
    page_token: str | None = None


class _ModelOutput(_Message):
    model_id: str
    step: int = 0


class _LogOutputs(_Message):
    run_id: str
    models: list[_ModelOutput] = []


def add_mlflow_routes(app: FastAPI, workspace: Workspace, guard: Guard) -> None:
    """Serve MLflow's tracking and artifact protocol on app, behind the server's guard."""
    bridge = _Bridge(workspace, guard)
    router = APIRouter(tags=["mlflow"])
    for method, path, handler in bridge.routes():
        router.add_api_route(path, handler, methods=[method], name=f"mlflow.{handler.__name__}")
    app.include_router(router)
    app.add_exception_handler(MlflowError, _answer)


def _answer(_request: Request, error: MlflowError) -> JSONResponse:
    return JSONResponse({"error_code": error.code, "message": error.message}, error.status)


class _Bridge:
    """MLflow's routes over one workspace's operations."""

    def __init__(self, workspace: Workspace, guard: Guard) -> None:
        self.workspace = workspace
        self.guard = guard

    def routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        return [
            ("GET", f"{PREFIX}/experiments/get-by-name", self.get_experiment_by_name),
            ("GET", f"{PREFIX}/experiments/get", self.get_experiment),
            ("POST", f"{PREFIX}/experiments/create", self.create_experiment),
            ("POST", f"{PREFIX}/experiments/search", self.search_experiments),
            ("POST", f"{PREFIX}/runs/create", self.create_run),
            ("POST", f"{PREFIX}/runs/update", self.update_run),
            ("GET", f"{PREFIX}/runs/get", self.get_run),
            ("POST", f"{PREFIX}/runs/log-parameter", self.log_parameter),
            ("POST", f"{PREFIX}/runs/log-metric", self.log_metric),
            ("POST", f"{PREFIX}/runs/set-tag", self.set_tag),
            ("POST", f"{PREFIX}/runs/log-batch", self.log_batch),
            ("POST", f"{PREFIX}/runs/search", self.search_runs),
            ("GET", f"{PREFIX}/metrics/get-history", self.get_metric_history),
            ("POST", f"{PREFIX}/logged-models", self.create_logged_model),
            ("POST", f"{PREFIX}/logged-models/search", self.search_logged_models),
            ("GET", f"{PREFIX}/logged-models/{{model_id}}", self.get_logged_model),
            ("PATCH", f"{PREFIX}/logged-models/{{model_id}}", self.finalize_logged_model),
            ("PATCH", f"{PREFIX}/logged-models/{{model_id}}/tags", self.set_logged_model_tags),
            ("POST", f"{PREFIX}/logged-models/{{model_id}}/params", self.log_logged_model_params),
            ("POST", f"{PREFIX}/runs/outputs", self.log_outputs),
            ("POST", f"{PREFIX}/runs/log-model", self.log_model),
            ("POST", f"{PREFIX}/registered-models/create", self.create_registered_model),
            ("GET", f"{PREFIX}/registered-models/get", self.get_registered_model),
            ("GET", f"{PREFIX}/registered-models/search", self.search_registered_models),
            ("POST", f"{PREFIX}/registered-models/alias", self.set_registered_model_alias),
            ("GET", f"{PREFIX}/registered-models/alias", self.get_model_version_by_alias),
            ("POST", f"{PREFIX}/model-versions/create", self.create_model_version),
            ("GET", f"{PREFIX}/model-versions/get", self.get_model_version),
            ("GET", f"{PREFIX}/model-versions/search", self.search_model_versions),
            ("GET", f"{PREFIX}/model-versions/get-download-uri", self.get_download_uri),
            ("GET", ARTIFACTS, self.list_artifacts),
            ("GET", ARTIFACTS + "/{path:path}", self.download_artifact),
            ("PUT", ARTIFACTS + "/{path:path}", self.upload_artifact),
        ]

    # --- calling operations -------------------------------------------------------------

    def _caller(self, credentials: Presented, role: str) -> str | None:
        try:
            return self.guard.caller(credentials, role).actor
        except Refused as refused:  # in MLflow's words
            code = "UNAUTHENTICATED" if refused.status == 401 else "PERMISSION_DENIED"
            raise MlflowError(refused.status, code, refused.message) from None

    def _do(self, caller: str | None, operation: Operation, **given: Any) -> Any:
        """Run an operation for the caller, with the checks its HTTP route applies."""
        try:
            checked = operation.arguments.model_validate(operation.bind(**given))
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()
            )
            raise MlflowError(400, "INVALID_PARAMETER_VALUE", problems) from None
        arguments = {name: getattr(checked, name) for name in type(checked).model_fields}
        try:
            with acting_for(caller):
                return self.workspace.metadata.perform(operation, arguments)
        except errors.NotFoundError as error:
            raise MlflowError(404, "RESOURCE_DOES_NOT_EXIST", str(error)) from None
        except errors.RunStateError as error:
            raise MlflowError(400, "INVALID_STATE", str(error)) from None
        except errors.ArtifactExistsError as error:
            raise MlflowError(400, "RESOURCE_ALREADY_EXISTS", str(error)) from None
        except (errors.UsageError, errors.ParamConflictError, ValueError) as error:
            raise MlflowError(400, "INVALID_PARAMETER_VALUE", str(error)) from None

    def _experiments(self, caller: str | None) -> list[Any]:
        return list(every(self._do, caller, ops.list_experiments))

    def _experiment(self, caller: str | None, experiment_id: str) -> Any:
        if experiment_id == "0":  # made the first time a client asks for it, as MLflow has it
            found = self._do(caller, ops.find_experiments, names=[DEFAULT_EXPERIMENT])
            return (
                found[0]
                if found
                else self._do(caller, ops.create_experiment, name=DEFAULT_EXPERIMENT)
            )
        found = self._do(caller, ops.find_experiments, ids=[experiment_id])
        if found:
            return found[0]
        raise MlflowError(
            404, "RESOURCE_DOES_NOT_EXIST", f"No experiment has the id {experiment_id!r}."
        )

    def _run_json(self, caller: str | None, records: list[RunRecord]) -> list[dict[str, Any]]:
        names = sorted({r.experiment for r in records})
        ids = {e.name: e.id for e in self._do(caller, ops.find_experiments, names=names)}
        metrics = self._do(caller, ops.latest_metrics, run_ids=[r.id for r in records])
        return [_run(r, ids.get(r.experiment, ""), metrics[r.id]) for r in records]

    # --- experiments ----------------------------------------------------------------------

    def get_experiment_by_name(
        self, credentials: Credentials, experiment_name: str = Query()
    ) -> dict[str, Any]:
        caller = self._caller(credentials, "viewer")
        for found in self._do(caller, ops.find_experiments, names=[experiment_name]):
            return {"experiment": _experiment(found)}
        raise MlflowError(
            404, "RESOURCE_DOES_NOT_EXIST", f"No experiment is called {experiment_name!r}."
        )

    def get_experiment(self, credentials: Credentials, experiment_id: str = Query()) -> Any:
        caller = self._caller(credentials, "viewer")
        return {"experiment": _experiment(self._experiment(caller, experiment_id))}

    def create_experiment(
        self, credentials: Credentials, body: _CreateExperiment
    ) -> dict[str, Any]:
        caller = self._caller(credentials, "editor")
        if self._do(caller, ops.find_experiments, names=[body.name]):
            raise MlflowError(
                400, "RESOURCE_ALREADY_EXISTS", f"An experiment called {body.name!r} exists."
            )
        return {"experiment_id": self._do(caller, ops.create_experiment, name=body.name).id}

    def search_experiments(
        self, credentials: Credentials, body: _SearchExperiments
    ) -> dict[str, Any]:
        caller = self._caller(credentials, "viewer")
        found = self._experiments(caller)
        if body.filter:
            wanted = _name_filter(body.filter)
            found = [e for e in found if wanted(e.name)]
        page, following = _page(found, body.page_token, max(1, body.max_results))
        return {"experiments": [_experiment(e) for e in page], **following}

    # --- runs -----------------------------------------------------------------------------

    def create_run(self, credentials: Credentials, body: _CreateRun) -> dict[str, Any]:
        caller = self._caller(credentials, "editor")
        experiment = self._experiment(caller, body.experiment_id)
        tags = {t.key: t.value for t in body.tags}
        name = body.run_name or tags.get("mlflow.runName")
        if name:
            tags["mlflow.runName"] = name
        run = ops.NewRun(
            id=new_id(),
            experiment=experiment.name,
            start_time=(body.start_time or time.time() * 1000) / 1000,
            host=tags.get("mlflow.source.host", "mlflow client")[:200],
            pid=0,
            user=body.user_id or tags.get("mlflow.user") or "unknown",
            command=tags.get("mlflow.source.name", ""),
            python_version="",
            name=name,
            parent_id=tags.get("mlflow.parentRunId"),
        )
        self._do(caller, ops.create_run, run=dataclasses.asdict(run), params={}, tags=tags)
        return {"run": self._run_json(caller, [self._do(caller, ops.get_run, run_id=run.id)])[0]}

    def update_run(self, credentials: Credentials, body: _UpdateRun) -> dict[str, Any]:
        caller = self._caller(credentials, "editor")
        if body.run_name:
            self._do(
                caller, ops.set_tags, run_id=body.run_id, values={"mlflow.runName": body.run_name}
            )
        status = (body.status or "").lower()
        if status in ENDED_STATUSES:
            record = self._do(caller, ops.get_run, run_id=body.run_id)
            if record.status == "running":
                self._do(caller, ops.end_run, run_id=body.run_id, status=status)
        elif status not in ("", "running", "scheduled"):
            raise MlflowError(
                400, "INVALID_PARAMETER_VALUE", f"Unknown run status {body.status!r}."
            )
        record = self._do(caller, ops.get_run, run_id=body.run_id)
        return {"run_info": self._run_json(caller, [record])[0]["info"]}

    def get_run(self, credentials: Credentials, run_id: str = Query()) -> dict[str, Any]:
        caller = self._caller(credentials, "viewer")
        return {"run": self._run_json(caller, [self._do(caller, ops.get_run, run_id=run_id)])[0]}

    def log_parameter(self, credentials: Credentials, body: _LogParam) -> dict:
        caller = self._caller(credentials, "editor")
        self._do(caller, ops.log_params, run_id=body.run_id, values={body.key: body.value})
        return {}

    def log_metric(self, credentials: Credentials, body: _LogMetric) -> dict:
        caller = self._caller(credentials, "editor")
        self._do(caller, ops.log_metrics, run_id=body.run_id, values=[_value(body)])
        return {}

    def set_tag(self, credentials: Credentials, body: _SetTag) -> dict:
        caller = self._caller(credentials, "editor")
        self._do(caller, ops.set_tags, run_id=body.run_id, values={body.key: body.value})
        return {}

    def log_batch(self, credentials: Credentials, body: _LogBatch) -> dict:
        caller = self._caller(credentials, "editor")
        if body.params:
            params = {p.key: p.value for p in body.params}
            self._do(caller, ops.log_params, run_id=body.run_id, values=params)
        if body.tags:
            tags = {t.key: t.value for t in body.tags}
            self._do(caller, ops.set_tags, run_id=body.run_id, values=tags)
        if body.metrics:
            values = [_value(m) for m in body.metrics]
            self._do(caller, ops.log_metrics, run_id=body.run_id, values=values)
        return {}

    def search_runs(self, credentials: Credentials, body: _SearchRuns) -> dict[str, Any]:
        caller = self._caller(credentials, "viewer")
        names = [self._experiment(caller, i).name for i in body.experiment_ids]
        where = translate_filter(body.filter)
        if len(names) > 1:
            listed = ", ".join(_quote(n) for n in names)
            where = f"experiment in ({listed})" + (f" and ({where})" if where else "")
        page = self._do(
            caller,
            ops.search_runs,
            experiment=names[0] if len(names) == 1 else None,
            where=where,
            sort=[translate_order(o) for o in body.order_by],
            page_size=min(body.max_results, MAX_RESULTS),
            cursor=body.page_token or None,
        )
        answer: dict[str, Any] = {"runs": self._run_json(caller, page.runs)}
        if page.next_cursor:
            answer["next_page_token"] = page.next_cursor
        return answer

    def get_metric_history(
        self,
        credentials: Credentials,
        run_id: str = Query(),
        metric_key: str = Query(),
        max_results: int = Query(25_000, ge=1),
        page_token: str | None = Query(None),
    ) -> dict[str, Any]:
        caller = self._caller(credentials, "viewer")
        start = _offset(page_token)
        points = self._do(
            caller,
            ops.metric_history,
            run_id=run_id,
            key=metric_key,
            offset=start,
            limit=max_results + 1,
        )
        page = points[:max_results]
        answer: dict[str, Any] = {
            "metrics": [
                {
                    "key": metric_key,
                    "value": _number(p.value),
                    "timestamp": _ms(p.timestamp),
                    "step": p.step,
                }
                for p in page
            ]
        }
        if len(points) > max_results:
            answer["next_page_token"] = str(start + max_results)
        return answer

    # --- logged models --------------------------------------------------------------------

    def create_logged_model(
        self, credentials: Credentials, body: _CreateLoggedModel
    ) -> dict[str, Any]:
        caller = self._caller(credentials, "editor")
        if not body.source_run_id:
            raise MlflowError(
                400,
                "INVALID_PARAMETER_VALUE",
                "This server keeps a model's files with the run that logs it: log models "
                "inside a run (mlflow.start_run).",
            )
        found = self._do(
            caller,
            models_ops.create_logged_model,
            run_id=body.source_run_id,
            name=body.name or "model",
            model_type=body.model_type,
            tags={t.key: t.value for t in body.tags},
            params={p.key: p.value for p in body.params},
        )
        return {"model": _logged_model(found)}

    def get_logged_model(self, credentials: Credentials, model_id: str) -> dict[str, Any]:
        caller = self._caller(credentials, "viewer")
        found = self._do(caller, models_ops.get_logged_model, model_id=model_id)
        return {"model": _logged_model(found)}

    def finalize_logged_model(
        self, credentials: Credentials, model_id: str, body: _FinalizeLoggedModel
    ) -> dict[str, Any]:
        caller = self._caller(credentials, "editor")
        status = _MODEL_STATUSES.get(body.status)
        if status is None:
            raise MlflowError(400, "INVALID_PARAMETER_VALUE", f"Unknown status {body.status!r}.")
        found = self._do(caller, models_ops.update_logged_model, model_id=model_id, status=status)
        return {"model": _logged_model(found)}

    def set_logged_model_tags(
        self, credentials: Credentials, model_id: str, body: _ModelTags
    ) -> dict[str, Any]:
        caller = self._caller(credentials, "editor")
        tags = {t.key: t.value for t in body.tags}
        self._do(caller, models_ops.update_logged_model, model_id=model_id, tags=tags)
        return {}

    def log_logged_model_params(
        self, credentials: Credentials, model_id: str, body: _ModelParams
    ) -> dict[str, Any]:
        caller = self._caller(credentials, "editor")
        params = {p.key: p.value for p in body.params}
        self._do(caller, models_ops.update_logged_model, model_id=model_id, params=params)
        return {}

    def search_logged_models(
        self, credentials: Credentials, body: _SearchLoggedModels
    ) -> dict[str, Any]:
        caller = self._caller(credentials, "viewer")
        ids = [self._experiment(caller, i).id for i in body.experiment_ids] or None
        wanted = _equalities(body.filter, ("name", "source_run_id"), "logged models")
        page = self._do(
            caller,
            models_ops.search_logged_models,
            experiment_ids=ids,
            name=wanted.get("name"),
            run_id=wanted.get("source_run_id"),
            page_size=min(body.max_results, MAX_RESULTS),
            cursor=body.page_token or None,
        )
        answer: dict[str, Any] = {"models": [_logged_model(m) for m in page.models]}
        if page.next_cursor:
            answer["next_page_token"] = page.next_cursor
        return answer

    def log_outputs(self, credentials: Credentials, body: _LogOutputs) -> dict[str, Any]:
        caller = self._caller(credentials, "editor")
        for output in body.models:
            found = self._do(caller, models_ops.get_logged_model, model_id=output.model_id)
            if found.run_id != self._do(caller, ops.get_run, run_id=body.run_id).id:
                raise MlflowError(
                    400,
                    "INVALID_PARAMETER_VALUE",
                    f"Model {output.model_id} was logged by run {found.run_id}: this server "
                    "records a model as an output of the run that logged it only.",
                )
        return {}

    def log_model(self, credentials: Credentials, body: _LogModel) -> dict[str, Any]:
        """MLflow 2's record of a model a run logged: kept, as MLflow keeps it, in the run's
        tag mlflow.log-model.history."""
        caller = self._caller(credentials, "editor")
        try:
            model = json.loads(body.model_json)
        except ValueError:
            raise MlflowError(400, "INVALID_PARAMETER_VALUE", "model_json is not JSON.") from None
        record = self._do(caller, ops.get_run, run_id=body.run_id)
        history = [*json.loads(record.tags.get(MODEL_HISTORY, "[]")), model]
        self._do(
            caller, ops.set_tags, run_id=body.run_id, values={MODEL_HISTORY: json.dumps(history)}
        )
        return {}

    # --- the model registry -----------------------------------------------------------------

    def create_registered_model(self, credentials: Credentials, body: _NewModel) -> dict:
        caller = self._caller(credentials, "editor")
        if any(m.name == body.name for m in every(self._do, caller, registry_ops.list_models)):
            raise MlflowError(
                400, "RESOURCE_ALREADY_EXISTS", f"A model is registered as {body.name!r}."
            )
        self._do(caller, registry_ops.create_model, name=body.name)
        return {"registered_model": self._registered_model(caller, body.name)}

    def get_registered_model(self, credentials: Credentials, name: str = Query()) -> dict:
        caller = self._caller(credentials, "viewer")
        return {"registered_model": self._registered_model(caller, name)}

    def search_registered_models(
        self,
        credentials: Credentials,
        filter: str | None = Query(None),
        max_results: int = Query(100, ge=1),
        page_token: str | None = Query(None),
    ) -> dict[str, Any]:
        caller = self._caller(credentials, "viewer")
        names = [m.name for m in every(self._do, caller, registry_ops.list_models)]
        if filter:
            wanted = _name_filter(filter)
            names = [n for n in names if wanted(n)]
        page, following = _page(names, page_token, max_results)
        return {"registered_models": [self._registered_model(caller, n) for n in page], **following}

    def set_registered_model_alias(self, credentials: Credentials, body: _SetAlias) -> dict:
        arguments = {"name": body.name, "alias": body.alias}
        role = registry_ops.set_alias.role_for(arguments, self.workspace.settings)
        caller = self._caller(credentials, role)
        self._do(
            caller,
            registry_ops.set_alias,
            name=body.name,
            alias=body.alias,
            version=_version_number(body.version),
            user=caller or "mlflow client",
            reason="set with MLflow's client",
        )
        return {}

    def get_model_version_by_alias(
        self, credentials: Credentials, name: str = Query(), alias: str = Query()
    ) -> dict[str, Any]:
        caller = self._caller(credentials, "viewer")
        if alias.isdigit():
            raise MlflowError(400, "INVALID_PARAMETER_VALUE", f"{alias!r} is not an alias.")
        found = self._do(caller, registry_ops.get_version, name=name, which=alias)
        return {"model_version": _model_version(found)}

    def create_model_version(self, credentials: Credentials, body: _NewVersion) -> dict:
        caller = self._caller(credentials, "editor")
        run_id, folder = self._source(caller, body.source, body.run_id)
        with tempfile.TemporaryDirectory(prefix="loopml-mlflow-model-") as scratch:
            local = Path(scratch) / "model"
            prefix = f"{folder}/"
            for name, record in self._outputs(caller, run_id).items():
                if name.startswith(prefix):
                    self.workspace.artifacts.get_file(record.digest, local / name[len(prefix) :])
            if not local.is_dir():
                raise MlflowError(
                    404,
                    "RESOURCE_DOES_NOT_EXIST",
                    f"Run {run_id} has no model folder {folder!r} to register.",
                )
            try:
                info = adopt_mlflow_model(local)
            except errors.LoopmlError as error:
                raise MlflowError(400, "INVALID_PARAMETER_VALUE", str(error)) from None
            stored = content.store_content(self.workspace.artifacts, local)
        version = registry_ops.NewVersion(
            stored.digest,
            info.flavor,
            asdict(info),
            caller or "mlflow client",
            run_id,
            body.description or None,
        )
        found = self._do(
            caller, registry_ops.register_version, name=body.name, version=asdict(version)
        )
        with acting_for(caller):
            write_card_of_new_version(found, workspace=self.workspace)
        return {"model_version": _model_version(found)}

    def get_model_version(
        self, credentials: Credentials, name: str = Query(), version: str = Query()
    ) -> dict[str, Any]:
        caller = self._caller(credentials, "viewer")
        number = str(_version_number(version))
        found = self._do(caller, registry_ops.get_version, name=name, which=number)
        return {"model_version": _model_version(found)}

    def search_model_versions(
        self,
        credentials: Credentials,
        filter: str | None = Query(None),
        max_results: int = Query(10_000, ge=1),
        page_token: str | None = Query(None),
    ) -> dict[str, Any]:
        caller = self._caller(credentials, "viewer")
        wanted = _equalities(filter, ("name", "run_id"), "model versions")
        names = [m.name for m in every(self._do, caller, registry_ops.list_models)]
        if "name" in wanted:
            names = [n for n in names if n == wanted["name"]]
        found = [
            v
            for n in names
            for v in every(self._do, caller, registry_ops.versions, name=n)
            if "run_id" not in wanted or v.run_id == wanted["run_id"]
        ]
        page, following = _page(found, page_token, max_results)
        return {"model_versions": [_model_version(v) for v in page], **following}

    def get_download_uri(
        self, credentials: Credentials, name: str = Query(), version: str = Query()
    ) -> dict[str, Any]:
        caller = self._caller(credentials, "viewer")
        number = str(_version_number(version))
        found = self._do(caller, registry_ops.get_version, name=name, which=number)
        return {"artifact_uri": _version_uri(found)}

    def _registered_model(self, caller: str | None, name: str) -> dict[str, Any]:
        versions = list(every(self._do, caller, registry_ops.versions, name=name))
        summary = next(
            m for m in every(self._do, caller, registry_ops.list_models) if m.name == name
        )
        created = versions[0].created_at if versions else time.time()
        updated = summary.updated_at or created
        return {
            "name": name,
            "creation_timestamp": _ms(created),
            "last_updated_timestamp": _ms(updated),
            "latest_versions": [_model_version(versions[-1])] if versions else [],
            "aliases": [
                {"alias": alias, "version": str(number)}
                for alias, number in sorted(summary.aliases.items())
            ],
        }

    def _source(self, caller: str | None, source: str, run_id: str | None) -> tuple[str, str]:
        """(run id, folder of its outputs) that a model version's source names: models:/<id>,
        runs:/<run id>/<path>, or this server's mlflow-artifacts:/ URI of either."""
        text = source.strip()
        if text.startswith("models:/m-"):
            text = "models/" + text[len("models:/") :]
        elif text.startswith("runs:/"):
            text = "runs/" + text[len("runs:/") :]
        elif text.startswith("mlflow-artifacts:"):
            text = text[len("mlflow-artifacts:") :]
        else:
            raise MlflowError(
                400,
                "INVALID_PARAMETER_VALUE",
                f"This server registers models it stores (runs:/, models:/m-..., "
                f"mlflow-artifacts:/), not {source!r}.",
            )
        found_run, folder = self._locate(caller, text, folder=True)
        if run_id and run_id != found_run:
            raise MlflowError(
                400,
                "INVALID_PARAMETER_VALUE",
                f"The source {source!r} belongs to run {found_run}, not {run_id}.",
            )
        if not folder:
            raise MlflowError(400, "INVALID_PARAMETER_VALUE", "The source names no model folder.")
        return found_run, folder

    # --- artifacts ------------------------------------------------------------------------

    def list_artifacts(self, credentials: Credentials, path: str = Query("")) -> dict[str, Any]:
        caller = self._caller(credentials, "viewer")
        stored, folder, hidden = self._tree(caller, path, folder=True)
        if folder in stored:  # a file lists as itself
            return {"files": [_file(posixpath.basename(folder), stored[folder])]}
        if folder.split("/")[0] in hidden:
            return {"files": []}
        prefix = f"{folder}/" if folder else ""
        files: dict[str, dict[str, Any]] = {}
        for name, content_of in stored.items():
            if name.startswith(prefix):
                head, _, rest = name[len(prefix) :].partition("/")
                if head not in hidden:
                    files[head] = (
                        {"path": head, "is_dir": True} if rest else _file(head, content_of)
                    )
        return {"files": [files[head] for head in sorted(files)]}

    def download_artifact(self, credentials: Credentials, path: str) -> FileResponse:
        caller = self._caller(credentials, "viewer")
        stored, name, _ = self._tree(caller, path)
        found = stored.get(name)
        if found is None:
            raise MlflowError(404, "RESOURCE_DOES_NOT_EXIST", f"No artifact is stored at {path!r}.")
        return verified_file(self.workspace.artifacts, found.digest, posixpath.basename(name))

    def _tree(
        self, caller: str | None, path: str, *, folder: bool = False
    ) -> tuple[dict[str, _Stored], str, set[str]]:
        """The files an artifact path reaches into (name -> stored content), the name it
        asks for among them, and the names a listing leaves out."""
        kind, owner, name = _artifact_path(path, folder=folder)
        if kind == "registry":
            model, _, number = owner.rpartition("/")
            record = self._do(caller, registry_ops.get_version, name=model, which=number)
            manifest = json.loads(self.workspace.artifacts.get_bytes(record.digest))
            files = {f["path"]: _Stored(f["digest"], f["size"]) for f in manifest["files"]}
            return files, name, set()
        run_id, name = self._locate(caller, path, folder=folder)
        outputs = {n: _Stored(r.digest, r.size) for n, r in self._outputs(caller, run_id).items()}
        hidden: set[str] = set()
        if kind == "runs":
            # The client lists a run's models by themselves (under their names): not twice.
            page = self._do(
                caller, models_ops.search_logged_models, run_id=run_id, page_size=10_000
            )
            hidden = {m.name for m in page.models}
        return outputs, name, hidden

    async def upload_artifact(self, request: Request, credentials: Credentials, path: str) -> dict:
        caller = self._caller(credentials, "editor")
        run_id, name = self._locate(caller, path)
        limit = self.workspace.settings.server_max_upload_mb * 1024 * 1024
        try:
            async with received(request, limit) as upload:
                digest = await asyncio.to_thread(self.workspace.artifacts.put_file, upload.path)
        except TooLarge as refused:
            raise MlflowError(413, "RESOURCE_LIMIT_EXCEEDED", refused.message) from None
        link = {"direction": "output", "name": name, "digest": digest, "kind": "file"}
        await asyncio.to_thread(
            self._do, caller, ops.link_artifact, run_id=run_id, link={**link, "size": upload.size}
        )
        return {}

    def _locate(self, caller: str | None, path: str, *, folder: bool = False) -> tuple[str, str]:
        """(run id, artifact name) of ``runs/<run id>/<path>``, or of ``models/<model id>/<path>``
        (the run's outputs under the model's name)."""
        kind, owner, name = _artifact_path(path, folder=folder)
        if kind == "registry":
            raise MlflowError(
                400, "INVALID_PARAMETER_VALUE", "A registered version's files cannot change."
            )
        if kind == "runs":
            return owner, name
        found = self._do(caller, models_ops.get_logged_model, model_id=owner)
        return found.run_id, posixpath.join(found.name, name) if name else found.name

    def _outputs(self, caller: str | None, run_id: str) -> dict[str, Any]:
        records = every(self._do, caller, ops.list_artifacts, run_id=run_id)
        return {r.name: r for r in records if r.direction == "output"}


# --- MLflow's JSON ------------------------------------------------------------------------


def _experiment(record: Any) -> dict[str, Any]:
    return {
        "experiment_id": record.id,
        "name": record.name,
        "artifact_location": "mlflow-artifacts:/runs",
        "lifecycle_stage": "active",
        "creation_time": _ms(record.created_at),
        "last_update_time": _ms(record.created_at),
        "tags": [],
    }


def _run(record: RunRecord, experiment_id: str, metrics: list[MetricSummary]) -> dict[str, Any]:
    info: dict[str, Any] = {
        "run_id": record.id,
        "run_uuid": record.id,
        "run_name": record.tags.get("mlflow.runName", record.name or ""),
        "experiment_id": experiment_id,
        "user_id": record.user,
        "status": record.status.upper(),
        "start_time": _ms(record.start_time),
        "artifact_uri": f"mlflow-artifacts:/runs/{record.id}",
        "lifecycle_stage": "active",
    }
    if record.end_time is not None:
        info["end_time"] = _ms(record.end_time)
    return {
        "info": info,
        "data": {
            "metrics": [
                {
                    "key": m.key,
                    "value": _number(m.value),
                    "timestamp": _ms(m.timestamp),
                    "step": m.step,
                }
                for m in metrics
            ],
            "params": [{"key": k, "value": _text(v)} for k, v in record.params.items()],
            "tags": [{"key": k, "value": v} for k, v in record.tags.items()],
        },
        "inputs": {},
    }


_MODEL_STATUSES = {
    "LOGGED_MODEL_PENDING": "pending",
    "LOGGED_MODEL_READY": "ready",
    "LOGGED_MODEL_UPLOAD_FAILED": "failed",
}
_MLFLOW_MODEL_STATUSES = {loopml: mlflow for mlflow, loopml in _MODEL_STATUSES.items()}


def _logged_model(record: Any) -> dict[str, Any]:
    return {
        "info": {
            "model_id": record.id,
            "experiment_id": record.experiment_id,
            "name": record.name,
            "artifact_uri": f"mlflow-artifacts:/models/{record.id}",
            "creation_timestamp_ms": _ms(record.created_at),
            "last_updated_timestamp_ms": _ms(record.updated_at),
            "model_type": record.model_type or "",
            "source_run_id": record.run_id,
            "status": _MLFLOW_MODEL_STATUSES[record.status],
            "tags": [{"key": k, "value": v} for k, v in record.tags.items()],
        },
        "data": {"params": [{"key": k, "value": v} for k, v in record.params.items()]},
    }


def _equalities(text: str | None, fields: tuple[str, str], what: str) -> dict[str, str]:
    """The fields a search asks to equal what (``name = 'churn' and run_id = '...'``), of
    the two this server filters ``what`` by."""
    wanted: dict[str, str] = {}
    pattern = rf"\s*({fields[0]}|{fields[1]})\s*=\s*'([^']*)'\s*"
    for clause in re.split(r"\s+and\s+", text or "", flags=re.I):
        if not clause.strip():
            continue
        match = re.fullmatch(pattern, clause)
        if match is None:
            raise MlflowError(
                400,
                "INVALID_PARAMETER_VALUE",
                f"This server filters {what} by {fields[0]} = '...' and {fields[1]} = '...' "
                f"only, not {clause.strip()!r}.",
            )
        wanted[match.group(1)] = match.group(2)
    return wanted


def _page(items: list[Any], token: str | None, size: int) -> tuple[list[Any], dict[str, str]]:
    """One page of a listing from a page token (an offset), and the next page's token."""
    start = _offset(token)
    page = items[start : start + size]
    following = start + len(page)
    return page, {"next_page_token": str(following)} if following < len(items) else {}


def _model_version(record: Any) -> dict[str, Any]:
    return {
        "name": record.name,
        "version": str(record.version),
        "creation_timestamp": _ms(record.created_at),
        "last_updated_timestamp": _ms(record.created_at),
        "current_stage": "None",
        "description": record.description or "",
        "user_id": record.created_by,
        "source": _version_uri(record),
        "run_id": record.run_id or "",
        "status": "READY",
        "aliases": list(record.aliases),
    }


def _version_uri(record: Any) -> str:
    return f"mlflow-artifacts:/registry/{record.name}/{record.version}"


def _version_number(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= 2**31 - 1:
        raise MlflowError(400, "INVALID_PARAMETER_VALUE", f"{text!r} is not a version number.")
    return int(text)


@dataclasses.dataclass(frozen=True)
class _Stored:
    """A file's content in the artifact store."""

    digest: str
    size: int


def _file(name: str, record: Any) -> dict[str, Any]:
    return {"path": name, "is_dir": False, "file_size": record.size}


def _value(metric: _Metric | _LogMetric) -> tuple[str, float, int, float]:
    moment = metric.timestamp / 1000 if metric.timestamp else time.time()
    return (metric.key, metric.value, metric.step, moment)


def _ms(seconds: float) -> int:
    """Seconds as MLflow's milliseconds, within int64 (loopml stores times as doubles)."""
    milliseconds = seconds * 1000
    if math.isnan(milliseconds):
        return 0
    return round(min(max(milliseconds, -(2.0**63)), 2.0**63 - 1024))


def _number(value: float) -> float | str:
    """NaN and infinities as MLflow's clients read them."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _offset(token: str | None) -> int:
    if not token:
        return 0
    if not token.isdigit():
        raise MlflowError(400, "INVALID_PARAMETER_VALUE", f"Invalid page token {token!r}.")
    return int(token)


def _artifact_path(path: str, *, folder: bool = False) -> tuple[str, str, str]:
    """(kind, owner, name) of ``runs/<run id>/<name>``, ``models/<model id>/<name>`` or
    ``registry/<model>/<version>/<name>``; names that try to leave them are refused."""
    parts = path.strip("/").split("/")
    if len(parts) >= 3 and parts[0] == "registry" and parts[2].isdigit():
        parts = [parts[0], f"{parts[1]}/{parts[2]}", *parts[3:]]
    known = len(parts) >= 2 and (
        (parts[0] == "runs" and re.fullmatch(r"[0-9a-f]{16}", parts[1]))
        or (parts[0] == "models" and re.fullmatch(r"m-[0-9a-f]{32}", parts[1]))
        or (parts[0] == "registry" and "/" in parts[1])
    )
    if not known:
        raise MlflowError(
            404,
            "RESOURCE_DOES_NOT_EXIST",
            f"No artifact is stored at {path!r}: this server keeps artifacts at "
            "runs/<run id>/<path>, models/<model id>/<path> and registry/<model>/<version>.",
        )
    rest = [p for p in parts[2:] if p not in ("", ".")]
    if any(p == ".." or "\\" in p or "\x00" in p for p in rest):
        raise MlflowError(400, "INVALID_PARAMETER_VALUE", f"Invalid artifact path {path!r}.")
    if not rest and not folder:
        raise MlflowError(400, "INVALID_PARAMETER_VALUE", "An artifact path names a file.")
    return parts[0], parts[1], "/".join(rest)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --- MLflow's search language -------------------------------------------------------------

_ATTRIBUTES = {
    "run_id": "id",
    "run_name": "name",
    "status": "status",
    "user_id": "user",
    "start_time": "start_time",
    "end_time": "end_time",
}
_PREFIXES = ("attributes.", "attribute.", "attr.", "run.")
_STATUS_VALUE = re.compile(r"(\bstatus\s*(?:=|!=|<>)\s*)'([A-Za-z]+)'")
_FIELD = re.compile(
    r"(?<![\w.`])((?:attributes|attribute|attr|run)\.)?(run_id|run_name|status|user_id|start_time|end_time)\b"
)
_NAMESPACE = re.compile(r"\b(metric|param|tag)\.")


def translate_filter(text: str | None) -> str | None:
    """MLflow's filter string in loopml's --where language, which shares its form
    (``metrics.rmse < 1 and params.alpha = '0.5'``); MLflow's attribute names and status
    words are renamed."""
    if not text or not text.strip():
        return None
    found = _NAMESPACE.sub(lambda m: f"{m.group(1)}s.", text)
    found = _FIELD.sub(lambda m: _ATTRIBUTES[m.group(2)], found)
    return _STATUS_VALUE.sub(lambda m: f"{m.group(1)}'{m.group(2).lower()}'", found)


def translate_order(text: str) -> str:
    """``metrics.rmse DESC`` as loopml's ``-metrics.rmse``."""
    words = text.split()
    if not words:
        raise MlflowError(400, "INVALID_PARAMETER_VALUE", "An empty order_by clause.")
    field = _NAMESPACE.sub(lambda m: f"{m.group(1)}s.", words[0])
    for prefix in _PREFIXES:
        if field.startswith(prefix):
            field = field[len(prefix) :]
    field = _ATTRIBUTES.get(field, field)
    direction = words[1].upper() if len(words) > 1 else "ASC"
    if direction not in ("ASC", "DESC") or len(words) > 2:
        raise MlflowError(400, "INVALID_PARAMETER_VALUE", f"Invalid order_by clause {text!r}.")
    return ("-" if direction == "DESC" else "") + field


def _name_filter(text: str) -> Callable[[str], bool]:
    match = re.fullmatch(r"\s*(?:attribute\.)?name\s*(=|!=|LIKE|ILIKE)\s*'(.*)'\s*", text, re.I)
    if match is None:
        raise MlflowError(
            400,
            "INVALID_PARAMETER_VALUE",
            f"This server filters experiments by name only (name = '...'), not {text!r}.",
        )
    op, value = match.group(1).upper(), match.group(2)
    if op in ("LIKE", "ILIKE"):
        pattern = re.compile(
            "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in value),
            re.I if op == "ILIKE" else 0,
        )
        return lambda name: pattern.fullmatch(name) is not None
    return (lambda name: name == value) if op == "=" else (lambda name: name != value)
