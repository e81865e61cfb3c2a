"""Score a logged model on the held-out (test) split of a table, as the data module cuts it."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torchmetrics.functional.classification import (
    binary_accuracy,
    binary_auroc,
    binary_f1_score,
)

from ..data.datamodule import TabularDataModule
from ..data.dataset import TARGET

HELD_OUT_SPLIT = "test"


def held_out_rows(cfg: DictConfig, data: Path) -> pd.DataFrame:
    """The rows of `data` that training held out: same seed and fractions, same split."""
    datamodule: TabularDataModule = instantiate(cfg.data, raw_path=data, source=None)
    datamodule.setup()
    return datamodule.frames[HELD_OUT_SPLIT]


def score(model_uri: str, rows: pd.DataFrame) -> dict[str, float]:
    """AUROC, accuracy and F1 (threshold 0.5) of the pyfunc model at `model_uri` on `rows`."""
    model = mlflow.pyfunc.load_model(model_uri)
    columns = model.metadata.get_input_schema().input_names()
    probabilities = torch.from_numpy(np.array(model.predict(rows[columns]), dtype=np.float32))
    labels = torch.from_numpy(rows[TARGET].to_numpy(dtype=np.int64, copy=True))
    return {
        "auroc": float(binary_auroc(probabilities, labels)),
        "accuracy": float(binary_accuracy(probabilities, labels)),
        "f1": float(binary_f1_score(probabilities, labels)),
        "rows": float(len(rows)),
    }
