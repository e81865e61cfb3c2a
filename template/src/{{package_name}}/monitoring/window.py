"""The rows of the prediction log (serving/prediction_log.py) that one model version scored in a
time window, as a DataFrame of its features and probability."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as fs

from ..errors import ProjectError
from ..serving.model import ModelRef
from ..serving.prediction_log import log_schema


class WindowError(ProjectError):
    """The window holds no rows to compare, or the log cannot be read; the message says why."""


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @classmethod
    def ending(cls, end: datetime | None, hours: float) -> Window:
        """The `hours` up to `end` (now when None; a time without an offset is UTC)."""
        end = datetime.now(UTC) if end is None else end
        end = end.replace(tzinfo=UTC) if end.tzinfo is None else end.astimezone(UTC)
        return cls(end - timedelta(hours=hours), end)

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC"

    def dates(self) -> list[str]:
        """The log's `date=` folders that may hold rows of the window."""
        days = (self.end.date() - self.start.date()).days
        return [f"{self.start.date() + timedelta(days=day):%Y-%m-%d}" for day in range(days + 1)]


@dataclass(frozen=True)
class WindowRows:
    """The window's rows, and the log files that could not be read (skipped, not fatal)."""

    frame: pd.DataFrame
    skipped: list[str]


def read_window(
    location: str,
    window: Window,
    model: ModelRef,
    numeric: list[str],
    categorical: list[str],
    skip_unreadable: bool = True,
) -> WindowRows:
    """The features and probability of every row `model` served in `window`; WindowError when
    the log is missing, or a file of it is unreadable and `skip_unreadable` is off. `location`
    is a folder, or a URI that Arrow reads (s3://bucket/predictions, gs://...: where a collector
    ships the service's log)."""
    try:
        filesystem, directory = fs.FileSystem.from_uri(location)
    except (pa.ArrowInvalid, ValueError):  # a plain path
        filesystem, directory = fs.LocalFileSystem(), str(Path(location).resolve())
    try:
        found = filesystem.get_file_info(directory).type == fs.FileType.Directory
    except (pa.ArrowException, OSError) as error:
        raise WindowError(f"cannot read the prediction log at {location}: {error}") from None
    if not found:
        raise WindowError(
            f"no prediction log at {location}: point monitor.predictions_dir at the service's "
            "PREDICTION_LOG_DIR (or where it is shipped)"
        )
    schema = log_schema(numeric, categorical)
    # The date folders are a partition column; `schema` makes every file read as one table.
    partitioning = ds.partitioning(pa.schema([("date", pa.string())]), flavor="hive")
    rows = (
        ds.field("date").isin(window.dates())
        & (ds.field("timestamp") >= pa.scalar(window.start, schema.field("timestamp").type))
        & (ds.field("timestamp") < pa.scalar(window.end, schema.field("timestamp").type))
        & (ds.field("role") == "served")
        & (ds.field("model_name") == (model.name or ""))
        & (ds.field("model_version") == (model.version or ""))
    )
    columns = [*numeric, *categorical, "probability"]
    try:
        dataset = ds.dataset(
            directory,
            schema=pa.unify_schemas([schema, partitioning.schema]),
            format="parquet",
            partitioning=partitioning,
            filesystem=filesystem,
        )
    except (pa.ArrowException, OSError) as error:
        raise WindowError(f"cannot read the prediction log in {location}: {error}") from None
    try:  # all files at once, on Arrow's threads; file by file only when one of them fails
        return WindowRows(dataset.to_table(columns=columns, filter=rows).to_pandas(), [])
    except (pa.ArrowException, OSError) as error:
        if not skip_unreadable:
            raise WindowError(
                f"cannot read the prediction log in {location}: {error} (with "
                "monitor.skip_unreadable_files=true such files are skipped and counted)"
            ) from None
    tables, skipped = [], []
    for fragment in dataset.get_fragments(filter=rows):
        try:
            tables.append(fragment.to_table(schema=dataset.schema, columns=columns, filter=rows))
        except (pa.ArrowException, OSError):
            skipped.append(fragment.path)
    table = pa.concat_tables(tables) if tables else dataset.schema.empty_table().select(columns)
    return WindowRows(table.to_pandas(), skipped)
