"""Check the MLflow tracking server before a command reads data or trains: one cheap request
with MLflow's retries shortened for it alone, instead of four minutes of retries and a traceback
after training began (docs/golden-path.md, "Tracking").
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from ..errors import ProjectError
from .environment import QUICK_MLFLOW_REQUESTS, quick_mlflow_requests

CHECK_SETTINGS = QUICK_MLFLOW_REQUESTS
TIMEOUT_ENV = "MLFLOW_HTTP_REQUEST_TIMEOUT"
SERVER_SCHEMES = ("http", "https")  # file and database stores are local: nothing to ask


class TrackingServerError(ProjectError):
    """The tracking server at MLFLOW_TRACKING_URI cannot be reached or refuses to answer."""


@contextmanager
def _check_settings() -> Iterator[None]:
    retries = logging.getLogger("urllib3.connectionpool")  # one warning line per retry
    level = retries.level
    with quick_mlflow_requests():
        retries.setLevel(logging.ERROR)
        try:
            yield
        finally:
            retries.setLevel(level)


def _network_cause(error: BaseException) -> str | None:
    """Why the request got no answer, in a few words, from the exceptions under MLflow's (the
    socket's own error is at the bottom); None when the server did answer."""
    chain: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    for link in reversed(chain):
        if isinstance(link, ConnectionRefusedError):
            return "connection refused (is the server running, on that port?)"
        if isinstance(link, socket.gaierror):
            return "unknown host"
        if isinstance(link, TimeoutError):
            seconds = os.environ.get(TIMEOUT_ENV, CHECK_SETTINGS[TIMEOUT_ENV])
            return f"no answer within {seconds} s (for a slow server raise {TIMEOUT_ENV})"
        if isinstance(link, OSError) and link.strerror:
            return link.strerror
    return None


def require_tracking_server(uri: str) -> None:
    """Return when the tracking server at `uri` answers; raise `TrackingServerError` naming
    the URI and the cause when it does not. A local store (sqlite, files) needs no check."""
    if urlparse(uri).scheme not in SERVER_SCHEMES:
        return
    with _check_settings():
        try:
            MlflowClient(uri).search_experiments(max_results=1)
        except MlflowException as error:
            cause = _network_cause(error)
            problem = (
                f"cannot be reached: {cause}"
                if cause
                else f"answered with an error: {str(error).splitlines()[0][:300]}"
            )
            raise TrackingServerError(
                f"MLflow tracking server {uri} {problem}. Check MLFLOW_TRACKING_URI, or unset it "
                "to track in the project's local sqlite store."
            ) from error
