"""MLflow runs, made one way by training, the pipeline and tuning.

A `Store` is resolved once from the config's `logger` section and passed on. Runs are made with
its `MlflowClient`, never through mlflow's process-wide "active run", so nothing depends on which
store a previous command in the same process used. The few MLflow calls that only exist in the
fluent API (logging a model, registering one) run inside `Store.fluent()`, which points the
fluent API at this store for the call and then restores what was there.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking.context.registry import resolve_tags
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from omegaconf import DictConfig

from ..errors import ProjectError
from .environment import restored
from .git import git_tags

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
BATCH = 100  # MLflow takes at most 100 params (and 1000 metrics or tags) in one batch
PARAM_LIMIT = 6000  # MLflow's longest parameter value
# A tag value that goes into a search filter (a pipeline run's id from an orchestrator).
FILTER_VALUE = re.compile(r"[\w.:+/@-]+")


class FilterValueError(ProjectError, ValueError):
    """A value that would go into a run search filter holds characters it may not."""


class DeletedExperimentError(ProjectError):
    """The experiment exists in the store's trash: MLflow will not make a new one of that name."""


@dataclass(frozen=True)
class Store:
    """One tracking store and the project's experiment in it."""

    uri: str
    experiment_name: str
    artifact_location: str | None = None
    root: Path = field(default_factory=Path.cwd)  # the repository whose commit runs record

    @classmethod
    def from_config(cls, cfg: DictConfig) -> Store:
        logger = cfg.logger
        location = logger.get("artifact_location")
        return cls(
            str(logger.tracking_uri),
            str(logger.experiment_name),
            None if location is None else str(location),
            Path(str(cfg.paths.root_dir)),
        )

    @cached_property
    def client(self) -> MlflowClient:
        return MlflowClient(self.uri)

    @cached_property
    def experiment_id(self) -> str:
        """The experiment's id, made on first use as Lightning's logger would make it."""
        experiment = self.client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            return str(
                self.client.create_experiment(
                    self.experiment_name, artifact_location=self.artifact_location
                )
            )
        if experiment.lifecycle_stage == "deleted":
            number = experiment.experiment_id
            raise DeletedExperimentError(
                f"Experiment {self.experiment_name!r} (id {number}) is deleted in {self.uri}. "
                f"Restore it (mlflow experiments restore --experiment-id {number}) or remove it "
                f"for good (mlflow gc --experiment-ids {number}), or set logger.experiment_name."
            )
        return str(experiment.experiment_id)

    def start_run(
        self, name: str | None, tags: Mapping[str, Any] | None = None, parent: str | None = None
    ) -> str:
        """A new RUNNING run, tagged with its source (user, entry point, git commit) and `tags`;
        nested under `parent` when given. MLflow makes up a name when `name` is None. End the
        run with `ended` or `end_run`."""
        all_tags = {**git_tags(self.root), **_text(tags or {})}
        if name:
            all_tags[MLFLOW_RUN_NAME] = name
        if parent:
            all_tags[MLFLOW_PARENT_RUN_ID] = parent
        run = self.client.create_run(self.experiment_id, tags=resolve_tags(all_tags))
        return str(run.info.run_id)

    def end_run(self, run_id: str, status: int = RunStatus.FINISHED) -> None:
        self.client.set_terminated(run_id, RunStatus.to_string(status))

    @contextmanager
    def ended(self, run_id: str) -> Iterator[str]:
        """End `run_id` when the block does: FINISHED, FAILED on an error, KILLED on Ctrl-C."""
        try:
            yield run_id
        except Exception:
            self.end_run(run_id, RunStatus.FAILED)
            raise
        except BaseException:
            self.end_run(run_id, RunStatus.KILLED)
            raise
        self.end_run(run_id, RunStatus.FINISHED)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        for batch in _batches([RunTag(key, value) for key, value in _text(tags).items()]):
            self.client.log_batch(run_id, tags=batch)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        items = [Param(key, value[:PARAM_LIMIT]) for key, value in _text(params).items()]
        for batch in _batches(items):
            self.client.log_batch(run_id, params=batch)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        now = _millis()
        items = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        for batch in _batches(items):
            self.client.log_batch(run_id, metrics=batch)

    def log_json(self, run_id: str, payload: Mapping[str, Any], artifact_file: str) -> None:
        self.client.log_text(run_id, json.dumps(payload, indent=2, default=str), artifact_file)

    def find_run(self, tag: str, value: str) -> str | None:
        """The earliest run of the experiment whose tag `tag` is `value`, or None."""
        if not FILTER_VALUE.fullmatch(value):
            raise FilterValueError(f"{value!r} may hold only letters, digits and . _ : + / @ -")
        found = self.client.search_runs(
            [self.experiment_id],
            f"tags.`{tag}` = '{value}'",
            order_by=["attributes.start_time ASC"],
            max_results=1,
        )
        return str(found[0].info.run_id) if found else None

    def is_active_run(self, run_id: str) -> bool:
        """Whether `run_id` is a run of this experiment that has not been deleted."""
        try:
            info = self.client.get_run(run_id).info
        except mlflow.exceptions.MlflowException:
            return False
        return info.experiment_id == self.experiment_id and info.lifecycle_stage == "active"

    @contextmanager
    def fluent(self) -> Iterator[None]:
        """mlflow's fluent API (and the registry, unless $MLFLOW_REGISTRY_URI says otherwise)
        pointed at this store for the block, then back to what it was. set_tracking_uri also
        exports $MLFLOW_TRACKING_URI, which configs read: that is restored too."""
        is_set = mlflow.is_tracking_uri_set()  # type: ignore[no-untyped-call]
        previous = mlflow.get_tracking_uri() if is_set else None
        with restored(TRACKING_URI_ENV):
            mlflow.set_tracking_uri(self.uri)
            try:
                yield
            finally:
                mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]  # None: unset


def _batches(items: list[Any]) -> Iterator[list[Any]]:
    """`items` in slices of the size MLflow accepts in one call."""
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


def _text(values: Mapping[str, Any]) -> dict[str, str]:
    """Tag and param values as MLflow stores them: text, lists as JSON."""
    return {key: _as_text(value) for key, value in values.items()}


def _as_text(value: Any) -> str:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return json.dumps(list(value), default=str)
    return str(value)


def _millis() -> int:
    return int(time.time() * 1000)
