"""The service's Prometheus metrics (`GET /metrics`); deploy/ dashboards and alerts query these.

With several workers each process counts its own: `__main__` then points
PROMETHEUS_MULTIPROC_DIR at a fresh folder before the workers start, and `/metrics` adds up
every worker's files.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Request latencies in seconds: dense below 50 ms, where a single-row request should stay.
# `_created` series double the page and no query reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUESTS = Counter(
    "serving_requests_total", "HTTP requests answered.", ["route", "method", "status"]
)
LATENCY = Histogram(
    "serving_request_duration_seconds",
    "Time from request to response.",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "serving_requests_in_flight", "Requests being answered now.", multiprocess_mode="livesum"
)
ROWS = Histogram(
    "serving_request_rows",
    "Rows per scored request.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
BATCH_REQUESTS = Histogram(
    "serving_batch_requests",
    "Requests scored together in one model call (serving/batching.py).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
PREDICTIONS = Counter("serving_predictions_total", "Rows scored, by predicted label.", ["label"])
NON_FINITE_ROWS = Counter(
    "serving_non_finite_predictions_total",
    "Rows the model gave no finite probability (answered 500, never logged).",
)
MODEL_INFO = Gauge(
    "serving_model_info",
    "1 for each model this process serves, labelled with its registry name, version and alias.",
    ["role", "name", "version", "alias"],
    multiprocess_mode="liveall",
)
MODEL_READY = Gauge(
    "serving_model_ready",
    "1 when the model is loaded and requests are scored.",
    multiprocess_mode="livemin",
)
MODEL_RELOADS = Counter(
    "serving_model_reloads_total", "Alias re-resolutions that swapped or failed.", ["outcome"]
)
SHADOW = Counter(
    "serving_shadow_predictions_total",
    "Rows the shadow model scored, by whether its label agrees with the served model's.",
    ["agreement"],
)
LOG_ROWS = Counter("serving_prediction_log_rows_total", "Rows written to the prediction log.")
LOG_DROPPED = Counter(
    "serving_prediction_log_dropped_total",
    "Rows the prediction log dropped instead of slowing requests, by reason.",
    ["reason"],
)

# Exported as 0 from the start: dashboards and alerts compare rates, which need a first sample.
# (The label children are kept where requests use them: labels() takes a lock per call.)
PREDICTED = {label: PREDICTIONS.labels(str(label)) for label in (0, 1)}
for _agreement in ("agree", "disagree"):
    SHADOW.labels(_agreement)
for _outcome in ("swapped", "failed"):
    MODEL_RELOADS.labels(_outcome)
for _reason in ("backlog_full", "write_failed"):
    LOG_DROPPED.labels(_reason)


class RequestTally:
    """Requests in flight and requests answered, added to IN_FLIGHT, REQUESTS and LATENCY once
    per turn of the event loop rather than once per request (serving/observability.py keeps the
    tally). Under load one turn answers many requests, and their metric calls, a lock each, then
    run back to back instead of between the framework's code (in a loop of ASGI calls the
    middleware's own cost fell from about 8 to about 5 us a request; on a loaded server the
    difference is within the benchmark's noise). `/metrics` counts what is pending first."""

    def __init__(self) -> None:
        self.in_flight = 0
        self._answered: list[tuple[str, str, int, float]] = []
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._due = False

    def started(self) -> None:
        self.in_flight += 1
        self._count_soon()

    def answered(self, route: str, method: str, status: int, seconds: float) -> None:
        self.in_flight -= 1
        self._answered.append((route, method, status, seconds))
        self._count_soon()

    def _count_soon(self) -> None:
        if not self._due:
            self._due = True
            asyncio.get_running_loop().call_soon(self.count)

    def count(self) -> None:
        """Add what the tally holds to the metrics."""
        self._due = False
        answered, self._answered = self._answered, []
        IN_FLIGHT.set(self.in_flight)
        for route, method, status, seconds in answered:
            requests, latency = self._metrics(route, method, status)
            requests.inc()
            latency.observe(seconds)

    def _metrics(self, route: str, method: str, status: int) -> tuple[Any, Any]:
        """The request counter and latency histogram of these labels (labels() takes a lock)."""
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:
            labels = (route, method, str(status))
            series = self._series[key] = (REQUESTS.labels(*labels), LATENCY.labels(*labels))
        return series


class FileMetrics(Collector):
    """Gauges another process writes in the text format: the drift monitor's (monitoring/gauges.py,
    MONITORING_METRICS_FILE). Read again whenever the file changes; none until it exists."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.registry = CollectorRegistry()
        self._stamp: tuple[int, int] | None = None
        self._families: list[Metric] = []
        self.registry.register(self)

    def collect(self) -> Iterable[Metric]:
        try:
            stat = self.path.stat()
        except OSError:
            return []
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._families = list(text_string_to_metric_families(self.path.read_text()))
            except (OSError, ValueError) as error:  # unreadable, or not the text format
                log.warning("cannot export the metrics in %s: %s", self.path, error)
                self._families = []
        return self._families


def exposition(extra: FileMetrics | None = None) -> tuple[bytes, str]:
    """The metrics page (with `extra`'s) and its content type."""
    if os.environ.get(MULTIPROCESS_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        page = generate_latest(registry)
    else:
        page = generate_latest()
    if extra is not None:
        page += generate_latest(extra.registry)
    return page, CONTENT_TYPE_LATEST


def show_model(
    role: str, info: dict[str, str | None], previous: dict[str, str | None] | None
) -> None:
    """Label `serving_model_info` with the model now in `role` (and drop the one it replaced)."""
    if previous is not None and previous != info:
        with suppress(KeyError):
            MODEL_INFO.remove(role, *_labels(previous))
    MODEL_INFO.labels(role, *_labels(info)).set(1)


def _labels(info: dict[str, str | None]) -> list[str]:
    return [str(info[key]) for key in ("name", "version", "alias")]
