"""A monitor run in MLflow: the scores as metrics, the report and result as artifacts, tagged
with the model version, and the version tagged with its latest monitor run (both ways round,
so the registry page of a version leads to how it is doing)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..serving.model import ModelRef
from ..tracking.runs import Store
from .drift import DriftResult
from .window import Window

# Tags on the model version: the latest monitor run and its verdict.
LAST_RUN_TAG = "monitoring.last_run_id"
LAST_DRIFT_TAG = "monitoring.drift"


def metrics_of(result: DriftResult) -> dict[str, float]:
    metrics = {
        "rows": float(result.rows),
        "drift_detected": float(result.drift),
        "prediction_drift_score": result.prediction.score,
    }
    for feature, found in result.features.items():
        metrics[f"drift_score.{feature}"] = found.score
        metrics[f"missing_share.{feature}"] = found.missing_share
        metrics[f"out_of_range_share.{feature}"] = found.out_of_range_share
        metrics[f"invalid_share.{feature}"] = found.invalid_share
    return metrics


def record(
    store: Store,
    model: ModelRef,
    window: Window,
    result: DriftResult,
    outcome: Mapping[str, Any],
    report: Path,
    settings: Mapping[str, Any],
) -> str:
    """Log the monitor run (`outcome` as result.json, the HTML `report`); its id."""
    tags = {
        "model.name": model.name,
        "model.version": model.version,
        "model.uri": model.uri,
        "window.start": window.start.isoformat(),
        "window.end": window.end.isoformat(),
        "drift": str(result.drift).lower(),
    }
    name = f"monitor-v{model.version}-{window.end:%Y%m%dT%H%M}"
    with store.ended(store.start_run(name, tags)) as run_id:
        store.log_params(run_id, settings)
        store.log_metrics(run_id, metrics_of(result))
        store.log_json(run_id, outcome, "result.json")
        store.client.log_artifact(run_id, str(report))
    if model.name and model.version:
        store.client.set_model_version_tag(model.name, model.version, LAST_RUN_TAG, run_id)
        store.client.set_model_version_tag(
            model.name, model.version, LAST_DRIFT_TAG, str(result.drift).lower()
        )
    return run_id
