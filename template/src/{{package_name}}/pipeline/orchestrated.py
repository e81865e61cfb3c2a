"""One step as an orchestrator runs it (Kubeflow, Airflow): `<project>-pipeline step`.

The same protocol as a local step (execute.py, the same cache at `pipeline.cache_dir`), then the
outputs are copied where the orchestrator asked. Steps given the same `pipeline_run` nest under
one parent MLflow run; a failed step marks it FAILED, the last step ends it FINISHED.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from omegaconf import DictConfig
from rich.console import Console

from ..errors import ProjectError
from ..tracking.runs import Store
from .definition import PIPELINE
from .execute import StepError, StepOutcome, end_pipeline_run, execute_step, start_pipeline_run
from .local import run_stamp

PIPELINE_RUN_TAG = "pipeline.run"


class ArtifactNamesError(ProjectError, ValueError):
    """The artifact paths given to a step are not the ones the definition declares."""


def run_step(
    cfg: DictConfig,
    name: str,
    inputs: Mapping[str, Path],
    outputs: Mapping[str, Path],
    pipeline_run: str | None = None,
    console: Console | None = None,
) -> StepOutcome:
    """Run (or serve from the cache) one step with explicit artifact paths."""
    step = PIPELINE.step(name)
    _check_names("input", inputs, step.inputs)
    _check_names("output", outputs, step.output_names)
    store = Store.from_config(cfg)
    parent = None
    if pipeline_run is not None:
        parent = store.find_run(PIPELINE_RUN_TAG, pipeline_run) or start_pipeline_run(
            store, {PIPELINE_RUN_TAG: pipeline_run}
        )
    try:
        outcome = execute_step(
            step,
            cfg,
            inputs,
            store,
            parent=parent,
            work_dir=Path(cfg.pipeline.runs_dir) / f"{run_stamp()}-{name}",
            console=console or Console(),
            label=name,
        )
    except StepError as failure:
        _deliver(failure.outcome, outputs)  # what the step wrote before it failed (a report)
        if parent is not None:
            tags = {"pipeline.error": str(failure.outcome.error), "pipeline.failed_step": name}
            end_pipeline_run(store, parent, "failed", tags)
        raise
    _deliver(outcome, outputs)
    if parent is not None and not PIPELINE.downstream(name):
        end_pipeline_run(store, parent, "succeeded")
    return outcome


def _deliver(outcome: StepOutcome, outputs: Mapping[str, Path]) -> None:
    """Copy the step's output files to where the orchestrator expects them."""
    for artifact, source in outcome.outputs.items():
        outputs[artifact].parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, outputs[artifact])


def _check_names(kind: str, given: Mapping[str, Path], declared: Sequence[str]) -> None:
    if set(given) != set(declared):
        raise ArtifactNamesError(f"Step needs {kind}s {sorted(declared)}, got {sorted(given)}")
