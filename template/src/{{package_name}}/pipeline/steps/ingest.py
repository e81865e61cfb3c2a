"""ingest: materialise the raw table from the data source, as training's data module reads it.

`data.source` set: a copy of that file (its content is part of this step's cache key, so an
edited file is read again). Unset: what the team's `dataset.generate_dataset` returns; nothing
can fingerprint what that reads, so this step runs on every pipeline run.
"""

from __future__ import annotations

from pathlib import Path

from ...data.raw import write_table
from ..cache import file_digest
from ..context import StepContext


def ingest(raw_data: Path, context: StepContext) -> None:
    """Write the raw table to `raw_data` (CSV)."""
    data = context.cfg.data
    source = data.get("source")
    write_table(raw_data, Path(source) if source else None, data.n_rows, data.seed)
    origin = (
        {"data/source": source} if source else {"data/n_rows": data.n_rows, "data/seed": data.seed}
    )
    context.log_params({**origin, "data/fingerprint": file_digest(raw_data)})
