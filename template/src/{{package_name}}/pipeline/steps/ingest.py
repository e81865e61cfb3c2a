"""ingest: materialise the raw table from the data source, as training's data module reads it.

`data.source` set: a copy of that file (its content is part of this step's cache key, so an
edited file is read again). Unset: what the team's `dataset.generate_dataset` returns; nothing
can fingerprint what that reads, so this step runs on every pipeline run (see cache.py).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ...data.raw import write_table
from ..cache import file_digest
from ..tracking import current_run_id, log_params, tracking_client


def ingest(raw_data: Path, cfg: DictConfig) -> None:
    """Write the raw table to `raw_data` (CSV)."""
    source = cfg.data.get("source")
    write_table(raw_data, Path(source) if source else None, cfg.data.n_rows, cfg.data.seed)
    if run_id := current_run_id():
        generated = {"data/n_rows": cfg.data.n_rows, "data/seed": cfg.data.seed}
        origin = {"data/source": source} if source else generated
        params = {**origin, "data/fingerprint": file_digest(raw_data)}
        log_params(tracking_client(cfg), run_id, params)
