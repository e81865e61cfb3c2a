"""Adaptive batching: the requests waiting at the same moment share one model call.

A request's rows join the open batch of its model, and the batch is scored at the event loop's
next turn, after the loop has read every request that arrived meanwhile. Nothing waits for a
batch to fill: at light load a batch is one request. Under load one call serves many requests,
which spreads the model's fixed cost per call (numpy and onnxruntime set-up, cold caches) that
is most of a single-row prediction. What is done with a call's rows beyond answering them (the
metrics, the prediction log) is done once per call too, by the batcher's `on_scored`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from itertools import accumulate, chain
from typing import Any

import numpy as np

from ..data.contract import FEATURES
from .model import LoadedModel

Columns = dict[str, list[Any]]
# (request id, rows) of each request of a call, in the order of its rows.
Requests = list[tuple[str, int]]
# Called after each model call with the model, every row, their probabilities and the requests.
OnScored = Callable[[LoadedModel, Columns, list[float], Requests], None]


class NonFiniteOutputError(RuntimeError):
    """The model gave a probability that is not a finite number: an error of the service (the
    request's rows were valid), never an answer."""

    def __init__(self, rows: list[int]) -> None:
        super().__init__(
            f"the model gave no finite probability for row{'s' if len(rows) > 1 else ''} "
            f"{', '.join(map(str, rows[:10]))}{' ...' if len(rows) > 10 else ''}"
        )
        self.rows = rows


class Batch:
    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.requests: list[tuple[Columns, str, asyncio.Future[list[float]]]] = []

    def score(self, on_scored: OnScored | None = None) -> None:
        """One model call for every request in the batch; each gets its rows' probabilities
        (or the error, if the call failed or gave one of its rows no finite probability)."""
        waiting = [request for request in self.requests if not request[2].done()]
        if not waiting:
            return  # every caller went away (client disconnects cancel their futures)
        try:
            joined = {
                name: list(chain.from_iterable(values[name] for values, _, _ in waiting))
                for name in FEATURES
            }
            scores = self.model.predict(joined)
            probabilities = scores.tolist()
        except Exception as error:  # every caller gets it: none may wait forever
            for _, _, future in waiting:
                future.set_exception(error)
            return
        requests = [(request_id, len(values[FEATURES[0]])) for values, request_id, _ in waiting]
        ends = list(accumulate(size for _, size in requests))
        # One check of the whole call; a request's rows are looked at only when it fails.
        finite = bool(np.isfinite(scores).all())
        kept = []
        for index, ((_, size), end, (_, _, future)) in enumerate(
            zip(requests, ends, waiting, strict=True)
        ):
            answer = probabilities[end - size : end]
            bad = [] if finite else [row for row, p in enumerate(answer) if not math.isfinite(p)]
            if bad:
                future.set_exception(NonFiniteOutputError(bad))
            else:
                future.set_result(answer)
                kept.append(index)
        if on_scored is None or not kept:
            return
        if len(kept) < len(waiting):  # only answered rows are counted and logged
            joined, probabilities, requests = _subset(joined, probabilities, requests, ends, kept)
        on_scored(self.model, joined, probabilities, requests)


def _subset(
    joined: Columns,
    probabilities: list[float],
    requests: Requests,
    ends: list[int],
    kept: list[int],
) -> tuple[Columns, list[float], Requests]:
    """The rows of the requests at `kept` (indexes into `requests`)."""
    spans = [range(ends[i] - requests[i][1], ends[i]) for i in kept]
    rows = [row for span in spans for row in span]
    columns = {name: [values[row] for row in rows] for name, values in joined.items()}
    return columns, [probabilities[row] for row in rows], [requests[i] for i in kept]


class Batcher:
    """Scores rows with a model, together with the other requests that wait for it."""

    def __init__(self, on_scored: OnScored | None = None) -> None:
        self.on_scored = on_scored
        self._open: dict[int, Batch] = {}  # by id(model): during a reload two models serve

    async def predict(
        self, model: LoadedModel, values: Columns, request_id: str
    ) -> Sequence[float]:
        loop = asyncio.get_running_loop()
        batch = self._open.get(id(model))
        if batch is None:
            batch = self._open[id(model)] = Batch(model)
            loop.call_soon(self._close, batch)
        future: asyncio.Future[list[float]] = loop.create_future()
        batch.requests.append((values, request_id, future))
        return await future

    def _close(self, batch: Batch) -> None:
        del self._open[id(batch.model)]
        batch.score(self.on_scored)
