"""What a step function receives besides its artifact paths: its config, its MLflow run, its
working folder. Made by the step protocol (execute.py) the same way in every runner."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..tracking.runs import Store
from .definition import Step

# The step's working folder: new on every run (see cache.py).
WORK_DIR_KEY = "paths.output_dir"


@dataclass(frozen=True)
class StepContext:
    step: Step
    cfg: DictConfig  # only the keys the step declares (`Step.config`), resolved
    inputs: Mapping[str, Path]
    outputs: Mapping[str, Path]
    work_dir: Path  # the step's scratch folder in this run (checkpoints)
    store: Store
    run_id: str  # the step's MLflow run, ended by the runner

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.store.log_params(self.run_id, params)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        self.store.log_metrics(self.run_id, metrics)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.store.set_tags(self.run_id, tags)

    def log_json(self, payload: Mapping[str, Any], artifact_file: str) -> None:
        self.store.log_json(self.run_id, payload, artifact_file)


def step_config(step: Step, cfg: DictConfig, work_dir: Path | None = None) -> DictConfig:
    """The keys `step` declares, resolved against the whole config, and nothing else: reading
    an undeclared key fails instead of going unnoticed by the cache. `paths.output_dir` is the
    step's working folder when `work_dir` is given."""
    cfg = cfg.copy()
    if work_dir is not None:
        OmegaConf.update(cfg, WORK_DIR_KEY, str(work_dir), force_add=True)
    selected = OmegaConf.create({})
    for key in step.config:
        value = OmegaConf.select(cfg, key, throw_on_missing=False)
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        OmegaConf.update(selected, key, value, force_add=True)
    OmegaConf.set_struct(selected, True)
    return selected
