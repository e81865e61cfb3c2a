"""The local runner (`make pipeline`): every step in order through the step protocol
(execute.py), so unchanged steps come from the cache and a failed run resumes where it stopped.

`logs/pipeline/runs/<time>/` holds each step's working folder and the run's report
(`report.json`, `report.md`); `logs/pipeline/report.md` is the latest. In MLflow, one parent run
per pipeline run and one nested run per step.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from ..tracking.runs import Store
from .definition import PIPELINE, Pipeline
from .execute import StepError, StepOutcome, end_pipeline_run, execute_step, start_pipeline_run
from .report import PipelineReport
from .settings import FORCE_ALL


class StepFailedError(RuntimeError):
    """A step failed: the run stopped there. `step` names it, `__cause__` is its error."""

    def __init__(self, failure: StepError, report: PipelineReport) -> None:
        super().__init__(str(failure))
        self.step = failure.outcome.name
        self.report = report


def run_stamp() -> str:
    return datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")


def run_pipeline(
    cfg: DictConfig, console: Console | None = None, pipeline: Pipeline = PIPELINE
) -> PipelineReport:
    """Run every step in order; raises `StepFailedError` (with the report) when one fails."""
    console = console or Console()
    store = Store.from_config(cfg)
    run_dir = Path(cfg.pipeline.runs_dir) / run_stamp()
    run_dir.mkdir(parents=True, exist_ok=True)
    parent = start_pipeline_run(store)
    force = sorted(cfg.pipeline.get("force") or ())
    store.log_params(parent, {"pipeline/force": force, "pipeline/steps": len(pipeline.steps)})
    report = PipelineReport(pipeline.name, parent, str(run_dir))
    console.rule(f"Pipeline {pipeline.name!r}: MLflow run {parent}")
    artifacts: dict[str, Path] = {}
    failure: StepError | None = None
    try:
        for position, step in enumerate(pipeline.order, start=1):
            if failure is not None:
                report.steps.append(StepOutcome(step.name, "not run"))
                continue
            try:
                outcome = execute_step(
                    step,
                    cfg,
                    {name: artifacts[name] for name in step.inputs},
                    store,
                    parent=parent,
                    work_dir=run_dir / step.name,
                    console=console,
                    label=f"[{position}/{len(pipeline.order)}] {step.name}",
                )
            except StepError as error:
                failure, outcome = error, error.outcome
            artifacts.update({name: Path(path) for name, path in outcome.outputs.items()})
            report.steps.append(outcome)
    except BaseException:  # Ctrl-C, or the runner itself failed: no run stays RUNNING
        end_pipeline_run(store, parent, "interrupted")
        raise
    (run_dir / "report.json").write_text(json.dumps(report.as_dict(), indent=2))
    (run_dir / "report.md").write_text(report.markdown())
    shutil.copyfile(run_dir / "report.md", Path(cfg.pipeline.runs_dir).parent / "report.md")
    store.client.log_artifact(parent, str(run_dir / "report.md"), "pipeline")
    end_pipeline_run(store, parent, report.status)
    report.print_summary(console)
    if failure is not None:
        raise StepFailedError(failure, report) from failure.__cause__
    return report


def resume_hint(cfg: DictConfig, failed: str, pipeline: Pipeline = PIPELINE) -> str:
    """What the next run does after `failed` stopped this one: which steps read their data
    source again by themselves, and how to re-run any other step."""
    lines = ["Fix it and run again: steps whose inputs, code and config are unchanged are cached."]
    for step in pipeline.order:
        for key in step.sources:
            if source := OmegaConf.select(cfg, key, throw_on_missing=False):
                lines.append(f"{step.name} reads {key} ({source}) again when that file changes.")
            else:
                lines.append(
                    f"{step.name} runs on every run ({key} is unset: its data has no "
                    "fingerprint), so a fix to that data is picked up."
                )
        if step.name == failed:
            break
    lines.append(f"To run a step anyway: pipeline.force=[{failed}] (or [{FORCE_ALL}]).")
    return "\n".join(lines)
