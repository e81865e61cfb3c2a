"""The local runner: the pipeline's steps in order, cached, resumable, tracked in MLflow.

Layout (both folders are git-ignored; see `pipeline` in configs/pipeline.yaml):

- `data/pipeline/<step>/<key>/`: one cache entry per step and cache key (see cache.py):
  the step's output artifacts and `manifest.json`. Written to `<key>.partial/` and renamed
  when the step succeeds, so an entry is complete or absent; a failed step's files stay in
  `<key>.failed/` for inspection.
- `logs/pipeline/runs/<time>/`: each step's working folder (`paths.output_dir`: checkpoints)
  and the run's report (`report.json`, `report.md`); `logs/pipeline/report.md` is the last one.

MLflow: one parent run per pipeline run, one nested run per step, tagged with the step's
status (`pipeline.status`: ran / cached / failed), whether it hit the cache and its key.
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from ..tracking.git import git_tags
from .cache import cache_key, file_digest, unfingerprinted
from .definition import PIPELINE, Pipeline, Step
from .tracking import (
    end_pipeline_run,
    experiment_id,
    log_json,
    log_params,
    orchestrated_parent,
    set_tags,
    start_pipeline_run,
    start_run,
    step_run,
    tracking_store,
)

# File names of artifacts in a cache entry (any other artifact: its name, no suffix).
ARTIFACT_FILES = {
    "raw_data": "raw_data.csv",
    "validated_data": "validated_data.csv",
    "validation_report": "validation_report.json",
    "model": "model.json",
    "evaluation": "evaluation.json",
    "registration": "registration.json",
}
MANIFEST = "manifest.json"


class StepFailedError(RuntimeError):
    """A step raised: the run stopped there. `step` names it, `__cause__` is its error."""

    def __init__(self, step: str, error: BaseException, report: PipelineReport) -> None:
        super().__init__(f"Step {step!r} failed: {type(error).__name__}: {error}")
        self.step = step
        self.report = report


class _StepError(Exception):
    def __init__(self, outcome: StepOutcome, error: Exception) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome
        self.error = error


@dataclass
class StepOutcome:
    name: str
    status: str  # ran | cached | failed | not run
    seconds: float = 0.0
    key: str = ""
    run_id: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass
class PipelineReport:
    pipeline: str
    run_id: str
    run_dir: str
    steps: list[StepOutcome] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "failed" if any(s.status == "failed" for s in self.steps) else "succeeded"

    def outcome(self, name: str) -> StepOutcome:
        return next(step for step in self.steps if step.name == name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "status": self.status,
            "mlflow_run_id": self.run_id,
            "run_dir": self.run_dir,
            "steps": [vars(step) for step in self.steps],
        }

    def markdown(self) -> str:
        lines = [
            f"# Pipeline `{self.pipeline}`: {self.status}",
            "",
            f"MLflow run `{self.run_id}`",
            "",
            "| step | status | seconds | cache key |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {s.name} | {s.status} | {s.seconds:.1f} | `{s.key[:12]}` |" for s in self.steps
        ]
        failed = [s for s in self.steps if s.error]
        for step in failed:
            lines += ["", f"## {step.name} failed", "", "```", str(step.error), "```"]
        return "\n".join(lines) + "\n"


def entry_dir(cfg: DictConfig, step: str, key: str) -> Path:
    return Path(cfg.pipeline.cache_dir) / step / key


def output_paths(folder: Path, step: Step) -> dict[str, Path]:
    return {name: folder / ARTIFACT_FILES.get(name, name) for name in step.outputs}


def cached_outputs(cfg: DictConfig, step: Step, key: str) -> dict[str, Path] | None:
    """The outputs of a complete cache entry for this key, or None."""
    folder = entry_dir(cfg, step.name, key)
    outputs = output_paths(folder, step)
    if (folder / MANIFEST).is_file() and all(path.exists() for path in outputs.values()):
        return outputs
    return None


def step_config(cfg: DictConfig, output_dir: Path) -> DictConfig:
    """The config a step sees: `paths.output_dir` is its working folder in this run."""
    cfg = cfg.copy()
    OmegaConf.update(cfg, "paths.output_dir", str(output_dir), force_add=True)
    return cfg


def call_step(
    step: Step, inputs: Mapping[str, Path], outputs: Mapping[str, Path], cfg: DictConfig
) -> None:
    """Run one step's function with explicit artifact paths (no cache, no run of its own)."""
    for path in outputs.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    function = step.load()
    function(**{**inputs, **outputs}, cfg=cfg)


