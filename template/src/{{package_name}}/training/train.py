"""Train, test and log a model: `python -m <package>.training.train [hydra overrides]`.

Examples: `... trainer.max_epochs=5`, `... experiment=wide_mlp`, `... trainer=gpu`.
Every output goes to Hydra's run directory (logs/train/runs/<time>/) or the MLflow store.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field

import hydra
from hydra.utils import instantiate
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.loggers.logger import DummyLogger
from omegaconf import DictConfig, open_dict

from ..data.datamodule import TabularDataModule
from ..models.classifier import BinaryClassifier
from ..models.export import log_model
from ..tracking.git import git_tags
from ..tracking.mlflow_run import log_figures, log_run_context
from .config import config_dir, register_resolvers


@dataclass
class TrainingResult:
    test_metrics: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    model_uri: str | None = None


def train(cfg: DictConfig) -> TrainingResult:
    """Fit on train/val, test the best checkpoint, and log everything to MLflow."""
    seed_everything(cfg.seed, workers=True)
    datamodule: TabularDataModule = instantiate(cfg.data)
    with open_dict(cfg):  # the network's input width follows from the data, not from a config
        cfg.model.net.in_features = datamodule.n_features
    model: BinaryClassifier = instantiate(cfg.model)
    callbacks = [instantiate(callback) for callback in (cfg.get("callbacks") or {}).values()]
    # A smoke test (fast_dev_run) logs to a dummy: it leaves no run in the tracking store.
    smoke_test = bool(cfg.trainer.get("fast_dev_run"))
    logger = DummyLogger() if smoke_test or not cfg.get("logger") else instantiate(cfg.logger)
    # Partial, then called: objects passed as instantiate() kwargs would be merged into the config.
    trainer: Trainer = instantiate(cfg.trainer, _partial_=True)(callbacks=callbacks, logger=logger)
    tracker = logger if isinstance(logger, MLFlowLogger) else None

    if tracker:
        params = {"data/fingerprint": datamodule.fingerprint}
        tags = {**git_tags(cfg.paths.root_dir), "data.fingerprint": datamodule.fingerprint}
        log_run_context(tracker, cfg, tags, params)

    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
    test_metrics = trainer.test(model, datamodule=datamodule, ckpt_path=best or None)[0]
    result = TrainingResult(test_metrics=dict(test_metrics))

    if tracker:
        log_figures(tracker, model.evaluation_figures())
        result.model_uri = log_model(tracker, model.net, datamodule).model_uri
        result.run_id = tracker.run_id
        uri = str(cfg.logger.tracking_uri)
        browse = "make mlflow-ui, then http://127.0.0.1:5000" if uri.startswith("sqlite") else uri
        print(
            f"\nMLflow run {result.run_id} (experiment {cfg.logger.experiment_name!r})"
            f"\n  store: {uri}\n  model: {result.model_uri}\n  browse: {browse}"
        )
    return result


def _run(cfg: DictConfig) -> None:
    train(cfg)


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def quiet_console() -> None:
    """Keep the console to what a person needs to read while training runs."""
    # In-memory tensors need no loader workers: Lightning's hint about them does not apply.
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    # Raised inside torch.export by torch's own code, not by anything a project can change.
    warnings.filterwarnings("ignore", r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
    # Lightning's own use of a torch API that torch deprecated: nothing for a project to change.
    warnings.filterwarnings("ignore", r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropAdverts())
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def main() -> None:
    """Console entry point; finds configs/ from the current directory (or $PROJECT_ROOT)."""
    quiet_console()
    register_resolvers()
    hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")(_run)()


if __name__ == "__main__":
    main()
