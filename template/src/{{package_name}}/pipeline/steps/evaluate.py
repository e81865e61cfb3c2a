"""evaluate: score the trained model on the rows that training held out."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ...families import load
from ..cache import file_digest
from ..context import StepContext

SPLIT = "test"  # the metrics' prefix in MLflow: the held-out split is the test split


def evaluate(model: Path, held_out: Path, evaluation: Path, context: StepContext) -> None:
    """`evaluation` (JSON): the model's metrics on the held-out rows."""
    candidate = json.loads(model.read_text())
    family = load(candidate["family"])
    metrics = family.score(context.store, candidate["model_uri"], pd.read_parquet(held_out))
    payload = {
        "model_uri": candidate["model_uri"],
        "split": SPLIT,
        "data_sha256": file_digest(held_out),
        "metrics": metrics,
    }
    evaluation.write_text(json.dumps(payload, indent=2))
    context.log_metrics({f"{SPLIT}/{key}": value for key, value in metrics.items()})
