"""A study in MLflow: one parent run per study, one child run per trial.

Each trial's child run is created here and handed to training (`logger.run_id`), so Lightning's
MLFlowLogger logs the trial's config, metrics, plots and model into that run: the trial's run
is a complete training run, nested under the study's run. The parent run keeps, as the study
goes on, each trial's objective value (`trials/<metric>`), the best value so far
(`best/<metric>`), the best parameters as `best.<key>` tags (tags, not params: MLflow params
cannot change, and the best parameters do when a study resumes), and artifacts under `tuning/`.
The parent run's id is stored in the study, so a resumed study keeps adding to the same run.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import mlflow
import optuna
from mlflow.entities import Metric, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking.context.registry import resolve_tags
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from omegaconf import DictConfig

from ..tracking.server import require_tracking_server

MLFLOW_LOGGER = "lightning.pytorch.loggers.MLFlowLogger"
PARENT_RUN_ATTR = "mlflow_parent_run"  # study user attribute: {"tracking_uri", "run_id"}


class StudyTracker:
    """Creates and updates the parent and child runs in training's MLflow store and experiment."""

    def __init__(
        self, tracking_uri: str, experiment_name: str, artifact_location: str | None
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.client = mlflow.MlflowClient(tracking_uri)
        experiment = self.client.get_experiment_by_name(experiment_name)
        if experiment is None or experiment.lifecycle_stage == "deleted":
            # As MLFlowLogger creates it, so training and the search share one experiment.
            self.experiment_id = self.client.create_experiment(
                experiment_name, artifact_location=artifact_location
            )
        else:
            self.experiment_id = experiment.experiment_id
        self.parent_run_id = ""

    @classmethod
    def from_config(cls, cfg: DictConfig) -> StudyTracker | None:
        """The tracker for training's logger config; None when training does not log to MLflow."""
        logger = cfg.get("logger")
        if not logger or logger.get("_target_") != MLFLOW_LOGGER:
            return None
        if cfg.trainer.get("fast_dev_run"):
            return None  # training logs nothing in a smoke test
        location = logger.get("artifact_location")
        require_tracking_server(str(logger.tracking_uri))
        return cls(
            str(logger.tracking_uri),
            str(logger.experiment_name),
            None if location is None else str(location),
        )

    def _exists(self, run_id: str) -> bool:
        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            return False
        return run.info.experiment_id == self.experiment_id and run.info.lifecycle_stage == "active"

    def open_parent(self, study: optuna.Study, tags: Mapping[str, str]) -> str:
        """The study's parent run, reopened on resume; created on the first run of a study."""
        stored = study.user_attrs.get(PARENT_RUN_ATTR) or {}
        run_id = str(stored.get("run_id", ""))
        if stored.get("tracking_uri") == self.tracking_uri and run_id and self._exists(run_id):
            self.client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        else:
            all_tags = resolve_tags({MLFLOW_RUN_NAME: study.study_name, **tags})
            run = self.client.create_run(self.experiment_id, tags=all_tags)
            run_id = run.info.run_id
            study.set_user_attr(
                PARENT_RUN_ATTR, {"tracking_uri": self.tracking_uri, "run_id": run_id}
            )
        self.client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])
        self.parent_run_id = run_id
        return run_id

    def start_child(self, study: optuna.Study, trial: optuna.Trial, overrides: str) -> str:
        tags = {
            MLFLOW_PARENT_RUN_ID: self.parent_run_id,
            MLFLOW_RUN_NAME: f"{study.study_name}-trial-{trial.number}",
            "optuna.study_name": study.study_name,
            "optuna.trial_number": str(trial.number),
            "optuna.overrides": overrides,
        }
        run = self.client.create_run(self.experiment_id, tags=resolve_tags(tags))
        return str(run.info.run_id)

    def end_child(self, run_id: str, state: optuna.trial.TrialState, value: float | None) -> None:
        self.client.set_tag(run_id, "optuna.trial_state", state.name)
        if value is not None:
            self.client.set_tag(run_id, "optuna.value", repr(value))
        if state == optuna.trial.TrialState.PRUNED:
            self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
        elif state == optuna.trial.TrialState.FAIL:
            self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        elif self.client.get_run(run_id).info.status == "RUNNING":
            self.client.set_terminated(run_id)

    def record_trial(self, metric: str, trial: optuna.trial.FrozenTrial, best: float) -> None:
        """Objective value of a finished trial and the best value so far, by trial number."""
        if trial.value is None:
            return
        now = int(time.time() * 1000)
        metrics = [
            Metric(f"trials/{metric}", trial.value, now, trial.number),
            Metric(f"best/{metric}", best, now, trial.number),
        ]
        self.client.log_batch(self.parent_run_id, metrics=metrics)

    def record_best(self, trial: optuna.trial.FrozenTrial, values: Mapping[str, Any]) -> None:
        tags = {
            "best.trial_number": str(trial.number),
            "best.value": repr(trial.value),
            "best.child_run_id": str(trial.user_attrs.get("mlflow_run_id", "")),
            **{f"best.{key}": str(value) for key, value in values.items()},
        }
        self.client.log_batch(
            self.parent_run_id, tags=[RunTag(key, value) for key, value in tags.items()]
        )

    def record_counts(self, study: optuna.Study) -> None:
        states = [trial.state for trial in study.get_trials(deepcopy=False)]
        tags = {
            f"optuna.n_trials_{state.name.lower()}": str(states.count(state))
            for state in (
                optuna.trial.TrialState.COMPLETE,
                optuna.trial.TrialState.PRUNED,
                optuna.trial.TrialState.FAIL,
            )
        }
        self.client.log_batch(
            self.parent_run_id, tags=[RunTag(key, value) for key, value in tags.items()]
        )

    def log_text(self, text: str, path: str) -> None:
        self.client.log_text(self.parent_run_id, text, path)

    def close(self, status: int = RunStatus.FINISHED) -> None:
        if self.parent_run_id:
            self.client.set_terminated(self.parent_run_id, RunStatus.to_string(status))
