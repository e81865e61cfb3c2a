"""evaluate: score the trained model on the held-out split of the same validated table."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from ...registry.scoring import HELD_OUT_SPLIT, held_out_rows, score
from ..cache import file_digest
from ..tracking import current_run_id, tracking_client


def evaluate(validated_data: Path, model: Path, evaluation: Path, cfg: DictConfig) -> None:
    """`evaluation` (JSON): the model's metrics on the rows training held out."""
    client = tracking_client(cfg)
    model_uri = json.loads(model.read_text())["model_uri"]
    metrics = score(model_uri, held_out_rows(cfg, validated_data))
    payload = {
        "model_uri": model_uri,
        "split": HELD_OUT_SPLIT,
        "data_sha256": file_digest(validated_data),
        "metrics": metrics,
    }
    evaluation.write_text(json.dumps(payload, indent=2))
    if run_id := current_run_id():
        for key, value in metrics.items():
            client.log_metric(run_id, f"{HELD_OUT_SPLIT}/{key}", value)
