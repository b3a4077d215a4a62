"""The online server: one FastAPI app answering three dialects for one registered model.

Every request is read into rows, checked against the model's contract (a bad request gets a
422 listing each problem, and is logged as rejected), scored, and logged to the prediction log
before the answer leaves: each prediction has an id, returned in the body and, for the
request, in the ``X-Request-Id`` header.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from loopml.events.log import writer
from loopml.ids import new_id
from loopml.serving import payloads
from loopml.serving.model import ServedModel, load_served
from loopml.serving.payloads import PayloadError
from loopml.workspace import Workspace, current_workspace

SCORE_BUCKETS = tuple(i / 10 for i in range(11))


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("endpoint", "version", "dialect", "status")
        self.requests = Counter(
            "loopml_requests", "Requests answered", labels, registry=self.registry
        )
        self.latency = Histogram(
            "loopml_request_seconds",
            "Time to answer a request",
            ("endpoint", "version"),
            registry=self.registry,
        )
        self.scores = Histogram(
            "loopml_prediction_score",
            "Scores predicted",
            ("endpoint", "version"),
            buckets=SCORE_BUCKETS,
            registry=self.registry,
        )


class Server:
    """Serves one model alias; the app is ``Server(...).app``."""

    def __init__(self, name: str, alias: str = "champion", *, workspace: Workspace | None = None):
        self.workspace = workspace or current_workspace()
        self.name, self.alias = name, alias
        self.served: ServedModel = load_served(f"{name}@{alias}", self.workspace)
        self.log = writer(self.workspace, "predictions")
        self.metrics = _Metrics()
        self.app = self._routes(FastAPI(title=f"loopml: {name}@{alias}", version="1"))

    def _routes(self, app: FastAPI) -> FastAPI:
        app.post("/predict")(self.predict)
        app.post("/invocations")(self.invocations)
        app.get("/v2/health/live")(self.live)
        app.get("/v2/health/ready")(self.ready)
        app.get("/v2/models/{model}")(self.metadata)
        app.post("/v2/models/{model}/infer")(self.infer)
        app.get("/metrics")(self.prometheus)
        return app

    async def predict(self, request: Request) -> Response:
        """Score JSON records: {"records": [...]}, a list of records, or one record."""
        return await self._answer(request, "predict", payloads.records_frame, self._records_body)

    async def invocations(self, request: Request) -> Response:
        """MLflow's scoring protocol: dataframe_split, dataframe_records, instances, inputs."""
        return await self._answer(request, "mlflow", payloads.mlflow_frame, self._mlflow_body)

    async def infer(self, model: str, request: Request) -> Response:
        """Open Inference Protocol V2 inference with JSON tensors."""
        if model != self.name:
            return self._unknown(model)
        return await self._answer(request, "v2", payloads.v2_frame, self._v2_body)

    async def live(self) -> dict[str, bool]:
        return {"live": True}

    async def ready(self) -> dict[str, bool]:
        return {"ready": True}

    async def metadata(self, model: str) -> Response:
        if model != self.name:
            return self._unknown(model)
        features = self.served.features or []
        return JSONResponse(
            {
                "name": self.name,
                "versions": [str(self.served.record.version)],
                "platform": f"loopml-{self.served.record.flavor}",
                "inputs": [{"name": f, "datatype": "BYTES", "shape": [-1]} for f in features],
                "outputs": [
                    {"name": "score", "datatype": "FP64", "shape": [-1]},
                    {"name": "label", "datatype": "BYTES", "shape": [-1]},
                ],
            }
        )

    def _unknown(self, model: str) -> Response:
        message = f"Unknown model {model!r}; this server has {self.name!r}."
        return JSONResponse({"error": message}, 404)

    async def prometheus(self) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def _answer(self, request: Request, dialect: str, read: Any, shape: Any) -> Response:
        started, cpu = time.perf_counter(), time.process_time()
        request_id = new_id()
        version = str(self.served.record.version)
        try:
            frame = read(await _body(request))
            self.served.check(frame)
            scores, labels = self.served.predict(frame)
        except PayloadError as error:
            self._reject(request_id, dialect, error, started)
            self.metrics.requests.labels(self.name, version, dialect, "rejected").inc()
            return JSONResponse(
                {"id": request_id, "problems": error.problems},
                422,
                headers={"X-Request-Id": request_id},
            )
        ids = [new_id() for _ in range(len(frame))]
        elapsed = time.perf_counter() - started
        self._log(
            request_id, ids, dialect, frame, scores, labels, elapsed, time.process_time() - cpu
        )
        self.metrics.requests.labels(self.name, version, dialect, "ok").inc()
        self.metrics.latency.labels(self.name, version).observe(elapsed)
        for score in scores:
            self.metrics.scores.labels(self.name, version).observe(float(score))
        body = shape(request_id, ids, scores, labels)
        return JSONResponse(body, headers={"X-Request-Id": request_id})

    def _records_body(self, request_id: str, ids: list[str], scores: Any, labels: list) -> dict:
        return {
            "id": request_id,
            "model": self.served.record.ref,
            "predictions": [
                {"id": i, "score": float(s), "label": label}
                for i, s, label in zip(ids, scores, labels, strict=True)
            ],
        }

    def _mlflow_body(self, request_id: str, ids: list[str], scores: Any, labels: list) -> dict:
        return {**payloads.mlflow_answer([float(s) for s in scores]), "ids": ids}

    def _v2_body(self, request_id: str, ids: list[str], scores: Any, labels: list) -> dict:
        return payloads.v2_answer(self.name, self.served.record.version, request_id, scores, labels)

    def _log(self, request_id, ids, dialect, frame, scores, labels, seconds, cpu) -> None:
        now, version = time.time(), self.served.record.version
        rows = json.loads(frame.to_json(orient="records", date_format="iso"))
        share = 1000.0 / max(len(ids), 1)
        self.log.append_many(
            [
                {
                    "id": i,
                    "request_id": request_id,
                    "time": now,
                    "endpoint": self.name,
                    "version": version,
                    "dialect": dialect,
                    "inputs": row,
                    "outputs": {"score": float(s), "label": label},
                    "latency_ms": seconds * share,
                    "cpu_ms": cpu * share,
                    "status": "ok",
                }
                for i, row, s, label in zip(ids, rows, scores, labels, strict=True)
            ]
        )

    def _reject(self, request_id: str, dialect: str, error: PayloadError, started: float) -> None:
        self.log.append(
            {
                "id": request_id,
                "request_id": request_id,
                "time": time.time(),
                "endpoint": self.name,
                "version": self.served.record.version,
                "dialect": dialect,
                "problems": error.problems,
                "latency_ms": (time.perf_counter() - started) * 1000,
                "status": "rejected",
            }
        )


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PayloadError([payloads.problem("body", f"not valid JSON: {error}")]) from None


def create_app(
    name: str, alias: str = "champion", *, workspace: Workspace | None = None
) -> FastAPI:
    """The FastAPI app serving NAME@ALIAS."""
    return Server(name, alias, workspace=workspace).app


SERVE_ENV = "LOOPML_SERVE_MODEL"


def app_from_environment() -> FastAPI:
    """The app of NAME@ALIAS in $LOOPML_SERVE_MODEL: the factory each uvicorn worker calls."""
    import os

    name, _, alias = os.environ[SERVE_ENV].partition("@")
    return create_app(name, alias or "champion")
