"""The online model server: FastAPI, one model per process, loaded once and swapped whole.

The model loads in the background after start: `/healthz` answers at once, `/readyz` and
`/predict` answer 503 with the reason until the model is in (a registry that is down is
retried: each attempt gives up within seconds, so that the reason shows). With
`RELOAD_INTERVAL_S` the alias is resolved again on that interval and a new version replaces the
old one between two requests; with `SHADOW_SHARE` a share of requests is scored by the shadow
model too, after the response. docs/serving.md has the API.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import random
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..data.contract import CATEGORICAL, FEATURES, NUMERIC
from ..tracking.environment import quick_mlflow_requests
from . import metrics
from .batching import Batcher, Columns, NonFiniteOutputError, Requests
from .model import LoadedModel, ModelLoadError, load, resolve
from .observability import RequestObserver
from .prediction_log import PredictionLog, log_schema
from .schema import (
    ROW,
    PredictResponse,
    RequestError,
    RowError,
    columns,
    parse_rows,
    row_error,
)
from .settings import ServeSettings

log = logging.getLogger(__name__)
PACKAGE = __name__.split(".")[0]

# Bytes a request body may hold per allowed row (a churn row is about 250 bytes of JSON).
BODY_BYTES_PER_ROW = 4096
# Retry a model that failed to load after this long, doubling up to the maximum.
RETRY_S, RETRY_MAX_S = 1.0, 30.0
# Shadow requests waiting for the shadow model beyond this are skipped, not queued.
SHADOW_BACKLOG = 64
# The cyclic collector's youngest generation runs once this many more objects were made than
# freed (Python's default: 700). Reference counting frees a request's objects, so at 700 its
# passes mostly walked the requests in flight: some 10 us per request.
GC_YOUNG_THRESHOLD = 10_000


@dataclass(frozen=True)
class Models:
    """What the service scores with now. Replaced whole, never changed: a request keeps the
    model it started with while a reload swaps in the next one."""

    served: LoadedModel | None = None
    shadow: LoadedModel | None = None
    problem: str = "the model is loading"


class Service:
    """The state behind the routes: settings, models, the prediction log and the shadow worker."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.models = Models()
        self.log: PredictionLog | None = None
        self.batcher = Batcher(on_scored=self._scored)
        self.shadow_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow")
        self.shadow_slots = threading.BoundedSemaphore(SHADOW_BACKLOG)

    def _load(self, uri: str) -> LoadedModel:
        settings = self.settings
        model = load(
            uri, settings.tracking_uri, settings.model_cache_dir, settings.inference_threads
        )
        model.check_features(FEATURES)
        return model

    async def load_forever(self) -> None:
        """Load the served (and shadow) model, retrying; then follow the alias if asked."""
        delay = RETRY_S
        while self.models.served is None:
            try:
                served = await run_in_threadpool(self._load, self.settings.model_uri)
            except Exception as error:  # a bug too must show in /readyz, not end the retries
                self.models = Models(problem=str(error) or type(error).__name__)
                expected = isinstance(error, ModelLoadError)
                log.warning(
                    "model not loaded (retrying in %.0f s): %s",
                    delay,
                    error,
                    exc_info=not expected,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self._swap(served, await self._load_shadow())
        while self.settings.reload_interval_s > 0:
            await asyncio.sleep(self.settings.reload_interval_s)
            try:
                await self.reload()
            except Exception:  # keep serving the loaded model and keep following the alias
                metrics.MODEL_RELOADS.labels("failed").inc()
                log.exception("reload failed")

    async def _load_shadow(self) -> LoadedModel | None:
        if self.settings.shadow_share <= 0:
            return None
        try:
            return await run_in_threadpool(self._load, self.settings.shadow_model_uri)
        except ModelLoadError as error:  # shadow mode is optional: serve without it
            log.warning("shadow model not loaded: %s", error)
            return None

    async def reload(self) -> None:
        """Resolve the URIs again and swap in what changed (a registry lookup when nothing did)."""
        current = self.models
        try:
            served = await run_in_threadpool(self._current, self.settings.model_uri, current.served)
        except ModelLoadError as error:
            metrics.MODEL_RELOADS.labels("failed").inc()
            log.warning("reload failed; still serving %s: %s", _version(current.served), error)
            return
        shadow = current.shadow
        if self.settings.shadow_share > 0:
            try:
                uri = self.settings.shadow_model_uri
                shadow = await run_in_threadpool(self._current, uri, current.shadow)
            except ModelLoadError as error:
                log.warning("shadow reload failed; keeping %s: %s", _version(shadow), error)
        if served is not current.served or shadow is not current.shadow:
            self._swap(served, shadow)
            metrics.MODEL_RELOADS.labels("swapped").inc()

    def _current(self, uri: str, loaded: LoadedModel | None) -> LoadedModel:
        """`loaded` if `uri` still names its version, else the version it names now."""
        if loaded is not None and resolve(uri, self.settings.tracking_uri).uri == loaded.ref.uri:
            return loaded
        return self._load(uri)

    def _swap(self, served: LoadedModel, shadow: LoadedModel | None) -> None:
        previous = self.models
        self.models = Models(served, shadow, problem="")
        # What is alive now (modules, models) lives as long as the process: out of the cyclic
        # collector's sight, its full passes take microseconds instead of some 50 ms that a
        # request in flight would wait out.
        gc.freeze()
        metrics.show_model("served", served.ref.info(), _info(previous.served))
        if shadow is not None:
            metrics.show_model("shadow", shadow.ref.info(), _info(previous.shadow))
        metrics.MODEL_READY.set(1)
        log.info("serving %s", served.describe())

    async def score(self, rows: list[dict[str, Any]], request_id: str) -> PredictResponse:
        models = self.models
        served = models.served
        assert served is not None
        values = columns(rows)
        probabilities = await self.batcher.predict(served, values, request_id)
        labels = self._labels(probabilities)
        if models.shadow is not None and random.random() < self.settings.shadow_share:
            self._shadow(models.shadow, values, labels, request_id)
        info = served.ref.info()
        return {
            "predictions": [
                {"probability": probability, "label": label}
                for probability, label in zip(probabilities, labels, strict=True)
            ],
            "model": {"name": info["name"], "version": info["version"], "alias": info["alias"]},
        }

    def _scored(
        self, model: LoadedModel, values: Columns, probabilities: list[float], requests: Requests
    ) -> None:
        """Count and log the rows of one call of the served model (the batcher calls it)."""
        labels = self._labels(probabilities)
        metrics.BATCH_REQUESTS.observe(len(requests))
        for _, rows in requests:
            metrics.ROWS.observe(rows)
        positives = sum(labels)
        metrics.PREDICTED[1].inc(positives)
        metrics.PREDICTED[0].inc(len(labels) - positives)
        if self.log is not None:
            self.log.record(values, probabilities, labels, model.ref.info(), requests)

    def _labels(self, probabilities: Sequence[float]) -> list[int]:
        threshold = self.settings.decision_threshold
        return [int(probability >= threshold) for probability in probabilities]

    def _shadow(
        self, shadow: LoadedModel, values: Columns, served: list[int], request_id: str
    ) -> None:
        if not self.shadow_slots.acquire(blocking=False):
            return  # the shadow model is behind: skip rather than queue without bound

        def run() -> None:
            try:
                probabilities = shadow.predict(values).tolist()
                labels = self._labels(probabilities)
                agree = sum(ours == theirs for ours, theirs in zip(labels, served, strict=True))
                metrics.SHADOW.labels("agree").inc(agree)
                metrics.SHADOW.labels("disagree").inc(len(labels) - agree)
                if self.log is not None:
                    requests = [(request_id, len(labels))]
                    info = shadow.ref.info()
                    self.log.record(values, probabilities, labels, info, requests, "shadow")
            except Exception:  # the shadow must never hurt the served path
                log.exception("shadow scoring failed")
            finally:
                self.shadow_slots.release()

        self.shadow_pool.submit(run)


def _version(model: LoadedModel | None) -> str | None:
    return None if model is None else model.ref.uri


def _info(model: LoadedModel | None) -> dict[str, str | None] | None:
    return None if model is None else model.ref.info()


def _error(status: int, errors: list[RowError]) -> JSONResponse:
    return JSONResponse({"detail": errors}, status_code=status)


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) past `limit` bytes before it is all read."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            message = f"request body over {limit} bytes; send at most MAX_BATCH_ROWS rows"
            raise RequestError(413, [row_error(None, None, message)])
    return bytes(body)


ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "row": {"type": ["integer", "null"]},
                    "field": {"type": ["string", "null"]},
                    "message": {"type": "string"},
                },
                "required": ["row", "field", "message"],
            },
        }
    },
    "required": ["detail"],
}


