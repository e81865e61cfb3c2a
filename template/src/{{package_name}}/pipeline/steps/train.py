"""train: fit the model on the validated table with training's own `train()`."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ...training.train import quiet_console
from ...training.train import train as train_model
from ..tracking import current_run_id


def train(validated_data: Path, model: Path, cfg: DictConfig) -> None:
    """Train on `validated_data`, logging to the step's MLflow run; `model` (JSON) names
    the logged model (`model_uri`), its run and its test metrics."""
    quiet_console()
    cfg = cfg.copy()
    OmegaConf.update(cfg, "data.raw_path", str(validated_data))
    OmegaConf.update(cfg, "data.source", None, force_add=True)  # ingest has read it already
    if run_id := current_run_id():  # Lightning's logger attaches to the step's run
        OmegaConf.update(cfg, "logger.run_id", run_id, force_add=True)
    result = train_model(cfg)
    if result.model_uri is None:
        raise RuntimeError("Training logged no model: the pipeline needs `logger` configured.")
    payload = {
        "model_uri": result.model_uri,
        "run_id": result.run_id,
        "test_metrics": result.test_metrics,
    }
    model.write_text(json.dumps(payload, indent=2))
