"""`<project>-serve`: run the model server with uvicorn (settings: docs/serving.md)."""

from __future__ import annotations

import argparse
import os
import tempfile

from ..errors import reported_errors
from .metrics import MULTIPROCESS_ENV
from .observability import log_config
from .settings import ENV_PREFIX, ServeSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Serve the registered model over HTTP. Flags override the "
        f"{ENV_PREFIX}* environment variables."
    )
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8000)")
    parser.add_argument("--workers", type=int, help="worker processes (default 1)")
    parser.add_argument("--model-uri", help="models:/NAME@ALIAS, models:/NAME/VERSION or a folder")
    args = parser.parse_args(argv)
    overrides = {key: value for key, value in vars(args).items() if value is not None}
    with reported_errors():
        settings = ServeSettings.load(**overrides)
    # Workers build their own settings from the environment: hand the flags on.
    for key, value in overrides.items():
        os.environ[f"{ENV_PREFIX}{key.upper()}"] = str(value)
    # Each worker (a spawned process that imports the metrics afresh) writes its metrics where
    # /metrics adds them up.
    if settings.workers > 1:
        os.environ[MULTIPROCESS_ENV] = tempfile.mkdtemp(prefix="serving-metrics-")
    # MLflow draws a progress bar per download: noise between the JSON log lines.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    import uvicorn

    uvicorn.run(
        f"{__package__}.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=log_config(settings.log_level),
        access_log=False,  # the service logs requests itself, with their request id
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