class LocalRunner:
    def __init__(
        self, cfg: DictConfig, pipeline: Pipeline = PIPELINE, console: Console | None = None
    ) -> None:
        self.cfg = cfg
        self.pipeline = pipeline
        self.console = console or Console()
        self.force = set(cfg.pipeline.get("force") or ())
        unknown = self.force - {step.name for step in pipeline.steps} - {"all"}
        if unknown:
            raise ValueError(f"pipeline.force names no step: {sorted(unknown)}")

    def run(self) -> PipelineReport:
        with tracking_store(self.cfg) as client:
            return self._run(client)

    def _run(self, client: MlflowClient) -> PipelineReport:
        cfg = self.cfg
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
        run_dir = Path(cfg.pipeline.runs_dir) / stamp
        run_dir.mkdir(parents=True, exist_ok=True)
        experiment = experiment_id(client, cfg)
        tags = git_tags(cfg.paths.root_dir)
        parent = start_pipeline_run(client, experiment, self.pipeline.name, tags)
        log_params(
            client,
            parent,
            {"pipeline/force": sorted(self.force), "pipeline/steps": len(self.pipeline.steps)},
        )
        report = PipelineReport(self.pipeline.name, parent, str(run_dir))
        artifacts: dict[str, Path] = {}
        self.console.rule(f"Pipeline {self.pipeline.name!r}: MLflow run {parent}")
        failure: _StepError | None = None
        total = len(self.pipeline.order)
        try:
            for position, step in enumerate(self.pipeline.order, start=1):
                if failure is not None:
                    report.steps.append(StepOutcome(step.name, "not run"))
                    continue
                label = f"[{position}/{total}] {step.name}"
                try:
                    outcome = self._run_step(
                        step, artifacts, client, experiment, parent, run_dir, label
                    )
                except _StepError as error:
                    failure = error
                    outcome = error.outcome
                report.steps.append(outcome)
        except BaseException:  # Ctrl-C, or the runner itself failed: no run stays RUNNING
            end_pipeline_run(client, parent, "interrupted")
            raise
        (run_dir / "report.json").write_text(json.dumps(report.as_dict(), indent=2))
        (run_dir / "report.md").write_text(report.markdown())
        shutil.copyfile(run_dir / "report.md", Path(cfg.pipeline.runs_dir).parent / "report.md")
        client.log_artifact(parent, str(run_dir / "report.md"), "pipeline")
        end_pipeline_run(client, parent, report.status)
        self._summary(report)
        if failure is not None:
            raise StepFailedError(failure.outcome.name, failure.error, report) from failure.error
        return report

    def _run_step(
        self,
        step: Step,
        artifacts: dict[str, Path],
        client: MlflowClient,
        experiment: str,
        parent: str,
        run_dir: Path,
        label: str,
    ) -> StepOutcome:
        cfg = step_config(self.cfg, run_dir / step.name)
        inputs = {name: artifacts[name] for name in step.inputs}
        key_parts = cache_key(step, cfg, inputs)
        key = key_parts["key"]
        # A source without a fingerprint (the team's generator): a cached copy may be stale.
        always = unfingerprinted(key_parts)
        forced = {"all", step.name} & self.force
        cached = None if forced or always else cached_outputs(cfg, step, key)
        tags = {"pipeline.step": step.name, "pipeline.cache_key": key}
        run_id = start_run(client, experiment, step.name, tags, parent_run_id=parent)
        started = time.perf_counter()
        with step_run(client, run_id):
            log_params(client, run_id, {f"input/{n}": p for n, p in inputs.items()})
            if cached is not None:
                manifest = json.loads((entry_dir(cfg, step.name, key) / MANIFEST).read_text())
                set_tags(
                    client,
                    run_id,
                    {
                        "pipeline.cache_hit": "true",
                        "pipeline.status": "cached",
                        "pipeline.cached_from_run": manifest.get("run_id", ""),
                    },
                )
                artifacts.update(cached)
                seconds = time.perf_counter() - started
                self.console.print(
                    f"{label}: [green]cached[/], skipped (key {key[:12]}, outputs of run "
                    f"{manifest.get('run_id')})"
                )
                return StepOutcome(
                    step.name,
                    "cached",
                    seconds,
                    key,
                    run_id,
                    {n: str(p) for n, p in cached.items()},
                )
            self.console.rule(f"{label}: running ({step.summary})", style="cyan")
            if always:
                self.console.print(
                    f"{step.name} runs on every pipeline run: {', '.join(always)} names no "
                    "file, so nothing fingerprints the data it reads.",
                    markup=False,
                    highlight=False,
                )
            set_tags(
                client,
                run_id,
                {"pipeline.cache_hit": "false", "pipeline.cacheable": str(not always).lower()},
            )
            final = entry_dir(cfg, step.name, key)
            partial = final.with_name(f"{key}.partial")
            shutil.rmtree(partial, ignore_errors=True)
            outputs = output_paths(partial, step)
            try:
                call_step(step, inputs, outputs, cfg)
            except Exception as error:
                seconds = time.perf_counter() - started
                failed = final.with_name(f"{key}.failed")
                shutil.rmtree(failed, ignore_errors=True)
                partial.rename(failed)
                set_tags(
                    client,
                    run_id,
                    {
                        "pipeline.status": "failed",
                        "pipeline.error": f"{type(error).__name__}: {error}"[:5000],
                    },
                )
                log_json(client, {"error": traceback.format_exc()}, "pipeline/error.json")
                outcome = StepOutcome(
                    step.name,
                    "failed",
                    seconds,
                    key,
                    run_id,
                    error=f"{type(error).__name__}: {error}",
                )
                self.console.print(
                    f"{label}: [red]failed[/] after {seconds:.1f}s (its files: {failed})"
                )
                raise _StepError(outcome, error) from error
            manifest = {
                **key_parts,
                "run_id": run_id,
                "outputs": {n: file_digest(p) for n, p in outputs.items()},
            }
            (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
            shutil.rmtree(final, ignore_errors=True)
            partial.rename(final)
            done = output_paths(final, step)
            artifacts.update(done)
            seconds = time.perf_counter() - started
            set_tags(client, run_id, {"pipeline.status": "ran"})
            stored = "runs again next time" if always else f"cached as {key[:12]}"
            self.console.print(f"{label}: [green]done[/] in {seconds:.1f}s ({stored})")
            return StepOutcome(
                step.name, "ran", seconds, key, run_id, {n: str(p) for n, p in done.items()}
            )

    def _summary(self, report: PipelineReport) -> None:
        table = Table(title=f"Pipeline {report.pipeline!r}: {report.status}")
        for column in ("step", "status", "seconds", "cache key"):
            table.add_column(column)
        colours = {"ran": "green", "cached": "green", "failed": "red", "not run": "dim"}
        for step in report.steps:
            status = f"[{colours.get(step.status, 'white')}]{step.status}[/]"
            table.add_row(step.name, status, f"{step.seconds:.1f}", step.key[:12])
        self.console.print(table)
        self.console.print(f"Report: {report.run_dir}/report.md")


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
    lines.append(f"To run a step anyway: pipeline.force=[{failed}] (or [all]).")
    return "\n".join(lines)


def run_pipeline(cfg: DictConfig, console: Console | None = None) -> PipelineReport:
    """Run every step in order; raises `StepFailedError` (with the report) when one fails."""
    return LocalRunner(cfg, console=console).run()


def run_single_step(
    cfg: DictConfig,
    name: str,
    inputs: Mapping[str, Path],
    outputs: Mapping[str, Path],
    pipeline_run: str | None = None,
) -> str:
    """One step with explicit artifact paths, as an orchestrator's container runs it: no
    cache (the orchestrator has its own) and an MLflow run of its own. Returns its run id.

    `pipeline_run` is the orchestrator's id of the pipeline run (Kubeflow's job id, Airflow's
    DAG and run id): the steps of one pipeline run nest under one parent MLflow run, as in a
    local run. A failed step marks the parent FAILED; the last step ends it FINISHED.
    """
    step = PIPELINE.step(name)
    _check_names("input", inputs, step.inputs)
    _check_names("output", outputs, step.outputs)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    cfg = step_config(cfg, Path(cfg.pipeline.runs_dir) / f"{stamp}-{name}")
    with tracking_store(cfg) as client:
        return _run_single_step(client, cfg, step, inputs, outputs, pipeline_run)


def _run_single_step(
    client: MlflowClient,
    cfg: DictConfig,
    step: Step,
    inputs: Mapping[str, Path],
    outputs: Mapping[str, Path],
    pipeline_run: str | None,
) -> str:
    experiment = experiment_id(client, cfg)
    context = git_tags(cfg.paths.root_dir)
    parent = None
    if pipeline_run is not None:
        parent = orchestrated_parent(client, experiment, PIPELINE.name, pipeline_run, context)
    tags = {"pipeline.step": step.name, "pipeline.cache_hit": "false", **context}
    run_id = start_run(client, experiment, step.name, tags, parent_run_id=parent)
    with step_run(client, run_id):
        try:
            call_step(step, inputs, outputs, cfg)
        except Exception as error:
            failed = {"pipeline.status": "failed", "pipeline.error": str(error)[:5000]}
            set_tags(client, run_id, failed)
            if parent is not None:
                end_pipeline_run(
                    client, parent, "failed", {**failed, "pipeline.failed_step": step.name}
                )
            raise
        set_tags(client, run_id, {"pipeline.status": "ran"})
    if parent is not None and not PIPELINE.downstream(step.name):
        # The last step: the pipeline run succeeded (a retried step may follow a failure).
        end_pipeline_run(client, parent, "succeeded")
    return run_id


def _check_names(kind: str, given: Mapping[str, Path], declared: Sequence[str]) -> None:
    if set(given) != set(declared):
        raise ValueError(f"Step needs {kind}s {sorted(declared)}, got {sorted(given)}")
