"""The monitor's result as Prometheus gauges, written to a file in the text exposition format.

The service exports that file's gauges with its own on `/metrics` (serving/metrics.py,
MONITORING_METRICS_FILE), so Prometheus scrapes them where it scrapes the service; a monitor
that runs elsewhere (a scheduled workflow) pushes them to a Pushgateway instead. The drift alert
and the model dashboard (deploy/monitoring/) read them. The file is replaced whole (written
beside it, then renamed): a scrape never sees half of it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

from ..errors import ProjectError
from ..serving.model import ModelRef
from .drift import DriftResult

FILE_NAME = "drift.prom"
JOB = "monitor"  # the Pushgateway's grouping key: each push replaces the previous one
MODEL = ("model_name", "model_version")


def registry_of(result: DriftResult, model: ModelRef, finished: datetime) -> CollectorRegistry:
    registry = CollectorRegistry()
    model_labels = [model.name or "", model.version or ""]

    def gauge(name: str, text: str, *labels: str) -> Gauge:
        return Gauge(name, text, [*MODEL, *labels], registry=registry)

    gauge("model_drift_detected", "1 when the last monitor run found drift, else 0.").labels(
        *model_labels
    ).set(int(result.drift))
    gauge("model_monitor_rows", "Rows the last monitor run compared with the baseline.").labels(
        *model_labels
    ).set(result.rows)
    gauge("model_monitor_last_run_timestamp_seconds", "When the last monitor run finished.").labels(
        *model_labels
    ).set(finished.timestamp())
    gauge(
        "model_prediction_drift_score",
        "Drift of the model's probabilities from its baseline (a distance; 0: none).",
    ).labels(*model_labels).set(result.prediction.score)
    score = gauge(
        "model_feature_drift_score",
        "Drift of a feature from the baseline (a distance; 0: none).",
        "feature",
        "method",
    )
    threshold = gauge(
        "model_feature_drift_threshold", "Score above which a feature drifts.", "feature"
    )
    drifted = gauge("model_feature_drift_detected", "1 when a feature drifts, else 0.", "feature")
    missing = gauge(
        "model_feature_missing_share", "Share of a feature's values missing.", "feature"
    )
    out_of_range = gauge(
        "model_feature_out_of_range_share",
        "Share of a feature's values outside the baseline (range, or known categories).",
        "feature",
    )
    for feature, found in result.features.items():
        score.labels(*model_labels, feature, found.method).set(found.score)
        threshold.labels(*model_labels, feature).set(found.threshold)
        drifted.labels(*model_labels, feature).set(int(found.drifted))
        missing.labels(*model_labels, feature).set(found.missing_share)
        out_of_range.labels(*model_labels, feature).set(found.out_of_range_share)
    return registry


class PushError(ProjectError):
    """The Pushgateway did not take the gauges."""


def export(
    result: DriftResult,
    model: ModelRef,
    finished: datetime,
    path: Path,
    pushgateway_url: str | None = None,
) -> Path:
    """Write the gauges to `path` and push them to `pushgateway_url` when given."""
    registry = registry_of(result, model, finished)
    write_to_textfile(str(path), registry)
    if pushgateway_url:
        try:
            push_to_gateway(pushgateway_url, job=JOB, registry=registry, timeout=10)
        except OSError as error:  # refused, unreachable, or an HTTP error status
            raise PushError(
                f"cannot push the drift gauges to monitor.pushgateway_url={pushgateway_url}: "
                f"{error} (the report and {path} are written)"
            ) from None
    return path
