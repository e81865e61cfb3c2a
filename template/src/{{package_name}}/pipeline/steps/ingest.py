"""ingest: materialise the raw table, exactly as the data module writes its raw file."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from ...data.datamodule import TabularDataModule
from ..tracking import current_run_id, log_params, tracking_client


def ingest(raw_data: Path, cfg: DictConfig) -> None:
    """Write the table that `data/dataset.py` defines to `raw_data` (CSV)."""
    raw_data.unlink(missing_ok=True)  # the data module writes only a file that is missing
    datamodule: TabularDataModule = instantiate(cfg.data, raw_path=raw_data)
    datamodule.prepare_data()
    if run_id := current_run_id():
        params = {"data/n_rows": cfg.data.n_rows, "data/seed": cfg.data.seed}
        log_params(
            tracking_client(cfg), run_id, {**params, "data/fingerprint": datamodule.fingerprint}
        )
