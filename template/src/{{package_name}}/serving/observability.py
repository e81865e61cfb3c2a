"""Per-request bookkeeping: a request id, one JSON log line, and the request metrics.

It is plain ASGI middleware (Starlette's BaseHTTPMiddleware costs a task per request), so the
service's floor stays the framework's.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .metrics import IN_FLIGHT, LATENCY, REQUESTS

REQUEST_ID_HEADER = "x-request-id"
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
    """Takes or makes the request id, answers with it, times the request and logs it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            IN_FLIGHT.dec()
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", UNMATCHED)
            labels = (route, scope["method"], str(status))
            REQUESTS.labels(*labels).inc()
            LATENCY.labels(*labels).observe(elapsed)
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


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER.encode():
            candidate: str = value.decode("latin-1")
            if REQUEST_ID.fullmatch(candidate):
                return candidate
    return uuid.uuid4().hex
