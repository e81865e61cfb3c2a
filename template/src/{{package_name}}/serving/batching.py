"""Adaptive batching: the requests waiting at the same moment share one model call.

A request's rows join the open batch of its model, and the batch is scored at the event loop's
next turn, after the loop has read every request that arrived meanwhile. Nothing waits for a
batch to fill: at light load a batch is one request. Under load one call serves many requests,
which spreads the model's fixed cost per call (numpy and onnxruntime set-up, cold caches) that
is most of a single-row prediction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from itertools import accumulate, chain
from typing import Any

from . import metrics
from .model import LoadedModel
from .schema import FEATURES

Columns = dict[str, list[Any]]


class Batch:
    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.requests: list[tuple[Columns, asyncio.Future[list[float]]]] = []

    def score(self) -> None:
        """One model call for every request in the batch; each gets its rows' probabilities
        (or the error, if the call failed)."""
        requests = [(values, future) for values, future in self.requests if not future.done()]
        if not requests:
            return  # every caller went away (client disconnects cancel their futures)
        metrics.BATCH_REQUESTS.observe(len(requests))
        try:
            joined = {
                name: list(chain.from_iterable(values[name] for values, _ in requests))
                for name in FEATURES
            }
            probabilities = self.model.predict(joined).tolist()
        except Exception as error:
            for _, future in requests:
                future.set_exception(error)
            return
        sizes = [len(values[FEATURES[0]]) for values, _ in requests]
        ends = list(accumulate(sizes))
        for (_, future), end, size in zip(requests, ends, sizes, strict=True):
            future.set_result(probabilities[end - size : end])


class Batcher:
    """Scores rows with a model, together with the other requests that wait for it."""

    def __init__(self) -> None:
        self._open: dict[int, Batch] = {}  # by id(model): during a reload two models serve

    async def predict(self, model: LoadedModel, values: Columns) -> Sequence[float]:
        loop = asyncio.get_running_loop()
        batch = self._open.get(id(model))
        if batch is None:
            batch = self._open[id(model)] = Batch(model)
            loop.call_soon(self._close, batch)
        future: asyncio.Future[list[float]] = loop.create_future()
        batch.requests.append((values, future))
        return await future

    def _close(self, batch: Batch) -> None:
        del self._open[id(batch.model)]
        batch.score()
