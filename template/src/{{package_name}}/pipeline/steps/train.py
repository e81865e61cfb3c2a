"""train: fit the model on the validated table with training's own `train()`, in the step's run."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf

from ...training.train import quiet_console
from ...training.train import train as train_model
from ..context import StepContext


def train(validated_data: Path, model: Path, held_out: Path, context: StepContext) -> None:
    """`model` (JSON): the logged model's URI, its run, family and test metrics; `held_out`
    (Parquet): the rows training held out, which evaluate and register score on."""
    quiet_console()
    cfg = context.cfg.copy()
    OmegaConf.update(cfg, "data.raw_path", str(validated_data))
    OmegaConf.update(cfg, "data.source", None)  # ingest has read it already
    result = train_model(cfg, run_id=context.run_id)
    if result.model_uri is None or result.held_out is None:
        raise RuntimeError("Training logged no model: the pipeline needs `logger` configured.")
    payload = {
        "model_uri": result.model_uri,
        "run_id": result.run_id,
        "family": cfg.family,
        "test_metrics": result.test_metrics,
    }
    model.write_text(json.dumps(payload, indent=2))
    result.held_out.to_parquet(held_out, index=False)