def _documented_errors() -> dict[int | str, dict[str, Any]]:
    described = {
        400: "Malformed JSON.",
        413: "More rows (or bytes) than MAX_BATCH_ROWS allows.",
        422: "A row breaks the schema: the detail names the row and the feature.",
        500: "The model gave a row no finite probability; the detail names the rows.",
        503: "No model is loaded yet; the detail says why.",
    }
    return {
        status: {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}},
        }
        for status, text in described.items()
    }


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    settings = settings or ServeSettings.load()
    service = Service(settings)
    gauges_file = settings.monitoring_metrics_file
    monitored = None if gauges_file is None else metrics.FileMetrics(gauges_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        if settings.prediction_log_dir is not None:
            service.log = PredictionLog(
                settings.prediction_log_dir,
                log_schema(list(NUMERIC), list(CATEGORICAL)),
                settings.prediction_log_sample_rate,
                settings.prediction_log_flush_s,
                settings.prediction_log_max_rows,
            ).start()
        metrics.MODEL_READY.set(0)
        # The service retries the registry itself (RETRY_S doubling to RETRY_MAX_S): MLflow's
        # own retries would keep /readyz at "loading" for minutes while the registry is down.
        with quick_mlflow_requests():
            loader = asyncio.create_task(service.load_forever())
            try:
                yield
            finally:
                loader.cancel()
                service.shadow_pool.shutdown(wait=True)
                if service.log is not None:
                    service.log.close()

    app = FastAPI(
        title=f"{PACKAGE} model server",
        summary="Scores rows with the registered model.",
        lifespan=lifespan,
    )
    tally = metrics.RequestTally()
    app.add_middleware(RequestObserver, tally=tally, access_log=settings.access_log)
    app.state.service = service
    body_limit = settings.max_batch_rows * BODY_BYTES_PER_ROW

    @app.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="Readiness: a model is loaded",
        responses={503: _documented_errors()[503]},
    )
    async def readyz() -> Response:
        models = service.models
        if models.served is None:
            return _error(503, [row_error(None, None, models.problem)])
        ready: dict[str, Any] = {"status": "ready", "model": models.served.describe()}
        if models.shadow is not None:
            ready["shadow"] = models.shadow.describe()
        return JSONResponse(ready)

    @app.post(
        "/predict",
        summary="Score one row or a list of rows",
        response_model=PredictResponse,
        responses=_documented_errors(),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "anyOf": [
                                {"$ref": "#/components/schemas/Row"},
                                {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Row"},
                                    "minItems": 1,
                                    "maxItems": settings.max_batch_rows,
                                },
                            ]
                        }
                    }
                },
            }
        },
    )
    async def predict(request: Request) -> Response:
        if service.models.served is None:
            problem = service.models.problem
            return _error(503, [row_error(None, None, problem)])
        try:
            rows = parse_rows(await _body(request, body_limit), settings.max_batch_rows)
        except RequestError as error:
            return _error(error.status, error.errors)
        try:
            scored = await service.score(rows, request.state.request_id)
        except NonFiniteOutputError as error:
            metrics.NON_FINITE_ROWS.inc(len(error.rows))
            log.error("request %s: %s", request.state.request_id, error)
            message = "the model gave no finite probability for this row (a fault of the model)"
            return _error(500, [row_error(row, None, message) for row in error.rows])
        return Response(json.dumps(scored), media_type="application/json")

    @app.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def prometheus() -> Response:
        metrics.MODEL_READY.set(0 if service.models.served is None else 1)
        tally.count()
        page, content_type = metrics.exposition(monitored)
        return Response(page, media_type=content_type)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["Row"] = ROW.json_schema()
            schemas["Errors"] = ERROR_SCHEMA
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
