"""Train, test and log a model: `python -m <package>.training.train [hydra overrides]`.

Examples: `... trainer.max_epochs=5`, `... experiment=wide_mlp`, `... trainer=gpu`.
Every output goes to Hydra's run directory (logs/train/runs/<time>/) or the MLflow store.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import hydra
from omegaconf import DictConfig, OmegaConf

from ..errors import reported_errors
from .config import compose_config, config_dir, register_resolvers
from .settings import TrainConfig

if TYPE_CHECKING:
    import pandas as pd
    from lightning.pytorch import LightningDataModule, LightningModule


@dataclass
class TrainingResult:
    test_metrics: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    model_uri: str | None = None
    held_out: pd.DataFrame | None = None  # the rows kept out of fitting and model selection


def train(cfg: DictConfig, run_id: str | None = None) -> TrainingResult:
    """Fit on train/val, test the best checkpoint, and log everything to MLflow.

    The config is checked first (`settings.py`): a bad value raises `ConfigError` before any
    data is read or any run is created. `cfg` is not changed. `run_id` names a run to log into
    (a pipeline step's, a trial's), which the caller ends; without it, training makes its own.
    Only the process of global rank zero logs, exports and registers.
    """
    TrainConfig.from_config(cfg)
    # Imported here, not at the top: a config mistake is reported before the training stack
    # (torch, Lightning, MLflow) has loaded, which takes seconds.
    from lightning.fabric.utilities.rank_zero import rank_zero_only
    from lightning.pytorch import seed_everything

    from ..families import load
    from ..tracking.runs import Store

    cfg = copy.deepcopy(cfg)  # the family sets values derived from the data on this copy
    family = load(str(cfg.family))
    seed_everything(cfg.seed, workers=True)
    datamodule = family.datamodule(cfg)
    # Read and check the data before a run exists: a broken table leaves no run behind.
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = family.model(cfg, datamodule)
    if not logs_to_mlflow(cfg) or getattr(rank_zero_only, "rank", 0) != 0:
        metrics = _fit(cfg, model, datamodule, None)
        return TrainingResult(metrics, held_out=family.held_out_rows(datamodule))
    store = Store.from_config(cfg)
    owned = run_id is None
    run_id = run_id or store.start_run(cfg.logger.get("run_name"))
    # fluent(): Lightning's logger points mlflow's process-wide store at its own; undone after.
    with store.ended(run_id) if owned else nullcontext(), store.fluent():
        fingerprint = family.fingerprint(datamodule)
        params = {"data/fingerprint": fingerprint}
        store.set_tags(run_id, {"data.fingerprint": fingerprint})
        store.client.log_text(run_id, OmegaConf.to_yaml(cfg, resolve=True), "config/train.yaml")
        metrics = _fit(cfg, model, datamodule, run_id, params)
        result = TrainingResult(metrics, run_id, held_out=family.held_out_rows(datamodule))
        for name, figure in family.figures(model).items():
            store.client.log_figure(run_id, figure, f"plots/{name}.png")
        result.model_uri = family.log_model(store, run_id, model, datamodule)
    local = store.uri.startswith("sqlite")
    browse = "make mlflow-ui, then http://127.0.0.1:5000" if local else store.uri
    print(
        f"\nMLflow run {run_id} (experiment {store.experiment_name!r})"
        f"\n  store: {store.uri}\n  model: {result.model_uri}\n  browse: {browse}"
    )
    return result


def _fit(
    cfg: DictConfig,
    model: LightningModule,
    datamodule: LightningDataModule,
    run_id: str | None,
    params: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Fit, then test the best checkpoint; the test metrics. Logs to `run_id` when given
    (Lightning's MLflow logger attaches to it), else nowhere."""
    from hydra.utils import instantiate
    from lightning.pytorch import Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import Logger
    from lightning.pytorch.loggers.logger import DummyLogger

    logger: Logger = instantiate(cfg.logger, run_id=run_id) if run_id else DummyLogger()
    if run_id:  # the resolved config, flattened with "/" and batched by Lightning
        config = OmegaConf.to_container(cfg, resolve=True)
        logger.log_hyperparams({**cast("dict[str, Any]", config), **(params or {})})
    callbacks = [instantiate(callback) for callback in (cfg.get("callbacks") or {}).values()]
    # Partial, then called: objects passed as instantiate() kwargs would be merged into the config.
    trainer: Trainer = instantiate(cfg.trainer, _partial_=True)(callbacks=callbacks, logger=logger)
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
    return dict(trainer.test(model, datamodule=datamodule, ckpt_path=best or None)[0])


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
