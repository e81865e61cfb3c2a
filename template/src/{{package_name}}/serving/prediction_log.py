"""The prediction log: each scored row with its prediction, model version and time, appended as
Parquet files under `<dir>/date=YYYY-MM-DD/` for drift monitoring to read.

Requests never wait for it: `record` appends a request's values to one list per column, and a
thread writes them every few seconds. Plain lists of numbers and strings cost the cyclic
garbage collector nothing (a queue of per-request objects made its full passes take 25 ms),
and each becomes an Arrow column in one C loop. When the backlog is full or a write fails (a
full disk, a lost mount), rows are dropped and counted in
`serving_prediction_log_dropped_total`; the service keeps answering.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .metrics import LOG_DROPPED, LOG_ROWS

log = logging.getLogger(__name__)


def log_schema(numeric: Sequence[str], categorical: Sequence[str]) -> pa.Schema:
    """The columns of every log file: one schema, so that a day of files reads as one table."""
    return pa.schema(
        [
            ("timestamp", pa.timestamp("us", tz="UTC")),
            ("request_id", pa.string()),
            ("row", pa.int32()),
            ("role", pa.string()),  # served, or shadow (scored by the shadow model)
            ("model_name", pa.string()),
            ("model_version", pa.string()),
            ("model_alias", pa.string()),
            *((name, pa.float64()) for name in numeric),
            *((name, pa.string()) for name in categorical),
            ("probability", pa.float64()),
            ("label", pa.int8()),
        ]
    )


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
        self._pending = self._empty()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._files = 0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)

    def _empty(self) -> dict[str, list[Any]]:
        return {name: [] for name in self.schema.names}

    def start(self) -> PredictionLog:
        self._thread.start()
        return self

    def sampled(self) -> bool:
        """Whether to log the next request (`PREDICTION_LOG_SAMPLE_RATE`)."""
        return self.sample_rate >= 1 or random.random() < self.sample_rate

    def record(
        self,
        columns: Mapping[str, Sequence[Any]],
        probabilities: Sequence[float],
        labels: Sequence[int],
        model: Mapping[str, str | None],
        request_id: str,
        role: str = "served",
    ) -> None:
        """Queue one request's rows; drops them (counted) when the backlog is full."""
        size = len(probabilities)
        request = {
            "timestamp": time.time_ns() // 1000,  # microseconds, the schema's unit
            "request_id": request_id,
            "role": role,
            "model_name": model["name"],
            "model_version": model["version"],
            "model_alias": model["alias"],
        }
        with self._lock:
            if len(self._pending["row"]) + size > self.max_rows:
                LOG_DROPPED.labels("backlog_full").inc(size)
                return
            pending = self._pending
            for name, value in request.items():
                pending[name] += [value] * size
            pending["row"] += range(size)
            for name, values in columns.items():
                pending[name] += values
            pending["probability"] += probabilities
            pending["label"] += labels

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.flush_s)
            self.flush()

    def flush(self) -> None:
        """Write what is queued as one Parquet file (or drop it, counted, if that fails)."""
        with self._lock:
            pending, self._pending = self._pending, self._empty()
        size = len(pending["row"])
        if not size:
            return
        try:
            self._write(pending)
        except Exception as error:  # a full disk or a lost mount must not stop the service
            LOG_DROPPED.labels("write_failed").inc(size)
            log.warning("prediction log: dropped %d rows: %s", size, error)
        else:
            LOG_ROWS.inc(size)

    def _write(self, pending: dict[str, list[Any]]) -> None:
        stamp = datetime.fromtimestamp(pending["timestamp"][0] / 1e6, UTC)
        table = pa.Table.from_arrays(
            [pa.array(pending[field.name], field.type) for field in self.schema],
            schema=self.schema,
        )
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
