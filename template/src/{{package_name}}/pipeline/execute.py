"""The protocol of one step, the same in every runner: cache lookup, the step's MLflow run, the
call, the cache entry, tags and console lines, and one failure text.

Cache entries: `<pipeline.cache_dir>/<step>/<key>/` holds the step's output files and
`manifest.json` (what went into the key, the run that made it, the outputs' digests). A step
writes into `<key>.partial/`, renamed when it succeeds, so an entry is complete or absent; a
failed step's files stay in `<key>.failed/` for inspection.
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.entities import RunStatus
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError
from rich.console import Console

from ..tracking.runs import Store
from .cache import cache_key, file_digest, unfingerprinted
from .context import StepContext, step_config
from .definition import PIPELINE, Step
from .settings import FORCE_ALL

MANIFEST = "manifest.json"
ERROR_LIMIT = 5000  # characters of an error kept in a tag
# How a pipeline run ends (its `pipeline.status` tag) and the MLflow status that goes with it.
PIPELINE_END_STATUS = {
    "succeeded": RunStatus.FINISHED,
    "failed": RunStatus.FAILED,
    "interrupted": RunStatus.KILLED,
}


@dataclass
class StepOutcome:
    name: str
    status: str  # ran | cached | failed | not run
    seconds: float = 0.0
    key: str = ""
    run_id: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    error: str | None = None


class StepError(Exception):
    """A step raised. `outcome` is its record, `__cause__` the step's own error."""

    def __init__(self, outcome: StepOutcome) -> None:
        super().__init__(f"Step {outcome.name!r} failed: {outcome.error}")
        self.outcome = outcome


def start_pipeline_run(store: Store, tags: Mapping[str, Any] | None = None) -> str:
    """The parent run of one pipeline run; its steps' runs nest under it."""
    return store.start_run(
        f"pipeline-{PIPELINE.name}", {"pipeline.name": PIPELINE.name, **(tags or {})}
    )


def end_pipeline_run(
    store: Store, run_id: str, status: str, tags: Mapping[str, Any] | None = None
) -> None:
    store.set_tags(run_id, {**(tags or {}), "pipeline.status": status})
    store.end_run(run_id, PIPELINE_END_STATUS[status])


@dataclass(frozen=True)
class CacheEntry:
    folder: Path  # <cache_dir>/<step>/<key>
    step: Step

    @classmethod
    def of(cls, cfg: DictConfig, step: Step, key: str) -> CacheEntry:
        return cls(Path(cfg.pipeline.cache_dir) / step.name / key, step)

    def paths(self, folder: Path | None = None) -> dict[str, Path]:
        return {a.name: (folder or self.folder) / a.file for a in self.step.outputs}

    def complete(self) -> dict[str, Path] | None:
        """The outputs when the entry is complete, else None."""
        outputs = self.paths()
        done = (self.folder / MANIFEST).is_file() and all(p.exists() for p in outputs.values())
        return outputs if done else None

    def manifest(self) -> dict[str, Any]:
        manifest: dict[str, Any] = json.loads((self.folder / MANIFEST).read_text())
        return manifest

    def sibling(self, suffix: str) -> Path:
        return self.folder.with_name(f"{self.folder.name}.{suffix}")

    def begin(self) -> Path:
        partial = self.sibling("partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        return partial

    def keep_failed(self, partial: Path) -> Path:
        failed = self.sibling("failed")
        shutil.rmtree(failed, ignore_errors=True)
        partial.rename(failed)
        return failed

    def commit(self, partial: Path, manifest: Mapping[str, Any]) -> dict[str, Path]:
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        shutil.rmtree(self.folder, ignore_errors=True)
        partial.rename(self.folder)
        return self.paths()


def execute_step(
    step: Step,
    cfg: DictConfig,
    inputs: Mapping[str, Path],
    store: Store,
    *,
    parent: str | None,
    work_dir: Path,
    console: Console,
    label: str,
) -> StepOutcome:
    """Serve `step` from the cache or run it (always when `pipeline.force` names it), in an
    MLflow run nested under `parent`. Raises `StepError` when the step fails (its run and cache
    entry are marked failed first)."""
    parts = cache_key(step, cfg, inputs)
    key = parts["key"]
    entry = CacheEntry.of(cfg, step, key)
    always = unfingerprinted(parts)  # a source without a fingerprint: a copy may be stale
    forced = {FORCE_ALL, step.name} & set(cfg.pipeline.get("force") or ())
    cached = None if forced or always else entry.complete()
    tags = {"pipeline.step": step.name, "pipeline.cache_key": key}
    run_id = store.start_run(step.name, tags, parent)
    started = time.perf_counter()
    with store.ended(run_id):
        store.log_params(run_id, {f"input/{name}": path for name, path in inputs.items()})
        if cached is not None:
            origin = entry.manifest().get("run_id", "")
            hit = {"pipeline.cache_hit": "true", "pipeline.status": "cached"}
            store.set_tags(run_id, {**hit, "pipeline.cached_from_run": origin})
            console.print(
                f"{label}: [green]cached[/], skipped (key {key[:12]}, outputs of run {origin})"
            )
            return StepOutcome(
                step.name, "cached", time.perf_counter() - started, key, run_id, _text(cached)
            )
        console.rule(f"{label}: running ({step.summary})", style="cyan")
        if always:
            console.print(
                f"{step.name} runs on every pipeline run: {', '.join(always)} names no file, "
                "so nothing fingerprints the data it reads.",
                markup=False,
                highlight=False,
            )
        cacheable = str(not always).lower()
        store.set_tags(run_id, {"pipeline.cache_hit": "false", "pipeline.cacheable": cacheable})
        partial = entry.begin()
        outputs = entry.paths(partial)
        config = step_config(step, cfg, work_dir)
        context = StepContext(step, config, inputs, outputs, work_dir, store, run_id)
        try:
            step.load()(**inputs, **outputs, context=context)
        except Exception as error:
            seconds = time.perf_counter() - started
            failed = entry.keep_failed(partial)
            text = _describe(step, error)
            store.set_tags(
                run_id, {"pipeline.status": "failed", "pipeline.error": text[:ERROR_LIMIT]}
            )
            store.log_json(run_id, {"error": traceback.format_exc()}, "pipeline/error.json")
            console.print(f"{label}: [red]failed[/] after {seconds:.1f}s (its files: {failed})")
            written = {name: path for name, path in entry.paths(failed).items() if path.exists()}
            outcome = StepOutcome(step.name, "failed", seconds, key, run_id, _text(written), text)
            raise StepError(outcome) from error
        digests = {name: file_digest(path) for name, path in outputs.items()}
        done = entry.commit(partial, {**parts, "run_id": run_id, "outputs": digests})
        store.set_tags(run_id, {"pipeline.status": "ran"})
    seconds = time.perf_counter() - started
    stored = "runs again next time" if always else f"cached as {key[:12]}"
    console.print(f"{label}: [green]done[/] in {seconds:.1f}s ({stored})")
    return StepOutcome(step.name, "ran", seconds, key, run_id, _text(done))


def _describe(step: Step, error: Exception) -> str:
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, ConfigAttributeError | ConfigKeyError):
        text += (
            f" (step {step.name!r} sees only the config keys it declares: add the key to its "
            "`config` in pipeline/definition.py)"
        )
    return text


def _text(paths: Mapping[str, Path]) -> dict[str, str]:
    return {name: str(path) for name, path in paths.items()}
