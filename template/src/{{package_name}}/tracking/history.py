"""Reading a project's runs back: the latest run of an experiment, a metric's history."""

from __future__ import annotations

from collections.abc import Iterable

import mlflow
import pandas as pd


def latest_run(tracking_uri: str, experiment_name: str) -> mlflow.entities.Run | None:
    """The most recently started run of an experiment, or None when there is none yet."""
    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1
    )
    return runs[0] if runs else None


def metric_history(tracking_uri: str, run_id: str, keys: Iterable[str]) -> pd.DataFrame:
    """Per-epoch values of `keys` (columns), indexed by epoch."""
    client = mlflow.MlflowClient(tracking_uri)
    columns = {key: [m.value for m in client.get_metric_history(run_id, key)] for key in keys}
    frame = pd.DataFrame({key: pd.Series(values) for key, values in columns.items()})
    return frame.rename_axis("epoch")
