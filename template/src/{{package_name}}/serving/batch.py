"""`<project>-batch-predict INPUT OUTPUT`: score a CSV or Parquet file with the served model.

INPUT is read in chunks, so memory stays flat however long the file is. Each chunk goes through
the service's own preprocessing and network (model.py), and OUTPUT (Parquet) gets the input's
columns plus `probability`, `label`, `model_name`, `model_version` and `scored_at`.

A row the service would refuse (a missing feature value, text or NaN/inf in a number, an empty
category) stops the run with a report of which rows and why, leaving no OUTPUT; with
`--rejects FILE` such rows go to FILE (Parquet, with `row` and `reason`) and the rest is scored.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..data.dataset import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from ..data.preprocessing import numbers
from ..errors import ProjectError, reported_errors
from .model import LoadedModel, load
from .settings import ServeSettings

READERS = (".csv", ".parquet")
EXAMPLES = 10  # bad rows quoted in the report


class BatchInputError(ProjectError, ValueError):
    """The input file cannot be scored as it is; the message says where and why."""


def read_chunks(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    """`path` in chunks of `rows` rows. CSV categories (and any other non-feature column)
    stay text: an id such as 007 keeps its zeros."""
    if not path.is_file():
        raise BatchInputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as error:
            raise BatchInputError(f"{path} is not a readable Parquet file: {error}") from None
        _require_features(path, parquet.schema_arrow.names)
        for batch in parquet.iter_batches(batch_size=rows):
            yield batch.to_pandas()
        return
    if suffix != ".csv":
        raise BatchInputError(f"{path}: expected a {' or '.join(READERS)} file")
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise BatchInputError(f"{path} is not a readable CSV file: {error}") from None
    _require_features(path, list(header))
    text = {column: str for column in header if column not in NUMERIC_FEATURES}
    try:
        yield from pd.read_csv(path, chunksize=rows, dtype=text, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise BatchInputError(f"{path}: {error}") from None


def _require_features(path: Path, columns: Sequence[str]) -> None:
    missing = [name for name in (*NUMERIC_FEATURES, *CATEGORICAL_FEATURES) if name not in columns]
    if missing:
        raise BatchInputError(f"{path} lacks feature columns: {', '.join(missing)}")


def row_problems(chunk: pd.DataFrame) -> pd.Series:
    """Per row, why the service would refuse it ('' when it would not): the same rules as
    the request schema (schema.py), on whole columns at once."""
    reasons = pd.Series("", index=chunk.index, dtype=object)
    for column in NUMERIC_FEATURES:
        bad = ~np.isfinite(numbers(chunk[column]))
        reasons[bad] += f"{column} is not a finite number; "
    for column in CATEGORICAL_FEATURES:
        values = chunk[column]
        bad = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
        reasons[bad] += f"{column} is empty; "
    return reasons.str.removesuffix("; ")


@dataclass
class Outcome:
    scored: int = 0
    rejected: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, rows: pd.Series, reasons: pd.Series) -> None:
        self.rejected += len(rows)
        for row, reason in zip(rows, reasons, strict=True):
            if len(self.examples) < EXAMPLES:
                self.examples.append(f"row {row}: {reason}")


class ParquetSink:
    """Appends tables to a Parquet file written beside `path`, renamed into place on commit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(f".{path.name}.partial")
        self.writer: pq.ParquetWriter | None = None

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.partial, table.schema)
        self.writer.write_table(table.cast(self.writer.schema))

    def commit(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.partial.replace(self.path)

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.partial.unlink(missing_ok=True)


def score_file(
    model: LoadedModel,
    source: Path,
    output: Path,
    rejects: Path | None = None,
    chunk_rows: int = 100_000,
    threshold: float = 0.5,
) -> Outcome:
    outcome = Outcome()
    scored_at = datetime.now(UTC)
    sinks = [ParquetSink(output), *([ParquetSink(rejects)] if rejects else [])]
    first_row = 0
    try:
        for chunk in read_chunks(source, chunk_rows):
            chunk.index = pd.RangeIndex(first_row, first_row + len(chunk))
            first_row += len(chunk)
            reasons = row_problems(chunk)
            bad = (reasons != "").to_numpy()
            if bad.any():
                outcome.note(chunk.index[bad].to_series(), reasons[bad])
                if rejects is not None:
                    refused = (
                        chunk[bad].astype(str).assign(row=chunk.index[bad], reason=reasons[bad])
                    )
                    sinks[1].write(refused)
                chunk = chunk[~bad]
            if chunk.empty:
                continue
            probabilities = model.predict(chunk)
            sinks[0].write(
                chunk.assign(
                    probability=probabilities,
                    label=(probabilities >= threshold).astype(np.int8),
                    model_name=model.ref.name,
                    model_version=model.ref.version,
                    scored_at=scored_at,
                )
            )
            outcome.scored += len(chunk)
        if outcome.rejected and rejects is None:
            raise BatchInputError(_report(source, outcome))
    except BaseException:
        for sink in sinks:
            sink.discard()
        raise
    for sink in sinks:
        sink.commit()
    return outcome


def _report(source: Path, outcome: Outcome) -> str:
    more = outcome.rejected - len(outcome.examples)
    listed = "; ".join(outcome.examples) + (f"; and {more} more" if more > 0 else "")
    return (
        f"{outcome.rejected} rows of {source} cannot be scored ({listed}); nothing was written. "
        "Fix them, or pass --rejects FILE (make batch-predict REJECTS=FILE) to set them aside"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("input", type=Path, help="rows to score (.csv or .parquet)")
    parser.add_argument("output", type=Path, help="where to write the scored rows (.parquet)")
    parser.add_argument("--rejects", type=Path, help="write rows that cannot be scored here")
    parser.add_argument("--model-uri", help="default: the service's MODEL_URI setting")
    parser.add_argument("--chunk-rows", type=int, default=100_000, help="rows read at a time")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with reported_errors():
        if args.chunk_rows < 1:
            raise BatchInputError(f"--chunk-rows must be at least 1, not {args.chunk_rows}")
        settings = ServeSettings.load(model_uri=args.model_uri)
        model = load(
            settings.model_uri,
            settings.tracking_uri,
            settings.model_cache_dir,
            settings.inference_threads,
        )
        outcome = score_file(
            model,
            args.input,
            args.output,
            args.rejects,
            args.chunk_rows,
            settings.decision_threshold,
        )
    set_aside = f"; {outcome.rejected} rejected rows in {args.rejects}" if args.rejects else ""
    version = f"{model.ref.name} v{model.ref.version}" if model.ref.version else model.ref.uri
    print(f"{outcome.scored} rows scored by {version} -> {args.output}{set_aside}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
