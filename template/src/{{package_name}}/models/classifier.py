"""The LightningModule: trains any one-logit network as a binary classifier."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from matplotlib.figure import Figure
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryConfusionMatrix,
    BinaryF1Score,
    BinaryROC,
)

from .plots import confusion_matrix_figure, roc_curve_figure

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], LRScheduler]
Batch = tuple[Tensor, Tensor]


class BinaryClassifier(LightningModule):
    """BCE loss on logits; accuracy, AUROC and F1 per epoch for train, val and test.

    `optimizer` and `scheduler` are factories (Hydra `_partial_: true`), so the config
    chooses them while the module hands them its parameters.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.loss = nn.BCEWithLogitsLoss()
        metrics = MetricCollection(
            {"accuracy": BinaryAccuracy(), "auroc": BinaryAUROC(), "f1": BinaryF1Score()}
        )
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.stage_metrics = {
            "train": self.train_metrics,
            "val": self.val_metrics,
            "test": self.test_metrics,
        }
        # Curves for the evaluation plots: accumulated over the test split, never logged as values.
        self.test_roc = BinaryROC()
        self.test_confusion = BinaryConfusionMatrix()

    def forward(self, features: Tensor) -> Tensor:
        logits: Tensor = self.net(features)
        return logits

    def _step(self, batch: Batch, stage: str) -> tuple[Tensor, Tensor, Tensor]:
        features, targets = batch
        logits = self(features)
        loss = self.loss(logits, targets)
        probabilities, labels = torch.sigmoid(logits), targets.int()
        metrics = self.stage_metrics[stage]
        metrics.update(probabilities, labels)
        batch_size = len(targets)
        self.log(f"{stage}/loss", loss, on_epoch=True, on_step=False, batch_size=batch_size)
        self.log_dict(metrics, on_epoch=True, on_step=False, batch_size=batch_size)
        return loss, probabilities, labels

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        return self._step(batch, "train")[0]

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def on_test_epoch_start(self) -> None:
        self.test_roc.reset()
        self.test_confusion.reset()

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        _, probabilities, labels = self._step(batch, "test")
        self.test_roc.update(probabilities, labels)
        self.test_confusion.update(probabilities, labels)

    def configure_optimizers(self) -> OptimizerLRScheduler:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}

    def evaluation_figures(self) -> dict[str, Figure]:
        """ROC curve and confusion matrix of the last test run, keyed by file stem."""
        return {
            "roc_curve": roc_curve_figure(self.test_roc),
            "confusion_matrix": confusion_matrix_figure(self.test_confusion),
        }
