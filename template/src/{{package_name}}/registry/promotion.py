"""`<project>-registry`: move the serving aliases, with a record of who, when and why.

    promote [--reason TEXT]    champion <- the challenger that passed the gate; previous <- the
                               old champion (`make promote`)
    rollback [--reason TEXT]   champion <- previous (`make rollback`)
    show [--json]              which version holds each alias
    download --output DIR      the model that --model-uri names, for an image (deploy/docker/)

Every refusal (no challenger, a challenger the gate rejected, nothing to roll back to) moves no
alias and exits with status 2. The registry and tracking server are the pipeline's
(configs/pipeline.yaml: `pipeline.registered_model_name`, `logger.tracking_uri`).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from ..errors import ProjectError, reported_errors
from .gate import CHALLENGER, CHAMPION

PREVIOUS = "previous"
ALIASES = (CHAMPION, CHALLENGER, PREVIOUS)
PASSED = "passed"  # the gate's verdict tag (gate.py) on a version that may be promoted


class PromotionError(ProjectError):
    """The aliases cannot move as asked; nothing was changed."""


@dataclass(frozen=True)
class Move:
    alias: str
    before: str | None  # version
    after: str | None

    def __str__(self) -> str:
        before = f"v{self.before}" if self.before else "(none)"
        after = f"v{self.after}" if self.after else "(removed)"
        return f"{self.alias}: {before} -> {after}"


@dataclass(frozen=True)
class Agreement:
    """How often the challenger, scoring live traffic in shadow mode, gave the champion's label."""

    rows: int
    agreed: int

    def __str__(self) -> str:
        return f"{self.agreed / self.rows:.1%} of {self.rows} shadow-scored rows"


class Registry:
    def __init__(self, client: MlflowClient, name: str) -> None:
        self.client = client
        self.name = name

    def version(self, alias: str) -> ModelVersion | None:
        try:
            return self.client.get_model_version_by_alias(self.name, alias)
        except MlflowException:
            return None

    def aliases(self) -> dict[str, str | None]:
        return {alias: _number(self.version(alias)) for alias in ALIASES}

    def promote(self, reason: str, agreement: Agreement | None = None) -> list[Move]:
        challenger = self.version(CHALLENGER)
        if challenger is None:
            raise PromotionError(
                f"{self.name} has no {CHALLENGER}: `make pipeline` registers one when a model "
                "passes the gate"
            )
        verdict = challenger.tags.get("gate.verdict")
        if verdict != PASSED:
            why = challenger.tags.get("gate.reason", "it carries no gate verdict")
            raise PromotionError(
                f"{self.name} v{challenger.version} did not pass the evaluation gate ({why})"
            )
        champion = self.version(CHAMPION)
        new, old = str(challenger.version), _number(champion)
        event = _event("promotion", reason, previous_champion=old or "none")
        if agreement is not None:
            event["promotion.shadow_agreement"] = f"{agreement.agreed / agreement.rows:.4f}"
            event["promotion.shadow_rows"] = str(agreement.rows)
        moves = [Move(CHAMPION, old, new), Move(CHALLENGER, new, None)]
        if old is not None:
            moves.insert(1, Move(PREVIOUS, _number(self.version(PREVIOUS)), old))
        self._apply(moves, {new: event})
        return moves

    def rollback(self, reason: str) -> list[Move]:
        previous = self.version(PREVIOUS)
        if previous is None:
            raise PromotionError(
                f"{self.name} has no {PREVIOUS} version: nothing to roll back to (a promotion "
                f"over an existing {CHAMPION} sets it)"
            )
        champion = _number(self.version(CHAMPION))
        restored = str(previous.version)
        moves = [Move(CHAMPION, champion, restored), Move(PREVIOUS, restored, None)]
        tags = {restored: _event("rollback", reason, replaced=champion or "none")}
        if champion is not None:
            tags[champion] = _event("rolled_back", reason, restored=restored)
        self._apply(moves, tags)
        return moves

    def _apply(self, moves: list[Move], tags: dict[str, dict[str, str]]) -> None:
        for move in moves:
            if move.after is None:
                self.client.delete_registered_model_alias(self.name, move.alias)
            else:
                self.client.set_registered_model_alias(self.name, move.alias, move.after)
        for version, version_tags in tags.items():
            for key, value in version_tags.items():
                self.client.set_model_version_tag(self.name, version, key, value)


