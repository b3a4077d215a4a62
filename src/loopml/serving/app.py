"""The online server: one FastAPI app answering three dialects for one registered model.

Every request is read into rows, checked against the model's contract (a bad request gets a
422 listing each problem, and is logged as rejected), scored, and logged to the prediction log
before the answer leaves: each prediction has an id, returned in the body and, for the
request, in the ``X-Request-Id`` header.

What answers follows the endpoint's deployment (live.py): the champion, a canary for its share
of traffic, and a shadow that gets a copy of every request on a thread of its own, after the
answer is on its way. A background task follows the registry and the deployment, judges the
canary's guardrails, shows the last monitored window on /metrics, and seals closed log
segments into Parquet. Monitoring and retraining are not done here: the loop's scheduler
(loop/schedule.py) does them, once for all servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from loopml.events.log import compact, seal, writer
from loopml.ids import new_event_ids, new_id
from loopml.registry.api import rollback
from loopml.serving import operations as ops
from loopml.serving import payloads
from loopml.serving.batching import Batcher
from loopml.serving.deployments import raise_alert
from loopml.serving.feedback import RecentIds, items_of, labelled, record_feedback
from loopml.serving.live import Live
from loopml.serving.model import ServedModel
from loopml.serving.payloads import PayloadError
from loopml.settings import Settings
from loopml.store import tokens as tokens_repo
from loopml.store.monitoring import WindowRecord
from loopml.workspace import Workspace, current_workspace

SCORE_BUCKETS = tuple(i / 10 for i in range(11))
FEW_ROWS = 16  # requests up to this many rows are logged line by line
SHADOW_QUEUE = 64  # shadow requests waiting at most; more are dropped, and counted
READY_WINDOW = 20  # the champion's latest answers readiness looks at
TOKEN_SECONDS = 5.0  # how long a model server believes a valid token
SWAP_MIN_REQUESTS = 20  # a new champion's first requests judged against the error-rate SLO
SWAP_JUDGED = 1000  # ... up to this many; after them monitoring judges it
SWAP_ERROR_RATE = 0.05  # ... against this error rate when the SLOs set no max_error_rate
READY_FAILURES = 5  # ... of which at least this many, all failed, make it not ready
SEAL_SECONDS = 60.0
WINDOW_SECONDS = 1.0  # how often /metrics looks for a newer monitored window
HOUR = 3600.0
TICK_SECONDS = 0.25

log = logging.getLogger("loopml.serving")


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("endpoint", "version", "role", "dialect", "status")
        self.requests = Counter(
            "loopml_requests", "Requests answered", labels, registry=self.registry
        )
        self.latency = Histogram(
            "loopml_request_seconds",
            "Time to answer a request",
            ("endpoint", "version", "role"),
            registry=self.registry,
        )
        self.shadow_dropped = Counter(
            "loopml_shadow_dropped",
            "Shadow requests dropped because the shadow fell behind",
            ("endpoint",),
            registry=self.registry,
        )
        self.scores = ScoreHistogram(self.registry)
        self.monitored = Gauge(
            "loopml_monitor_value",
            "Each value the last monitored window measured: the metric, its key (a feature, "
            "a version, an SLO) and the bound (value, or an interval's low or high end)",
            ("endpoint", "metric", "key", "bound"),
            registry=self.registry,
        )
        self.window_end = Gauge(
            "loopml_monitor_window_end_seconds",
            "When the last monitored window of the endpoint ended (seconds since the "
            "epoch), by its status: a schedule that stopped shows as a value that ages",
            ("endpoint", "status"),
            registry=self.registry,
        )
        self.shown: str | None = None  # the id of the window shown

    def show_window(self, window: WindowRecord | None) -> None:
        """Expose the values of the endpoint's last monitored window (the loop's schedule
        records them; every server process shows the same)."""
        if window is None or window.id == self.shown:
            return
        self.shown = window.id
        self.window_end.clear()
        self.window_end.labels(window.endpoint, window.status).set(window.end)
        self.monitored.clear()  # a value the newest window did not measure is not shown
        for found in window.points:
            for bound in ("value", "low", "high"):
                measured = getattr(found, bound)
                if measured is not None:
                    self.monitored.labels(window.endpoint, found.metric, found.key, bound).set(
                        measured
                    )


class ScoreHistogram:
    """The histogram of predicted scores by endpoint and version, fed a whole request at once
    (Prometheus' Histogram takes one value per call)."""

    def __init__(self, registry: CollectorRegistry, edges: tuple[float, ...] = SCORE_BUCKETS):
        self.edges = np.asarray(edges, dtype=np.float64)
        self._counts: dict[tuple[str, str], np.ndarray] = {}
        self._sums: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def observe(self, labels: tuple[str, str], scores: np.ndarray) -> None:
        finite = scores[np.isfinite(scores)]
        counts = np.bincount(
            np.searchsorted(self.edges, finite, side="left"), minlength=len(self.edges) + 1
        )
        with self._lock:
            self._counts[labels] = self._counts.get(labels, 0) + counts
            self._sums[labels] = self._sums.get(labels, 0.0) + float(finite.sum())

    def collect(self) -> Any:
        family = HistogramMetricFamily(
            "loopml_prediction_score", "Scores predicted", labels=["endpoint", "version"]
        )
        with self._lock:
            for labels, counts in self._counts.items():
                total = np.cumsum(counts)
                buckets = [
                    (floatToGoString(e), int(c))
                    for e, c in zip(self.edges, total[:-1], strict=True)
                ]
                buckets.append(("+Inf", int(total[-1])))
                family.add_metric(list(labels), buckets, self._sums[labels])
        yield family


class Server:
    """Serves one endpoint (a registered model); the app is ``Server(...).app``.

    alias: serve this alias (or version) as the champion, whatever the deployment says.
    follow: run the background task that follows the registry and judges the canary.
    It serves, reloads and checks guardrails; monitoring and retraining run in the loop's
    scheduler (``loopml loop serve``, loop/schedule.py).
    """

    def __init__(
        self,
        name: str,
        alias: str | None = None,
        *,
        workspace: Workspace | None = None,
        follow: bool = True,
    ):
        self.workspace = workspace or current_workspace()
        self.settings = self.workspace.settings
        self.name = name
        self.live = Live(name, self.workspace, champion=alias)
        self.log = writer(self.workspace, "predictions")
        self.metrics = _Metrics()
        self.recent = RecentIds()
        self.outcomes: deque[tuple[int, bool]] = deque(maxlen=READY_WINDOW)  # champion's
        self.swap: _Swap | None = None  # a champion that replaced another, until judged
        self.batcher = Batcher()
        # A valid token is believed for a few seconds: predictions are not slowed by a
        # look-up each, and a revoked token stops within TOKEN_SECONDS.
        trust = tokens_repo.Trust.from_settings(self.settings)
        self.gate = tokens_repo.Gate(self.workspace.metadata, remember=TOKEN_SECONDS, trust=trust)
        self._shadow_pool = ThreadPoolExecutor(1, thread_name_prefix="loopml-shadow")
        self._shadow_slots = threading.BoundedSemaphore(SHADOW_QUEUE)
        title = f"loopml: {name}@{alias or self.live.spec.champion}"
        lifespan = self._lifespan if follow else None
        # the docs pages' scripts and styles are served from the package, not a CDN
        app = FastAPIOffline(title=title, version="1", lifespan=lifespan)
        self.app = self._routes(app)

    def _routes(self, app: FastAPI) -> FastAPI:
        refused = payloads.openapi_responses(408, 413, 415, 422, 500)
        for path, dialect, handler in (
            ("/predict", "predict", self.predict),
            ("/invocations", "mlflow", self.invocations),
        ):
            app.post(path, openapi_extra=payloads.openapi_body(dialect), responses=refused)(handler)
        app.post(
            "/feedback",
            openapi_extra=payloads.openapi_body("feedback"),
            responses=payloads.openapi_responses(408, 413, 415, 422),
        )(self.feedback)
        app.get("/deployment")(self.deployment)
        app.get("/v2/health/live")(self.live_route)
        app.get("/v2/health/ready", responses=payloads.openapi_responses(503))(self.ready)
        app.get("/v2/models/{model}", responses=payloads.openapi_responses(404))(self.metadata)
        app.post(
            "/v2/models/{model}/infer",
            openapi_extra=payloads.openapi_body("v2"),
            responses=payloads.openapi_responses(404, 408, 413, 415, 422, 500),
        )(self.infer)
        app.get(
            "/metrics",
            response_class=PlainTextResponse,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
        )(self.prometheus)
        return app

    @asynccontextmanager
    async def _lifespan(self, app: FastAPI):
        task = asyncio.create_task(self._follow())
        try:
            yield
        finally:
            task.cancel()
            self._shadow_pool.shutdown(wait=False, cancel_futures=True)

    async def _refused(self, request: Request, role: str | None) -> Response | None:
        """The answer to a caller without a valid token of the role (None: let it in)."""
        if role is None:
            return None
        peer = request.client.host if request.client else None
        try:
            presented = self.gate.read(request.headers, peer)
            await asyncio.to_thread(self.gate.caller, presented, role)
        except tokens_repo.Refused as refused:
            body = {"error": {"type": "AccessDeniedError", "message": refused.message}}
            challenge = {"WWW-Authenticate": tokens_repo.CHALLENGE} if refused.status == 401 else {}
            return JSONResponse(body, refused.status, headers=challenge)
        return None

    async def predict(self, request: Request) -> Response:
        """Score JSON records: {"records": [...]}, a list of records, or one record."""
        if refused := await self._refused(request, self.settings.serve_token_role):
            return refused
        return await self._answer(request, "predict", payloads.records_frame, self._records_body)

    async def invocations(self, request: Request) -> Response:
        """MLflow's scoring protocol: dataframe_split, dataframe_records, instances, inputs."""
        if refused := await self._refused(request, self.settings.serve_token_role):
            return refused
        return await self._answer(request, "mlflow", payloads.mlflow_frame, self._mlflow_body)

    async def infer(self, model: str, request: Request) -> Response:
        """Open Inference Protocol V2 inference with JSON tensors."""
        if refused := await self._refused(request, self.settings.serve_token_role):
            return refused
        if model != self.name:
            return self._unknown(model)
        return await self._answer(request, "v2", payloads.v2_frame, self._v2_body)

    async def feedback(self, request: Request) -> Response:
        """Labels for earlier predictions: {"id": ..., "label": ...}, a list of them, or
        {"feedback": [...]}. Answers how many were accepted and which ids are unknown.
        Labels train the next model: they need an editor's token where there are tokens."""
        if refused := await self._refused(request, "editor"):
            return refused
        try:
            items = items_of(await _body(request, self.settings))
            if len(items) > self.settings.serve_max_rows:
                message = f"{len(items):,} labels is more than {self.settings.serve_max_rows:,}"
                raise PayloadError([payloads.problem("feedback", message)], 413)
        except PayloadError as error:
            return JSONResponse({"problems": error.problems}, error.status)
        result = await asyncio.to_thread(
            record_feedback, items, recent=self.recent, workspace=self.workspace
        )
        return JSONResponse(result.to_dict())

    async def deployment(self, request: Request) -> Any:
        """What serves this endpoint now: the deployment, its revision and each role's
        version."""
        if refused := await self._refused(request, self.settings.serve_token_role):
            return refused
        live = self.live
        return {
            "endpoint": self.name,
            "revision": live.revision,
            "deployment": live.spec.model_dump(mode="json"),
            "serving": {role: served.record.ref for role, served in live.roles.items()},
        }

    async def live_route(self) -> dict[str, bool]:
        return {"live": True}

    async def ready(self) -> Response:
        """Ready while the champion answers. Once each of its latest answers failed (at
        least READY_FAILURES of the last READY_WINDOW), it is tried on the last rows it
        answered well: ready if it answers them, else 503 with why. The probe keeps a server
        that a load balancer stopped sending to from staying unready for ever."""
        champion = self.live.champion
        version = champion.record.version
        seen = [ok for served, ok in self.outcomes if served == version]
        if len(seen) < READY_FAILURES or any(seen):
            return JSONResponse({"ready": True})
        sample = self.live.sample
        if sample is not None:
            try:
                await asyncio.to_thread(champion.predict, sample)
            except Exception as error:  # the probe's verdict, said in the answer
                log.warning("readiness probe of version %s failed: %r", version, error)
            else:
                self.outcomes.append((version, True))
                return JSONResponse({"ready": True})
        reason = f"version {version} failed its last {len(seen)} requests"
        return JSONResponse({"ready": False, "reason": reason}, 503)

    async def metadata(self, model: str, request: Request) -> Response:
        if refused := await self._refused(request, self.settings.serve_token_role):
            return refused
        if model != self.name:
            return self._unknown(model)
        served = self.live.champion
        features = served.features or []
        return JSONResponse(
            {
                "name": self.name,
                "versions": [str(served.record.version)],
                "platform": f"loopml-{served.record.flavor}",
                "inputs": [
                    {"name": f, "datatype": served.datatype(f), "shape": [-1]} for f in features
                ],
                "outputs": [
                    {"name": "score", "datatype": "FP64", "shape": [-1]},
                    *([{"name": "label", "datatype": "BYTES", "shape": [-1]}] * served.classifies),
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
        canary = self.live.spec.canary
        key = request.headers.get(canary.key) if canary else None
        role, served = self.live.route(key, request_id)
        try:
            body = await _body(request, self.settings)
            table = read(body)
            _bounded(table, self.settings.serve_max_rows, self.settings.serve_max_columns)
            table = _known(table, served, self.settings.serve_extra_columns)
            served.check(table)
            role, served, scores, array = await self._score(role, served, table)
            labels = array.tolist()
        except PayloadError as error:
            return self._rejected(request_id, dialect, role, served, error, started)
        except _Failed as failure:
            return self._failed(request_id, dialect, failure, started)
        ids = new_event_ids(table.num_rows)
        elapsed = time.perf_counter() - started
        used = time.process_time() - cpu
        self._log(
            _Answer(request_id, dialect, role, served, ids, table, scores, labels, elapsed, used)
        )
        self._count(role, served, dialect, elapsed, scores)
        if role == "champion":
            self.outcomes.append((served.record.version, True))
            self._judged(served, True)
        self.recent.add(ids, self.name)
        self.live.sample = table
        self._send_to_shadow(request_id, ids, dialect, table)
        answer = shape(request_id, ids, scores, labels, served, body)
        return _json(answer, {"X-Request-Id": request_id})

    async def _score(self, role: str, served: ServedModel, table: pa.Table) -> tuple:
        """(role, model, scores, labels) of the model that answered: a failing canary is
        counted against its guardrails and the champion answers instead, so callers never
        see the canary fail."""
        try:
            return (role, served, *await self.batcher.predict(served, table))
        except Exception as error:
            if role != "canary":
                raise _failure(served, error) from error
            self.live.guard.failed("canary")
            log.warning("canary %s failed, the champion answered: %r", served.record.ref, error)
        champion = self.live.champion
        try:
            return ("champion", champion, *await self.batcher.predict(champion, table))
        except Exception as error:
            raise _failure(champion, error) from error

    def _count(self, role, served, dialect, elapsed, scores) -> None:
        version = str(served.record.version)
        self.metrics.requests.labels(self.name, version, role, dialect, "ok").inc()
        self.metrics.latency.labels(self.name, version, role).observe(elapsed)
        self.metrics.scores.observe((self.name, version), scores)
        self.live.guard.answered(role, elapsed * 1000, scores)

    def _send_to_shadow(self, request_id, ids, dialect, table) -> None:
        shadow = self.live.roles.get("shadow")
        if shadow is None:
            return
        if not self._shadow_slots.acquire(blocking=False):
            self.metrics.shadow_dropped.labels(self.name).inc()
            return
        self._shadow_pool.submit(self._shadow, shadow, request_id, ids, dialect, table)

    def _shadow(self, shadow, request_id, ids, dialect, table) -> None:
        """Score a copy of a request with the shadow and log it beside the champion's."""
        try:
            started, cpu = time.perf_counter(), time.process_time()
            try:
                scores, labels = shadow.predict(table)
                labels, status = labels.tolist(), "ok"
            except Exception as error:
                log.warning("shadow %s failed: %r", shadow.record.ref, error)
                scores, labels = np.full(table.num_rows, np.nan), [None] * table.num_rows
                status = "error"
            elapsed = time.perf_counter() - started
            answer = _Answer(
                request_id,
                dialect,
                "shadow",
                shadow,
                new_event_ids(len(ids)),
                table,
                scores,
                labels,
                elapsed,
                time.process_time() - cpu,
                status,
                shadow_of=ids,
            )
            self._log(answer)
            version = str(shadow.record.version)
            self.metrics.requests.labels(self.name, version, "shadow", dialect, status).inc()
            self.metrics.latency.labels(self.name, version, "shadow").observe(elapsed)
        except Exception:  # the shadow must never take the server down
            log.exception("logging a shadow prediction failed")
        finally:
            self._shadow_slots.release()

    def _records_body(self, request_id, ids, scores, labels, served, body) -> dict:
        scores = scores.tolist()
        if served.classifies:
            predictions = [
                {"id": i, "score": s, "label": label}
                for i, s, label in zip(ids, scores, labels, strict=True)
            ]
        else:
            predictions = [{"id": i, "score": s} for i, s in zip(ids, scores, strict=True)]
        return {"id": request_id, "model": served.record.ref, "predictions": predictions}

    def _mlflow_body(self, request_id, ids, scores, labels, served, body) -> dict:
        return {**payloads.mlflow_answer([float(s) for s in scores]), "ids": ids}

    def _v2_body(self, request_id, ids, scores, labels, served, body) -> dict:
        """The request's own id when it gave one (V2's `id`), else the server's."""
        given = body.get("id") if isinstance(body, dict) else None
        answer_id = given if isinstance(given, str) and given else request_id
        shown = labels if served.classifies else None
        return payloads.v2_answer(self.name, served.record.version, answer_id, scores, shown)

    def _log(self, answer: _Answer) -> None:
        """One event per row, written with one system call before the answer leaves; inputs
        and outputs as ``input.<name>`` and ``output.<name>`` fields."""
        rows = answer.inputs.num_rows
        share = 1000.0 / max(rows, 1)
        common = {
            "request_id": answer.request_id,
            "time": time.time(),
            "endpoint": self.name,
            "version": answer.served.record.version,
            "role": answer.role,
            "dialect": answer.dialect,
            "latency_ms": answer.seconds * share,
            "cpu_ms": answer.cpu * share,
            "status": answer.status,
        }
        columns = {
            "id": answer.ids,
            **{f"input.{name}": answer.inputs.column(name) for name in answer.inputs.column_names},
            "output.score": answer.scores,
            "output.label": answer.labels,
        }
        if answer.shadow_of is not None:
            columns["shadow_of"] = answer.shadow_of
        self.log.append_lines(_json_lines(common, columns, rows))

    def _rejected(self, request_id, dialect, role, served, error, started) -> Response:
        self._log_failure(request_id, dialect, role, served, started, "rejected", error.problems)
        version = str(served.record.version)
        self.metrics.requests.labels(self.name, version, role, dialect, "rejected").inc()
        return JSONResponse(
            {"id": request_id, "error": _summary(error.problems), "problems": error.problems},
            error.status,
            headers={"X-Request-Id": request_id},
        )

    def _failed(self, request_id, dialect, failure, started) -> Response:
        served = failure.served
        self.outcomes.append((served.record.version, False))
        self._judged(served, False)
        message = f"{served.record.ref} failed to predict: {failure.error!r}"
        log.error("request %s: %s", request_id, message)
        problems = [payloads.problem("model", message)]
        self._log_failure(request_id, dialect, "champion", served, started, "error", problems)
        version = str(served.record.version)
        self.metrics.requests.labels(self.name, version, "champion", dialect, "error").inc()
        # the exception stays in the server's log and the prediction log, under the id: its
        # text can hold the model's internals or the caller's data
        told = f"the model failed to predict; request {request_id} in the prediction log says why"
        return JSONResponse(
            {"id": request_id, "error": told}, 500, headers={"X-Request-Id": request_id}
        )

    def _log_failure(self, request_id, dialect, role, served, started, status, problems) -> None:
        self.log.append(
            {
                "id": request_id,
                "request_id": request_id,
                "time": time.time(),
                "endpoint": self.name,
                "version": served.record.version,
                "role": role,
                "dialect": dialect,
                "problems": problems,
                "latency_ms": (time.perf_counter() - started) * 1000,
                "status": status,
            }
        )

    async def _follow(self) -> None:
        """Follow the registry and the deployment, judge the canary, show the last monitored
        window, seal closed segments (and hourly compact the log)."""
        due = {"reload": 0.0, "check": 0.0, "window": 0.0, "seal": 0.0}
        due["compact"] = time.monotonic() + HOUR
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now, spec = time.monotonic(), self.live.spec
            if now >= due["reload"]:
                before = self.live.champion.record.version
                await asyncio.to_thread(self._safely, self.live.refresh)
                if self.live.champion.record.version != before:
                    self.swap = _Swap(self.live.champion.record.version, before)
                due["reload"] = now + spec.reload_seconds
            if self.swap is not None and self.swap.due(self._error_limit()):
                await asyncio.to_thread(self._safely, self._roll_back_swap)
            if spec.canary is not None and now >= due["check"]:
                await asyncio.to_thread(self._safely, self._check)
                due["check"] = now + spec.check_seconds
            if now >= due["window"]:
                await asyncio.to_thread(self._safely, self._show_window)
                due["window"] = now + WINDOW_SECONDS
            if now >= due["seal"]:
                await asyncio.to_thread(self._safely, self._seal)
                due["seal"] = now + SEAL_SECONDS
            if now >= due["compact"]:
                await asyncio.to_thread(self._safely, self._compact)
                due["compact"] = now + HOUR

    def _judged(self, served: ServedModel, ok: bool) -> None:
        swap = self.swap
        if swap is not None and served.record.version == swap.version:
            swap.answered += 1
            swap.failed += not ok
            if swap.answered > SWAP_JUDGED:  # it kept its SLO: monitoring judges it now
                self.swap = None

    def _error_limit(self) -> float:
        """The error rate a new champion is judged against: the SLO's, else the default."""
        limit = self.live.spec.slos.max_error_rate
        return SWAP_ERROR_RATE if limit is None else limit

    def _roll_back_swap(self) -> None:
        """The champion that replaced another breaks the error-rate SLO on its first
        requests: the alias goes back to the one it replaced, unless another process or a
        person moved it meanwhile; the alias's history says why, and an alert is raised."""
        swap, limit = self.swap, self._error_limit()
        self.swap = None
        rate = swap.failed / swap.answered
        reason = (
            f"{self.name}@{swap.version} failed {swap.failed} of its first {swap.answered} "
            f"requests as champion ({rate:.0%} > the SLO's max_error_rate {limit:g}); back to "
            f"{self.name}@{swap.previous}"
        )
        moved = rollback(
            self.name, "champion", reason=reason, expected=swap.version, workspace=self.workspace
        )
        if moved is None:
            return
        log.error("rolled back: %s", reason)
        raise_alert(
            self.name,
            "champion_rolled_back",
            reason,
            {"version": swap.version, "previous": moved.to_version, "error_rate": rate},
            workspace=self.workspace,
        )
        self.live.refresh()

    def _check(self) -> None:
        canary = self.live.spec.canary
        if canary is None:
            return
        found = labelled(self.name, since=canary.started_at, workspace=self.workspace)
        self.live.check(found)

    def _show_window(self) -> None:
        self.metrics.show_window(ops.latest_window(self.workspace.metadata, self.name))

    def _compact(self) -> None:
        compact(workspace=self.workspace)

    def _seal(self) -> None:
        for kind in ("predictions", "feedback"):
            seal(kind, workspace=self.workspace)

    @staticmethod
    def _safely(work: Any) -> None:
        try:
            work()
        except Exception:  # the server keeps serving whatever its background work meets
            log.exception("background work of the server failed")


@dataclass
class _Swap:
    """A champion that replaced ``previous``, and how its first requests went."""

    version: int
    previous: int
    answered: int = 0
    failed: int = 0

    def due(self, limit: float | None) -> bool:
        """True once it has answered enough requests to be judged, and breaks ``limit``."""
        if limit is None or self.answered < SWAP_MIN_REQUESTS:
            return False
        return self.failed / self.answered > limit


@dataclass
class _Answer:
    """What one model answered to one request, as the log records it."""

    request_id: str
    dialect: str
    role: str
    served: ServedModel
    ids: list[str]
    inputs: pa.Table
    scores: np.ndarray
    labels: list[Any]
    seconds: float
    cpu: float
    status: str = "ok"
    shadow_of: list[str] | None = None


def _failure(served: ServedModel, error: Exception) -> Exception:
    """What a model's failure on a request is: rows it cannot read (a ValueError or
    TypeError, as a model without a contract meets a text among numbers) are the request's
    problem, answered 422; anything else is the model's, answered 500."""
    if isinstance(error, ValueError | TypeError):
        message = f"{served.record.ref} cannot score these rows: {error}"
        return PayloadError([payloads.problem("rows", message)])
    return _Failed(served, error)


class _Failed(Exception):
    """The model that had to answer failed on valid input."""

    def __init__(self, served: ServedModel, error: Exception) -> None:
        super().__init__(str(error))
        self.served, self.error = served, error


def _json(content: Any, headers: dict[str, str] | None = None, status: int = 200) -> Response:
    """A JSON answer, encoded by orjson (a non-finite number becomes null)."""
    body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status, headers, media_type="application/json")


def _summary(problems: list[dict[str, Any]]) -> str:
    """The problems in one line, for clients that show only an "error" text (V2's)."""
    return "; ".join(f"{p['location']}: {p['message']}" for p in problems)


def _json_lines(common: dict[str, Any], columns: dict[str, Any], rows: int) -> bytes:
    """The events of a request as JSON: a line per row for a few rows; for many, one line of
    the shared fields and a list per column (read back as a line per row)."""
    values = {
        name: column.to_pylist() if hasattr(column, "to_pylist") else list(column)
        for name, column in columns.items()
    }
    scores = np.asarray(columns["output.score"], dtype=np.float64)
    finite = np.isfinite(scores)
    values["output.score"] = (
        scores.tolist() if finite.all() else np.where(finite, scores, None).tolist()
    )
    if rows > FEW_ROWS:
        return orjson.dumps({**common, "columns": values}, default=str) + b"\n"
    lines = (
        orjson.dumps({**common, **{name: found[i] for name, found in values.items()}}, default=str)
        for i in range(rows)
    )
    return b"".join(line + b"\n" for line in lines)


async def _raw(request: Request, limit: int, timeout: float) -> bytes:
    """The request's body, refused (413) once it grows past ``limit`` bytes (a declared
    length above it before anything is read), or (408) when it has not all arrived within
    ``timeout`` seconds: a slow client cannot hold a worker's memory and time."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadError([_too_large(int(declared), limit)], 413)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadError([_too_large(size, limit)], 413)
                chunks.append(chunk)
    except TimeoutError:
        message = (
            f"the body did not arrive within {timeout:g} s ({size:,} bytes read); "
            "send it faster or raise serve_read_timeout"
        )
        raise PayloadError([payloads.problem("body", message)], 408) from None
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> dict[str, Any]:
    message = (
        f"the body is larger than {limit:,} bytes (at least {size:,}); send fewer rows a "
        "request (serve_max_body_bytes)"
    )
    return payloads.problem("body", message)


def _bounded(table: pa.Table, rows: int, columns: int) -> None:
    """A request table within the server's limits: rows (413) and columns (422)."""
    if table.num_rows > rows:
        message = f"{table.num_rows:,} rows is more than {rows:,} a request (serve_max_rows)"
        raise PayloadError([payloads.problem("rows", message)], 413)
    if table.num_columns > columns:
        message = (
            f"{table.num_columns:,} columns is more than {columns:,} a request (serve_max_columns)"
        )
        raise PayloadError([payloads.problem("columns", message)])


def _known(table: pa.Table, served: ServedModel, extra: str) -> pa.Table:
    """The request's columns the version knows; the others dropped, refused (422) or kept,
    as ``serve_extra_columns`` says."""
    unknown = served.extra(table.column_names) if extra != "log" else []
    if not unknown:
        return table
    if extra == "refuse":
        shown = ", ".join(unknown[:10]) + (", ..." if len(unknown) > 10 else "")
        message = (
            f"{len(unknown)} columns that {served.record.ref} does not know: {shown} "
            "(serve_extra_columns = refuse)"
        )
        raise PayloadError([payloads.problem("columns", message, rule="extra_column")])
    return table.drop_columns(unknown)


async def _body(request: Request, settings: Settings) -> Any:
    """The request's JSON body. Refused: a content type that is not JSON (415: a browser page
    cannot post a form or plain text here on a visitor's behalf), a body that is not JSON,
    and text that is not valid Unicode (422: it could be neither logged nor stored)."""
    if "inference-header-content-length" in request.headers:
        message = "binary tensor data is not supported: send JSON tensors (binary_data=False)"
        raise PayloadError([payloads.problem("body", message)])
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind and kind != "application/json" and not kind.endswith("+json"):
        # none is accepted: Open Inference clients (tritonclient) send their JSON without one
        message = f"send JSON with Content-Type: application/json, not {kind!r}"
        raise PayloadError([payloads.problem("content-type", message)], 415)
    raw = await _raw(request, settings.serve_max_body_bytes, settings.serve_read_timeout)
    with contextlib.suppress(orjson.JSONDecodeError):
        return orjson.loads(raw)  # fast; what it refuses, json reads below to say what it is
    try:
        found = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise PayloadError([payloads.problem("body", f"not valid JSON: {error}")]) from None
    if payloads.SURROGATE_ESCAPE.search(raw):  # rare: only then is every string looked at
        where = payloads.unencodable(found)
        if where is not None:
            message = "not valid Unicode text (a lone surrogate escape such as \\ud800)"
            raise PayloadError([payloads.problem(where, message)])
    return found


def create_app(
    name: str, alias: str | None = None, *, workspace: Workspace | None = None
) -> FastAPI:
    """The FastAPI app serving endpoint NAME as its deployment says; ``alias`` pins the
    champion to an alias or version instead."""
    return Server(name, alias, workspace=workspace).app


SERVE_ENV = "LOOPML_SERVE_MODEL"


def app_from_environment() -> FastAPI:
    """The app of NAME[@ALIAS] in $LOOPML_SERVE_MODEL: the factory each uvicorn worker
    calls."""
    import os

    name, _, alias = os.environ[SERVE_ENV].partition("@")
    return create_app(name, alias or None)
