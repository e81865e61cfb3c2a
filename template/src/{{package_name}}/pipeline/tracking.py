"""MLflow runs of the pipeline: one parent run per pipeline run, one nested run per step.

Runs are made with `MlflowClient`, not mlflow's fluent "active run": training attaches its
Lightning logger to the step's run by id, and model logging opens that run itself. A step
finds the run it belongs to with `current_run_id()`; called outside a runner it gets None.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Param, RunStatus, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from omegaconf import DictConfig

_CURRENT_RUN: ContextVar[str | None] = ContextVar("pipeline_step_run", default=None)
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
PARAM_LIMIT = 6000  # MLflow's longest parameter value
# The orchestrator's id of the pipeline run that a step belongs to (see orchestrated_parent),
# and what such an id may look like: it goes into an MLflow search filter.
PIPELINE_RUN_TAG = "pipeline.run"
PIPELINE_RUN_ID = re.compile(r"[\w.:+/@-]+")
# How a pipeline run ends (its `pipeline.status` tag) and the MLflow status that goes with it.
PIPELINE_END_STATUS = {
    "succeeded": RunStatus.FINISHED,
    "failed": RunStatus.FAILED,
    "interrupted": RunStatus.KILLED,
}


def current_run_id() -> str | None:
    """The MLflow run of the step being executed, or None outside a pipeline runner."""
    return _CURRENT_RUN.get()


def tracking_client(cfg: DictConfig) -> MlflowClient:
    """A client for the configured store; also points mlflow's fluent API at it."""
    uri = str(cfg.logger.tracking_uri)
    mlflow.set_tracking_uri(uri)  # the registry follows, unless $MLFLOW_REGISTRY_URI is set
    return MlflowClient(uri)


@contextmanager
def tracking_store(cfg: DictConfig) -> Iterator[MlflowClient]:
    """`tracking_client` for the duration of a run, then mlflow's previous store again.

    mlflow.set_tracking_uri also sets $MLFLOW_TRACKING_URI (for subprocesses), which the
    config reads: without the restore, a second pipeline in the same process (a test, a
    notebook) would log to the first one's store.
    """
    previous = os.environ.get(TRACKING_URI_ENV)
    try:
        yield tracking_client(cfg)
    finally:
        if previous is None:
            mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None: back to the default
            os.environ.pop(TRACKING_URI_ENV, None)
        else:
            mlflow.set_tracking_uri(previous)


def experiment_id(client: MlflowClient, cfg: DictConfig) -> str:
    """The project's experiment, created as training's logger would create it."""
    name = str(cfg.logger.experiment_name)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    location = cfg.logger.get("artifact_location")
    return str(client.create_experiment(name, artifact_location=location))


def start_run(
    client: MlflowClient,
    experiment: str,
    name: str,
    tags: Mapping[str, str],
    parent_run_id: str | None = None,
) -> str:
    all_tags = {MLFLOW_RUN_NAME: name, **tags}
    if parent_run_id:
        all_tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
    run = client.create_run(experiment, tags=all_tags, run_name=name)
    return str(run.info.run_id)


def start_pipeline_run(
    client: MlflowClient, experiment: str, pipeline: str, tags: Mapping[str, str]
) -> str:
    """The parent run of one pipeline run; its steps' runs nest under it."""
    return start_run(
        client, experiment, f"pipeline-{pipeline}", {"pipeline.name": pipeline, **tags}
    )


def end_pipeline_run(
    client: MlflowClient, run_id: str, status: str, tags: Mapping[str, str] | None = None
) -> None:
    """Tag the parent run with how the pipeline run ended and terminate it accordingly."""
    set_tags(client, run_id, {**(tags or {}), "pipeline.status": status})
    client.set_terminated(run_id, RunStatus.to_string(PIPELINE_END_STATUS[status]))


def orchestrated_parent(
    client: MlflowClient, experiment: str, pipeline: str, pipeline_run: str, tags: Mapping[str, str]
) -> str:
    """The parent MLflow run of one orchestrator run (a Kubeflow job, an Airflow DAG run), found
    by its `pipeline.run` tag or made by the first step that gets there.

    Steps run in separate containers that share nothing but the orchestrator's run id. A step
    with no upstream step creates the parent; the others find it (they start after it). Two
    steps without upstream steps starting in the same instant could each create one.
    """
    if not PIPELINE_RUN_ID.fullmatch(pipeline_run):
        raise ValueError(
            f"Pipeline run id {pipeline_run!r} may hold only letters, digits and . _ : + / @ -"
        )
    found = client.search_runs(
        [experiment],
        f"tags.`{PIPELINE_RUN_TAG}` = '{pipeline_run}'",
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    if found:
        return str(found[0].info.run_id)
    return start_pipeline_run(
        client, experiment, pipeline, {PIPELINE_RUN_TAG: pipeline_run, **tags}
    )


def log_params(client: MlflowClient, run_id: str, params: Mapping[str, Any]) -> None:
    items = [Param(key, str(value)[:PARAM_LIMIT]) for key, value in params.items()]
    for start in range(0, len(items), 100):  # MLflow takes at most 100 params a batch
        client.log_batch(run_id, params=items[start : start + 100])


def set_tags(client: MlflowClient, run_id: str, tags: Mapping[str, Any]) -> None:
    client.log_batch(run_id, tags=[RunTag(key, str(value)) for key, value in tags.items()])


@contextmanager
def step_run(client: MlflowClient, run_id: str) -> Iterator[str]:
    """Make `run_id` the current step run; end it FINISHED, or FAILED on an exception."""
    token = _CURRENT_RUN.set(run_id)
    try:
        yield run_id
    except BaseException:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    else:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    finally:
        _CURRENT_RUN.reset(token)


def log_json(client: MlflowClient | None, payload: Mapping[str, Any], artifact_file: str) -> None:
    """Log `payload` to the current step run, if there is one."""
    run_id = current_run_id()
    if client is not None and run_id is not None:
        client.log_text(run_id, json.dumps(payload, indent=2, default=str), artifact_file)
