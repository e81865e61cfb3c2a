"""MLflow specifics of a training run: what it records up front, finding the latest run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import mlflow
import pandas as pd
from lightning.pytorch.loggers import MLFlowLogger
from matplotlib.figure import Figure
from mlflow.entities import RunTag
from omegaconf import DictConfig, OmegaConf


def log_run_context(
    logger: MLFlowLogger, cfg: DictConfig, tags: Mapping[str, str], params: Mapping[str, Any]
) -> None:
    """Record the resolved config (artifact and flattened params) and `tags` in one go."""
    config = cast("dict[str, Any]", OmegaConf.to_container(cfg, resolve=True))
    logger.log_hyperparams({**config, **params})  # flattened with "/" and batched by Lightning
    run_id = logger.run_id
    assert run_id is not None
    client = logger.experiment
    client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])
    client.log_text(run_id, OmegaConf.to_yaml(cfg, resolve=True), "config/train.yaml")


def log_figures(logger: MLFlowLogger, figures: Mapping[str, Figure], folder: str = "plots") -> None:
    run_id = logger.run_id
    assert run_id is not None
    for name, figure in figures.items():
        logger.experiment.log_figure(run_id, figure, f"{folder}/{name}.png")


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
