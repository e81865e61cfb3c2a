"""Per-request bookkeeping: a request id, the request metrics and a JSON access log line.

It is plain ASGI middleware (Starlette's BaseHTTPMiddleware costs a task per request), and by
default it logs only the requests that failed: formatting and writing a JSON line for every
request took a quarter of the service's throughput (docs/benchmarks.md), and every scored
request is in the prediction log with its id anyway.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .metrics import RequestTally
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

    def __init__(self, app: ASGIApp, tally: RequestTally, access_log: AccessLog = "errors") -> None:
        self.app = app
        self.tally = tally
        self.lowest_logged = {"all": 0, "errors": 400, "off": 1000}[access_log]
        # A made id is this process's random prefix and a count: unique without a system call
        # per request (os.urandom's).
        self._prefix = os.urandom(8).hex()
        self._made = itertools.count()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _given_id(scope) or f"{self._prefix}{next(self._made):016x}"
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

        self.tally.started()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", UNMATCHED)
            self.tally.answered(route, scope["method"], status, elapsed)
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


def _given_id(scope: Scope) -> str | None:
    """The caller's request id, if it sent one we keep."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_NAME:
            candidate: str = value.decode("latin-1")
            return candidate if REQUEST_ID.fullmatch(candidate) else None
    return None
