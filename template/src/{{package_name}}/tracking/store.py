"""Where a local MLflow store keeps its files. Standard library only: composing a config
(every command, a fully cached pipeline run included) must not import the training stack."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

ARTIFACTS_FOLDER = "mlartifacts"


def artifact_location(tracking_uri: str) -> str | None:
    """`mlartifacts/` next to a local sqlite store; None lets a tracking server decide.

    Without an explicit location MLflow puts artifacts of a sqlite store in `./mlruns`
    under whatever the current directory happens to be.
    """
    parsed = urlparse(tracking_uri)
    if parsed.scheme != "sqlite":
        return None
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    return (database.resolve().parent / ARTIFACTS_FOLDER).as_uri()
