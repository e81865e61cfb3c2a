"""`<project>-batch-predict INPUT OUTPUT`: score a CSV or Parquet file with the served model.

INPUT is read in chunks, so memory follows the chunk (`--chunk-rows`), not the file's length.
Each chunk goes through the service's own preprocessing and network (model.py), and OUTPUT
(Parquet or CSV, as its suffix says) gets the input's columns (numeric features as float64)
plus `probability`, `label`, `model_name`, `model_version` and `scored_at`. An input without
rows gives an OUTPUT without rows, with those columns.

A row the service would refuse (a missing feature value, text or NaN/inf in a number, a number
outside the valid range dataset.py sets, an empty or overlong category) stops the run with a
report of which rows and why, leaving no OUTPUT; with `--rejects FILE` such rows go to FILE
(with `row` and `reason`) and the rest is scored.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ..data.contract import CATEGORICAL, FEATURES, MAX_CATEGORY_LENGTH, NUMERIC
from ..data.preprocessing import numbers
from ..errors import ProjectError, reported_errors
from .model import LoadedModel, load
from .settings import ServeSettings

FORMATS = (".csv", ".parquet")
EXAMPLES = 10  # bad rows quoted in the report


class BatchInputError(ProjectError, ValueError):
    """The input file cannot be scored as it is; the message says where and why."""


class BatchOutputError(ProjectError, OSError):
    """An output file cannot be written where it was asked for; the message says why."""


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
        if parquet.metadata.num_rows == 0:  # no batches: one empty chunk carries the columns
            yield parquet.schema_arrow.empty_table().to_pandas()
        for batch in parquet.iter_batches(batch_size=rows):
            yield batch.to_pandas()
        return
    if suffix != ".csv":
        raise BatchInputError(f"{path}: expected a {' or '.join(FORMATS)} file")
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise BatchInputError(f"{path} is not a readable CSV file: {error}") from None
    _require_features(path, list(header))
    text = {column: str for column in header if column not in NUMERIC}
    try:
        yield from pd.read_csv(path, chunksize=rows, dtype=text, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise BatchInputError(f"{path}: {error}") from None


def _require_features(path: Path, columns: Sequence[str]) -> None:
    missing = [name for name in FEATURES if name not in columns]
    if missing:
        raise BatchInputError(f"{path} lacks feature columns: {', '.join(missing)}")


def row_problems(chunk: pd.DataFrame) -> pd.Series:
    """Per row, why the service would refuse it ('' when it would not): the same rules as
    the request schema (schema.py, the contract's ranges), on whole columns at once."""
    reasons = pd.Series("", index=chunk.index, dtype=object)
    for column, valid in NUMERIC.items():
        bad = valid.invalid(numbers(chunk[column]))
        reasons[bad] += f"{column} is not a number in its valid range ({valid}); "
    for column in CATEGORICAL:
        text = chunk[column].astype(str).str.strip()
        bad = chunk[column].isna().to_numpy() | (text == "").to_numpy()
        reasons[bad] += f"{column} is empty; "
        long = (text.str.len() > MAX_CATEGORY_LENGTH).to_numpy()
        reasons[long] += f"{column} is over {MAX_CATEGORY_LENGTH} characters; "
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


class Sink:
    """Appends tables to a Parquet or CSV file (by its suffix), written beside `path` and renamed
    into place on commit; a run that stops halfway leaves no OUTPUT."""

    def __init__(self, path: Path) -> None:
        if path.suffix.lower() not in FORMATS:
            raise BatchOutputError(
                f"{path}: the output's suffix sets its format: {' or '.join(FORMATS)}"
            )
        self.path = path
        self.partial = path.with_name(f".{path.name}.partial")
        self.writer: pq.ParquetWriter | pa_csv.CSVWriter | None = None
        self.schema: pa.Schema | None = None  # the first table's: later chunks are cast to it
        with _writing(self.path):  # a bad path fails now, before any row is scored
            path.parent.mkdir(parents=True, exist_ok=True)
            self.partial.touch()

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        with _writing(self.path):
            if self.writer is None or self.schema is None:
                # A column of an empty frame has no type: text is what it would have held.
                self.schema = pa.schema(
                    column.with_type(pa.string()) if pa.types.is_null(column.type) else column
                    for column in table.schema
                )
                csv = self.path.suffix.lower() == ".csv"
                kind = pa_csv.CSVWriter if csv else pq.ParquetWriter
                self.writer = kind(self.partial, self.schema)
            self.writer.write_table(table.cast(self.schema))

    def commit(self) -> None:
        with _writing(self.path):
            if self.writer is not None:
                self.writer.close()
            self.partial.replace(self.path)

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.partial.unlink(missing_ok=True)


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """A failed write (a full disk, a file where a folder should be) is one BatchOutputError."""
    try:
        yield
    except OSError as error:
        if isinstance(error, BatchOutputError):
            raise
        raise BatchOutputError(f"cannot write {path}: {error.strerror or error}") from None


def score_file(
    model: LoadedModel,
    source: Path,
    output: Path,
    rejects: Path | None = None,
    chunk_rows: int = 100_000,
    threshold: float = 0.5,
) -> Outcome:
    if output.resolve() == source.resolve() or (rejects and rejects.resolve() == source.resolve()):
        raise BatchOutputError(f"{source} is the input: write the output to another file")
    outcome = Outcome()
    scored_at = datetime.now(UTC)
    sinks = [Sink(output)]
    try:
        if rejects is not None:
            sinks.append(Sink(rejects))
        first_row = 0
        for chunk in read_chunks(source, chunk_rows):
            chunk.index = pd.RangeIndex(first_row, first_row + len(chunk))
            first_row += len(chunk)
            reasons = row_problems(chunk)
            bad = (reasons != "").to_numpy()
            outcome.note(chunk.index[bad].to_series(), reasons[bad])
            # An empty first chunk is written too: a file without rows still has its columns.
            if rejects is not None and (bad.any() or sinks[1].writer is None):
                refused = chunk[bad].astype(str)
                sinks[1].write(refused.assign(row=chunk.index[bad], reason=reasons[bad]))
            for name in NUMERIC:  # in place: a copy of the chunk is most of the peak memory
                chunk[name] = numbers(chunk[name])
            good = chunk[~bad] if bad.any() else chunk
            if len(good) or sinks[0].writer is None:
                probabilities = model.predict(good) if len(good) else np.empty(0)
                sinks[0].write(
                    good.assign(
                        probability=probabilities,
                        label=(probabilities >= threshold).astype(np.int8),
                        model_name=model.ref.name,
                        model_version=model.ref.version,
                        scored_at=scored_at,
                    )
                )
            outcome.scored += len(good)
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
    parser.add_argument("output", type=Path, help="where to write the scored rows (.parquet, .csv)")
    parser.add_argument(
        "--rejects", type=Path, help="write rows that cannot be scored here (.parquet or .csv)"
    )
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
