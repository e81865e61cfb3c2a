"""The prediction log: each scored row with its prediction, model version and time, appended as
Parquet files under `<dir>/date=YYYY-MM-DD/` for drift monitoring to read.

Requests never wait for it. `record` takes the rows of one model call (serving/batching.py) and
extends one array (numbers, probabilities, labels) or list (categories) per column with them, in
C, and keeps a tuple of each request's time, id and model; a thread turns what gathered into
Arrow columns and writes them every few seconds. Of a request only that tuple outlives it: kept for
seconds, a request's own objects made the cyclic garbage collector's passes longer (25 ms) and
every later request allocate fresh memory (docs/benchmarks.md has the measurements). When the
backlog is full or a write fails (a full disk, a lost mount), rows are dropped and counted in
`serving_prediction_log_dropped_total`; the service keeps answering.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from array import array
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .metrics import LOG_DROPPED, LOG_ROWS

log = logging.getLogger(__name__)

# One value per request, in the order `record` keeps them.
REQUEST_COLUMNS = pa.schema(
    [
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("request_id", pa.string()),
        ("role", pa.string()),  # served, or shadow (scored by the shadow model)
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("model_alias", pa.string()),
    ]
)
ROW = pa.field("row", pa.int32())  # the row's place in its request
PREDICTION_COLUMNS = pa.schema([("probability", pa.float64()), ("label", pa.int8())])


def log_schema(numeric: Sequence[str], categorical: Sequence[str]) -> pa.Schema:
    """The columns of every log file: one schema, so that a day of files reads as one table."""
    return pa.schema(
        [
            *REQUEST_COLUMNS,
            ROW,
            *((name, pa.float64()) for name in numeric),
            *((name, pa.string()) for name in categorical),
            *PREDICTION_COLUMNS,
        ]
    )


class Pending:
    """What gathered since the last write: one tuple per request, one array or list per column."""

    def __init__(self, numeric: Sequence[str], categorical: Sequence[str]) -> None:
        self.requests: list[tuple[Any, ...]] = []
        self.numbers: dict[str, array[float]] = {name: array("d") for name in numeric}
        # Strings are not tracked by the cyclic collector, and pydantic hands the same object
        # for the same short string: a list of categories costs a pointer per row.
        self.categories: dict[str, list[str]] = {name: [] for name in categorical}
        self.probabilities: array[float] = array("d")
        self.labels: array[int] = array("b")

    @property
    def size(self) -> int:
        """Rows: one probability each."""
        return len(self.probabilities)


class PredictionLog:
    def __init__(
        self,
        directory: Path,
        schema: pa.Schema,
        sample_rate: float,
        flush_s: float,
        max_rows: int,
    ) -> None:
        self.directory = directory
        self.schema = schema
        self.sample_rate = sample_rate
        self.flush_s = flush_s
        self.max_rows = max_rows
        fixed = {*REQUEST_COLUMNS.names, ROW.name, *PREDICTION_COLUMNS.names}
        features = [column for column in schema if column.name not in fixed]
        self._numeric = [column.name for column in features if column.type == pa.float64()]
        self._categorical = [column.name for column in features if column.type == pa.string()]
        self._pending = self._empty()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._files = 0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)

    def _empty(self) -> Pending:
        return Pending(self._numeric, self._categorical)

    def start(self) -> PredictionLog:
        self._thread.start()
        return self

    def record(
        self,
        values: Mapping[str, Sequence[Any]],
        probabilities: Sequence[float],
        labels: Sequence[int],
        model: Mapping[str, str | None],
        requests: Sequence[tuple[str, int]],
        role: str = "served",
    ) -> None:
        """Queue the rows of one model call: `values` holds one list per feature, `requests`
        each request's id and number of rows, in the rows' order. A request is logged whole or
        not at all: with `PREDICTION_LOG_SAMPLE_RATE` below 1 by that chance, and when the
        backlog is full it is dropped (counted)."""
        stamp = time.time_ns() // 1000  # microseconds, the schema's unit
        with self._lock:
            pending = self._pending
            if self.sample_rate < 1 or pending.size + len(probabilities) > self.max_rows:
                kept = self._kept(requests, self.max_rows - pending.size)
                values, probabilities, labels = _rows_of(
                    kept, requests, values, probabilities, labels
                )
                requests = [request for request, keep in zip(requests, kept, strict=True) if keep]
            pending.requests.extend(
                (stamp, request_id, role, model["name"], model["version"], model["alias"], rows)
                for request_id, rows in requests
            )
            for name, numbers in pending.numbers.items():
                numbers.extend(values[name])
            for name, categories in pending.categories.items():
                categories.extend(values[name])
            pending.probabilities.extend(probabilities)
            pending.labels.extend(labels)

    def _kept(self, requests: Sequence[tuple[str, int]], room: int) -> list[bool]:
        """Which requests to log: those sampled whose rows fit in `room` (the others sampled
        are dropped, counted)."""
        kept = []
        dropped = 0
        for _, rows in requests:
            if self.sample_rate < 1 and random.random() >= self.sample_rate:
                kept.append(False)
            elif rows > room:
                dropped += rows
                kept.append(False)
            else:
                room -= rows
                kept.append(True)
        if dropped:
            LOG_DROPPED.labels("backlog_full").inc(dropped)
        return kept

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.flush_s)
            self.flush()

    def flush(self) -> None:
        """Write what is queued as one Parquet file (or drop it, counted, if that fails)."""
        with self._lock:
            pending, self._pending = self._pending, self._empty()
        size = pending.size
        if not size:
            return
        try:
            self._write(pending)
        except Exception as error:  # a full disk or a lost mount must not stop the service
            LOG_DROPPED.labels("write_failed").inc(size)
            log.warning("prediction log: dropped %d rows: %s", size, error)
        else:
            LOG_ROWS.inc(size)

    def table(self, pending: Pending) -> pa.Table:
        """The pending rows as one table of the log's schema."""
        *values, sizes = zip(*pending.requests, strict=True)
        columns = {
            column.name: pa.array(value, column.type)
            for column, value in zip(REQUEST_COLUMNS, values, strict=True)
        }
        counts = np.asarray(sizes)
        position = np.zeros(pending.size, dtype=np.int32)
        if len(counts) != len(position):  # some requests held several rows
            first = np.repeat(np.cumsum(counts) - counts, counts)
            position = np.arange(len(position), dtype=np.int32) - first
            request = pa.array(np.repeat(np.arange(len(counts)), counts))
            columns = {name: column.take(request) for name, column in columns.items()}
        columns[ROW.name] = pa.array(position, ROW.type)
        for name, numbers in pending.numbers.items():
            columns[name] = pa.array(np.frombuffer(numbers, dtype=np.float64))
        for name, categories in pending.categories.items():
            columns[name] = pa.array(categories, pa.string())
        columns["probability"] = pa.array(np.frombuffer(pending.probabilities, dtype=np.float64))
        columns["label"] = pa.array(np.frombuffer(pending.labels, dtype=np.int8))
        return pa.Table.from_arrays(
            [columns[name] for name in self.schema.names], schema=self.schema
        )

    def _write(self, pending: Pending) -> None:
        table = self.table(pending)
        stamp = datetime.fromtimestamp(pending.requests[0][0] / 1e6, UTC)
        folder = self.directory / f"date={stamp:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        self._files += 1
        name = f"part-{stamp:%H%M%S%f}-{os.getpid()}-{self._files}.parquet"
        partial = folder / f".{name}.tmp"
        try:
            pq.write_table(table, partial)
            partial.rename(folder / name)  # readers never see half a file
        finally:
            partial.unlink(missing_ok=True)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread and write what is left (at shutdown)."""
        self._stopping = True
        self._wake.set()
        deadline = time.monotonic() + timeout
        self._thread.join(max(0.0, deadline - time.monotonic()))
        self.flush()


def _rows_of(
    kept: Sequence[bool],
    requests: Sequence[tuple[str, int]],
    values: Mapping[str, Sequence[Any]],
    probabilities: Sequence[float],
    labels: Sequence[int],
) -> tuple[dict[str, list[Any]], list[float], list[int]]:
    """The values, probabilities and labels of the kept requests' rows."""
    rows: list[int] = []
    start = 0
    for (_, size), keep in zip(requests, kept, strict=True):
        if keep:
            rows.extend(range(start, start + size))
        start += size
    return (
        {name: [column[row] for row in rows] for name, column in values.items()},
        [probabilities[row] for row in rows],
        [labels[row] for row in rows],
    )
