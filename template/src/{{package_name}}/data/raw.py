"""The raw table's file: where it comes from, and reading and writing it.

Two kinds of source (`source` in configs/data/): a file the team points at (CSV, or Parquet
by its suffix), whose content identifies the data; or, when unset, `dataset.generate_dataset`
(team-owned code that may read anything: a warehouse, an API), whose data nothing outside it
can fingerprint. This module imports no training stack: the pipeline's ingest step uses it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from ..errors import ProjectError
from . import dataset

PARQUET_SUFFIXES = (".parquet", ".pq")


class DataSourceError(ProjectError):
    """The data source cannot be read: a missing file, or one that is not a table."""


def require_file(path: Path) -> Path:
    if not path.is_file():
        raise DataSourceError(f"{path}: no such file (check `data.source` in configs/data/).")
    return path


def read_table(path: Path) -> pd.DataFrame:
    """The table in `path`; a file without even a header line reads as an empty table, which
    validation then rejects with the columns it lacks."""
    require_file(path)
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (ValueError, OSError) as error:  # parser, encoding and Parquet errors
        raise DataSourceError(f"{path} is not a readable table: {error}") from error


def write_table(destination: Path, source: Path | None, n_rows: int, seed: int) -> None:
    """Write the raw table to `destination` as CSV: a copy of `source` (a CSV byte for byte,
    Parquet converted), else what `dataset.generate_dataset(n_rows, seed)` returns.

    Written beside `destination` and renamed: a crash never leaves a truncated file.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    if source is None:
        dataset.generate_dataset(n_rows, seed).to_csv(partial, index=False)
    elif source.suffix.lower() in PARQUET_SUFFIXES:
        read_table(source).to_csv(partial, index=False)
    else:
        shutil.copyfile(require_file(source), partial)
    partial.replace(destination)
