"""Environment variables changed for the length of a block, then put back as they were."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def restored(*names: str) -> Iterator[None]:
    """Whatever the block does to these variables is undone when it ends."""
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# MLflow's HTTP requests for a caller that retries on its own or must answer soon: one retry
# and a 5 s timeout, instead of MLflow's seven retries with backoff (about four minutes before
# a tracking server that is down gives an error).
QUICK_MLFLOW_REQUESTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}


@contextmanager
def quick_mlflow_requests() -> Iterator[None]:
    """MLflow's HTTP requests in the block give up within seconds (QUICK_MLFLOW_REQUESTS), where
    the environment does not set those variables itself."""
    with restored(*QUICK_MLFLOW_REQUESTS):
        for name, value in QUICK_MLFLOW_REQUESTS.items():
            os.environ.setdefault(name, value)
        yield
