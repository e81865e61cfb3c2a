"""The tabular family: a table of features (data/), a binary classifier on them (models/), a
logged pyfunc model that takes raw rows (models/export.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from omegaconf import DictConfig, open_dict
from pydantic import Field, model_validator

from ..training.settings import (
    Arguments,
    Fraction,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    Section,
    Seed,
    Text,
    config_error,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from ..data.datamodule import TabularDataModule
    from ..models.classifier import BinaryClassifier
    from ..tracking.runs import Store

HELD_OUT_SPLIT = "test"


class DataSettings(Section):
    """`data`: where the table comes from and how it is split and batched."""

    target: Text = Field(alias="_target_")
    source: str | None
    raw_path: Text
    n_rows: PositiveInt
    seed: Seed
    val_fraction: Fraction
    test_fraction: Fraction
    batch_size: PositiveInt
    num_workers: NonNegativeInt

    @model_validator(mode="after")
    def _rows_left_to_train(self) -> DataSettings:
        if self.val_fraction + self.test_fraction >= 1:
            total = self.val_fraction + self.test_fraction
            raise config_error(
                "test_fraction",
                f"val_fraction + test_fraction = {total:g} must be < 1 (training needs rows)",
                value=self.test_fraction,
            )
        return self


class NetSettings(Section):
    """`model.net`: the network's shape (models/network.py)."""

    target: Text = Field(alias="_target_")
    in_features: PositiveInt | None = None  # None (??? in the YAML): training sets it from the data
    hidden_dims: Annotated[list[PositiveInt], Field(min_length=1)]
    dropout: Annotated[float, Field(ge=0, lt=1)]


class OptimizerSettings(Arguments):
    """`model.optimizer`: a torch optimizer (Hydra partial: the model passes its parameters)."""

    partial: bool = Field(alias="_partial_")
    lr: Annotated[float, Field(gt=0)]
    weight_decay: NonNegativeFloat


class ModelSettings(Section):
    """`model`: the LightningModule (models/classifier.py) and what it is built from."""

    target: Text = Field(alias="_target_")
    net: NetSettings
    optimizer: OptimizerSettings
    scheduler: dict[str, Any] | None


class TabularFamily:
    name = "tabular"
    metrics = ("auroc", "accuracy", "f1")
    data_settings = DataSettings
    model_settings = ModelSettings

    def datamodule(self, cfg: DictConfig) -> TabularDataModule:
        from hydra.utils import instantiate

        datamodule: TabularDataModule = instantiate(cfg.data)
        return datamodule

    def fingerprint(self, datamodule: TabularDataModule) -> str:
        return datamodule.fingerprint

    def model(self, cfg: DictConfig, datamodule: TabularDataModule) -> BinaryClassifier:
        from hydra.utils import instantiate

        with open_dict(cfg):  # the network's input width follows from the data
            cfg.model.net.in_features = datamodule.n_features
        model: BinaryClassifier = instantiate(cfg.model)
        return model

    def figures(self, model: BinaryClassifier) -> Mapping[str, Figure]:
        return model.evaluation_figures()

    def log_model(
        self, store: Store, run_id: str, model: BinaryClassifier, datamodule: TabularDataModule
    ) -> str:
        from ..models.export import log_model

        return log_model(store, run_id, model.net, datamodule)

    def held_out_rows(self, datamodule: TabularDataModule) -> pd.DataFrame:
        datamodule.setup()
        return datamodule.frames[HELD_OUT_SPLIT]

    def score(self, store: Store, model_uri: str, rows: pd.DataFrame) -> dict[str, float]:
        """AUROC, accuracy and F1 (threshold 0.5) of the pyfunc model on labelled rows."""
        import mlflow
        import numpy as np
        import torch
        from torchmetrics.functional.classification import (
            binary_accuracy,
            binary_auroc,
            binary_f1_score,
        )

        from ..data.dataset import TARGET

        with store.fluent():  # a models:/ or runs:/ URI names a model in this store
            model = mlflow.pyfunc.load_model(model_uri)
        columns = model.metadata.get_input_schema().input_names()
        predicted = np.asarray(model.predict(rows[columns]), dtype=np.float32)
        probabilities = torch.from_numpy(predicted)
        labels = torch.from_numpy(rows[TARGET].to_numpy(dtype=np.int64, copy=True))
        measured: dict[str, Any] = {
            "auroc": binary_auroc(probabilities, labels),
            "accuracy": binary_accuracy(probabilities, labels),
            "f1": binary_f1_score(probabilities, labels),
        }
        return {**{key: float(value) for key, value in measured.items()}, "rows": float(len(rows))}


FAMILY = TabularFamily()
