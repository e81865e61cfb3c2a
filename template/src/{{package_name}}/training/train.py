"""Train, test and log a model: `python -m <package>.training.train [hydra overrides]`.

Examples: `... trainer.max_epochs=5`, `... experiment=wide_mlp`, `... trainer=gpu`.
Every output goes to Hydra's run directory (logs/train/runs/<time>/) or the MLflow store.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from dataclasses import dataclass, field

import hydra
from omegaconf import DictConfig, open_dict

from ..errors import reported_errors
from .config import compose_config, config_dir, register_resolvers
from .settings import TrainConfig


@dataclass
class TrainingResult:
    test_metrics: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    model_uri: str | None = None


def train(cfg: DictConfig) -> TrainingResult:
    """Fit on train/val, test the best checkpoint, and log everything to MLflow.

    The config is checked first (`settings.py`): a bad value raises `ConfigError` before any
    data is read or any run is created.
    """
    TrainConfig.from_config(cfg)
    # Imported here, not at the top: a config mistake is reported before the training stack
    # (torch, Lightning, MLflow) has loaded, which takes seconds.
    from hydra.utils import instantiate
    from lightning.pytorch import Trainer, seed_everything
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import MLFlowLogger
    from lightning.pytorch.loggers.logger import DummyLogger

    from ..data.datamodule import TabularDataModule
    from ..models.classifier import BinaryClassifier
    from ..models.export import log_model
    from ..tracking.git import git_tags
    from ..tracking.mlflow_run import log_figures, log_run_context

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


def logs_to_mlflow(cfg: DictConfig) -> bool:
    """Whether training with `cfg` talks to the tracking store (a smoke test does not)."""
    return bool(cfg.get("logger")) and not cfg.trainer.get("fast_dev_run")


def _run(cfg: DictConfig) -> None:
    with reported_errors():
        if logs_to_mlflow(cfg):
            from ..tracking.server import require_tracking_server

            require_tracking_server(str(cfg.logger.tracking_uri))
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
    """Console entry point; finds configs/ from the current directory (or $PROJECT_ROOT).

    The command line is composed and checked once before Hydra takes over, so that a bad
    override or value is one line (`error: ...`, exit status 2) instead of Hydra's report, and
    comes before Hydra makes the run's folder. Hydra's own options (`--cfg job`, `--help`, `-m`)
    go to Hydra unchecked; `train` checks its config again in any case.
    """
    quiet_console()
    with reported_errors():
        register_resolvers()
        overrides = sys.argv[1:]
        if not any(argument.startswith("-") for argument in overrides):
            TrainConfig.from_config(compose_config(overrides))
        folder = str(config_dir())
    hydra.main(config_path=folder, config_name="train", version_base="1.3")(_run)()


if __name__ == "__main__":
    main()
