"""The evaluation gate between training and the registry's `challenger` alias.

A candidate passes when every threshold holds on the held-out rows and it is not worse than the
current `champion`, scored again on the same rows. A passing candidate becomes a version with the
alias `challenger`; the gate's inputs and verdict are tagged on the version and the runs. The
rules in full: docs/pipeline.md, "The evaluation gate and the model registry".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from ..families import ModelFamily
from ..tracking.runs import Store
from .settings import GateSettings

CHALLENGER = "challenger"
CHAMPION = "champion"


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str
    candidate: Mapping[str, float]
    champion: Mapping[str, float] | None = None
    champion_version: str | None = None
    failures: tuple[str, ...] = field(default_factory=tuple)

    def tags(self, gate: GateSettings) -> dict[str, str]:
        """The gate's inputs and verdict as MLflow tags."""
        tags = {
            "gate.verdict": "passed" if self.passed else "rejected",
            "gate.reason": self.reason,
            "gate.thresholds": json.dumps(dict(gate.thresholds), sort_keys=True),
            "gate.metric": gate.metric,
            "gate.tolerance": str(gate.tolerance),
            "gate.champion.version": self.champion_version or "none",
        }
        tags |= {f"gate.candidate.{k}": f"{v:.6f}" for k, v in self.candidate.items()}
        tags |= {f"gate.champion.{k}": f"{v:.6f}" for k, v in (self.champion or {}).items()}
        return tags


def decide(
    gate: GateSettings,
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None = None,
    champion_version: str | None = None,
) -> Verdict:
    """The verdict on a candidate's held-out metrics (pure: no I/O)."""
    failures = []
    for metric, minimum in sorted(gate.thresholds.items()):
        if metric not in candidate:
            failures.append(f"{metric} was not measured")
        elif candidate[metric] < minimum:
            failures.append(f"{metric} {candidate[metric]:.4f} < threshold {minimum:.4f}")
    if champion is not None:
        ours, theirs = candidate.get(gate.metric, float("nan")), champion[gate.metric]
        if not ours >= theirs - gate.tolerance:
            failures.append(
                f"{gate.metric} {ours:.4f} is worse than champion v{champion_version} "
                f"({theirs:.4f}, tolerance {gate.tolerance})"
            )
    if failures:
        reason = "; ".join(failures)
    elif champion is None:
        reason = "passes every threshold; no champion to compare with"
    else:
        reason = (
            f"passes every threshold and {gate.metric} {candidate[gate.metric]:.4f} is not "
            f"worse than champion v{champion_version} ({champion[gate.metric]:.4f})"
        )
    return Verdict(not failures, reason, candidate, champion, champion_version, tuple(failures))


def champion_version(client: MlflowClient, name: str) -> str | None:
    """The version that holds the `champion` alias, or None (no model or no alias yet)."""
    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


@dataclass(frozen=True)
class Registration:
    verdict: Verdict
    name: str
    version: str | None  # None: not registered

    def as_dict(self) -> dict[str, Any]:
        return {
            "registered_model": self.name,
            "version": self.version,
            "alias": CHALLENGER if self.verdict.passed else None,
            "passed": self.verdict.passed,
            "reason": self.verdict.reason,
            "candidate": dict(self.verdict.candidate),
            "champion": dict(self.verdict.champion) if self.verdict.champion else None,
            "champion_version": self.verdict.champion_version,
        }


def gate_and_register(
    store: Store,
    family: ModelFamily,
    name: str,
    model_uri: str,
    candidate: Mapping[str, float],
    held_out: pd.DataFrame,
    gate: GateSettings,
    extra_tags: Mapping[str, str] | None = None,
) -> Registration:
    """Score the champion on `held_out`, decide, and register the candidate accordingly."""
    version = champion_version(store.client, name)
    champion = family.score(store, f"models:/{name}/{version}", held_out) if version else None
    verdict = decide(gate, candidate, champion, version)
    if not verdict.passed and not gate.register_rejected:
        return Registration(verdict, name, None)
    tags = {**verdict.tags(gate), **(extra_tags or {})}
    with store.fluent():  # registering a logged model (models:/m-...) is fluent-only
        registered = mlflow.register_model(model_uri, name, tags=tags)
    if verdict.passed:
        store.client.set_registered_model_alias(name, CHALLENGER, registered.version)
    return Registration(verdict, name, str(registered.version))
