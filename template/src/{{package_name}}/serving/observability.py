"""Per-request bookkeeping: a request id, the request metrics and a JSON access log line.

It is plain ASGI middleware (Starlette's BaseHTTPMiddleware costs a task per request), and by
default it logs only the requests that failed: formatting and writing a JSON line for every
request took a quarter of the service's throughput (docs/benchmarks.md), and every scored
request is in the prediction log with its id anyway.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .metrics import IN_FLIGHT, LATENCY, REQUESTS
from .settings import AccessLog

REQUEST_ID_HEADER = "x-request-id"
REQUEST_ID_NAME = REQUEST_ID_HEADER.encode()  # as ASGI gives header names: lower-case bytes
# A caller's id is kept only if it is short and plain: it is echoed and logged.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
UNMATCHED = "unmatched"  # the route label of unknown paths: scanners must not grow the metrics

log = logging.getLogger(f"{__package__}.access")


def log_config(level: str) -> dict[str, Any]:
    """logging.config.dictConfig for the service and uvicorn: JSON lines on stderr."""
    formatter = {
        "()": "pythonjsonlogger.json.JsonFormatter",
        "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        "timestamp": False,
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},  # the middleware logs requests
        },
    }


class RequestObserver:
    """Takes or makes the request id, answers with it, times the request and logs it
    (`access_log`: every request, those answered 4xx or 5xx, or none)."""

    def __init__(self, app: ASGIApp, access_log: AccessLog = "errors") -> None:
        self.app = app
        self.lowest_logged = {"all": 0, "errors": 400, "off": 1000}[access_log]
        # (route, method, status) -> its counter and histogram: labels() takes a lock per call.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        id_header = (REQUEST_ID_NAME, request_id.encode())
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
            await send(message)

        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            IN_FLIGHT.dec()
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", UNMATCHED)
            requests, latency = self._metrics(route, scope["method"], status)
            requests.inc()
            latency.observe(elapsed)
            if status >= self.lowest_logged:
                log.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                    },
                )

    def _metrics(self, route: str, method: str, status: int) -> tuple[Any, Any]:
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:
            labels = (route, method, str(status))
            series = self._series[key] = (REQUESTS.labels(*labels), LATENCY.labels(*labels))
        return series


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_NAME:
            candidate: str = value.decode("latin-1")
            if REQUEST_ID.fullmatch(candidate):
                return candidate
    return os.urandom(16).hex()
