"""The prediction log: each scored row with its prediction, model version and time, appended as
Parquet files under `<dir>/date=YYYY-MM-DD/` for drift monitoring to read.

Requests never wait for it: `record` puts rows in memory and a thread writes them every few
seconds. When the backlog is full or a write fails (a full disk, a lost mount), rows are
dropped and counted in `serving_prediction_log_dropped_total`; the service keeps answering.
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

import numpy as np
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
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._files = 0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)

    def start(self) -> PredictionLog:
        self._thread.start()
        return self

    def sampled(self) -> bool:
        """Whether to log the next request (`PREDICTION_LOG_SAMPLE_RATE`)."""
        return self.sample_rate >= 1 or random.random() < self.sample_rate

    def record(
        self,
        columns: Mapping[str, Sequence[Any]],
        probabilities: np.ndarray,
        labels: np.ndarray,
        model: Mapping[str, str | None],
        request_id: str,
        role: str = "served",
    ) -> None:
        """Queue one request's rows; drops them (counted) when the backlog is full."""
        now = datetime.now(UTC)
        rows = [
            {
                "timestamp": now,
                "request_id": request_id,
                "row": index,
                "role": role,
                "model_name": model["name"],
                "model_version": model["version"],
                "model_alias": model["alias"],
                **{name: values[index] for name, values in columns.items()},
                "probability": float(probability),
                "label": int(label),
            }
            for index, (probability, label) in enumerate(zip(probabilities, labels, strict=True))
        ]
        with self._lock:
            if len(self._pending) + len(rows) > self.max_rows:
                LOG_DROPPED.labels("backlog_full").inc(len(rows))
                return
            self._pending.extend(rows)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.flush_s)
            self.flush()

    def flush(self) -> None:
        """Write what is queued as one Parquet file (or drop it, counted, if that fails)."""
        with self._lock:
            rows, self._pending = self._pending, []
        if not rows:
            return
        try:
            self._write(rows)
        except Exception as error:  # a full disk or a lost mount must not stop the service
            LOG_DROPPED.labels("write_failed").inc(len(rows))
            log.warning("prediction log: dropped %d rows: %s", len(rows), error)
        else:
            LOG_ROWS.inc(len(rows))

    def _write(self, rows: list[dict[str, Any]]) -> None:
        stamp = rows[0]["timestamp"]
        folder = self.directory / f"date={stamp:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        self._files += 1
        name = f"part-{stamp:%H%M%S%f}-{os.getpid()}-{self._files}.parquet"
        partial = folder / f".{name}.tmp"
        try:
            pq.write_table(pa.Table.from_pylist(rows, schema=self.schema), partial)
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