def _number(version: ModelVersion | None) -> str | None:
    return None if version is None else str(version.version)


def actor() -> str:
    """Who moves the alias: the GitHub user in a workflow, the login name elsewhere."""
    return os.environ.get("GITHUB_ACTOR") or getpass.getuser()


def _event(kind: str, reason: str, **details: str) -> dict[str, str]:
    tags = {
        f"{kind}.by": actor(),
        f"{kind}.at": datetime.now(UTC).isoformat(timespec="seconds"),
        f"{kind}.reason": reason or "(none given)",
    }
    return tags | {f"{kind}.{key}": value for key, value in details.items()}


def shadow_agreement(log_dir: Path, challenger: str) -> Agreement | None:
    """Agreement of the challenger's shadow predictions with the served ones, from the
    service's prediction log; None when it holds none for this version."""
    if not log_dir.is_dir() or not any(log_dir.rglob("*.parquet")):
        return None
    import pandas as pd

    columns = ["request_id", "row", "role", "model_version", "label"]
    log = pd.read_parquet(log_dir, columns=columns)
    shadow = log[(log["role"] == "shadow") & (log["model_version"] == challenger)]
    served = log[log["role"] == "served"]
    paired = shadow.merge(served, on=["request_id", "row"], suffixes=("_shadow", "_served"))
    if paired.empty:
        return None
    agreed = int((paired["label_shadow"] == paired["label_served"]).sum())
    return Agreement(len(paired), agreed)


def _commands() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("promote", "rollback"):
        command = sub.add_parser(name)
        command.add_argument("--reason", default="", help="why (kept as a version tag)")
    show = sub.add_parser("show")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    download = sub.add_parser("download")
    download.add_argument("--model-uri", help="default: the service's MODEL_URI setting")
    download.add_argument("--output", type=Path, required=True)
    for command in sub.choices.values():
        command.add_argument(
            "overrides", nargs="*", help="Hydra overrides of configs/pipeline.yaml"
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _commands().parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from ..serving.model import download
    from ..serving.settings import ServeSettings
    from ..tracking.server import require_tracking_server
    from ..training.config import compose_config

    with reported_errors():
        cfg = compose_config(args.overrides, config_name="pipeline")
        tracking_uri = str(cfg.logger.tracking_uri)
        require_tracking_server(tracking_uri)
        registry = Registry(MlflowClient(tracking_uri), str(cfg.pipeline.registered_model_name))
        if args.command == "show":
            _print({"name": registry.name, **registry.aliases()}, args.json, "")
            return 0
        if args.command == "download":
            settings = ServeSettings.load(tracking_uri=tracking_uri)
            ref = download(args.model_uri or settings.model_uri, tracking_uri, args.output)
            _print({**ref.info(), "uri": ref.uri, "output": str(args.output)}, False, "")
            return 0
        if args.command == "promote":
            challenger = registry.version(CHALLENGER)
            log_dir = ServeSettings.load().prediction_log_dir
            agreement = None
            if challenger is not None and log_dir is not None:
                agreement = shadow_agreement(log_dir, str(challenger.version))
                print(
                    f"online agreement with the champion: {agreement}"
                    if agreement
                    else "online agreement: no shadow predictions of the challenger logged "
                    "(SHADOW_SHARE turns shadow mode on)"
                )
            moves = registry.promote(args.reason, agreement)
        else:
            moves = registry.rollback(args.reason)
        print(f"{registry.name}: " + "; ".join(map(str, moves)))
        return 0


def _print(values: dict[str, Any], as_json: bool, prefix: str) -> None:
    if as_json:
        print(json.dumps(values))
    else:
        print(prefix + ", ".join(f"{key} {value or '(none)'}" for key, value in values.items()))


if __name__ == "__main__":
    sys.exit(main())
