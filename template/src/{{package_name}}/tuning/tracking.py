"""A study in MLflow: one parent run per study (kept across resumes), one child run per trial
that training logs into; the parent keeps the objective per trial, the best value so far and the
best parameters (docs/pipeline.md, "Hyperparameter search").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
from mlflow.entities import RunStatus
from omegaconf import DictConfig

from ..tracking.runs import Store
from ..tracking.server import require_tracking_server
from ..training.train import logs_to_mlflow

PARENT_RUN_ATTR = "mlflow_parent_run"  # study user attribute: {"tracking_uri", "run_id"}
# How a trial's run ends, by the trial's state (a completed trial: FINISHED).
TRIAL_END_STATUS = {
    optuna.trial.TrialState.PRUNED: RunStatus.KILLED,
    optuna.trial.TrialState.FAIL: RunStatus.FAILED,
}


class StudyTracker:
    """Creates and updates the parent and child runs in training's MLflow store and experiment."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.parent_run_id = ""

    @classmethod
    def from_config(cls, cfg: DictConfig) -> StudyTracker | None:
        """The tracker for training's logger config; None when training does not log to MLflow."""
        if not logs_to_mlflow(cfg):
            return None
        require_tracking_server(str(cfg.logger.tracking_uri))
        return cls(Store.from_config(cfg))

    def open_parent(self, study: optuna.Study, tags: Mapping[str, str]) -> str:
        """The study's parent run, reopened on resume; created on the first run of a study."""
        stored = study.user_attrs.get(PARENT_RUN_ATTR) or {}
        run_id = str(stored.get("run_id", ""))
        same_store = stored.get("tracking_uri") == self.store.uri
        if same_store and run_id and self.store.is_active_run(run_id):
            self.store.client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            self.store.set_tags(run_id, tags)
        else:
            run_id = self.store.start_run(study.study_name, tags)
            study.set_user_attr(PARENT_RUN_ATTR, {"tracking_uri": self.store.uri, "run_id": run_id})
        self.parent_run_id = run_id
        return run_id

    def start_child(self, study: optuna.Study, trial: optuna.Trial, overrides: str) -> str:
        tags = {
            "optuna.study_name": study.study_name,
            "optuna.trial_number": str(trial.number),
            "optuna.overrides": overrides,
        }
        name = f"{study.study_name}-trial-{trial.number}"
        return self.store.start_run(name, tags, parent=self.parent_run_id)

    def end_child(self, run_id: str, state: optuna.trial.TrialState, value: float | None) -> None:
        tags = {"optuna.trial_state": state.name}
        if value is not None:
            tags["optuna.value"] = repr(value)
        self.store.set_tags(run_id, tags)
        self.store.end_run(run_id, TRIAL_END_STATUS.get(state, RunStatus.FINISHED))

    def record_trial(self, metric: str, trial: optuna.trial.FrozenTrial, best: float) -> None:
        """Objective value of a finished trial and the best value so far, by trial number."""
        if trial.value is None:
            return
        values = {f"trials/{metric}": trial.value, f"best/{metric}": best}
        self.store.log_metrics(self.parent_run_id, values, step=trial.number)

    def record_best(self, trial: optuna.trial.FrozenTrial, values: Mapping[str, Any]) -> None:
        tags = {
            "best.trial_number": str(trial.number),
            "best.value": repr(trial.value),
            "best.child_run_id": str(trial.user_attrs.get("mlflow_run_id", "")),
            **{f"best.{key}": str(value) for key, value in values.items()},
        }
        self.store.set_tags(self.parent_run_id, tags)

    def record_counts(self, study: optuna.Study) -> None:
        states = [trial.state for trial in study.get_trials(deepcopy=False)]
        counted = (
            optuna.trial.TrialState.COMPLETE,
            optuna.trial.TrialState.PRUNED,
            optuna.trial.TrialState.FAIL,
        )
        tags = {f"optuna.n_trials_{state.name.lower()}": states.count(state) for state in counted}
        self.store.set_tags(self.parent_run_id, tags)

    def log_text(self, text: str, path: str) -> None:
        self.store.client.log_text(self.parent_run_id, text, path)

    def close(self, status: int = RunStatus.FINISHED) -> None:
        if self.parent_run_id:
            self.store.end_run(self.parent_run_id, status)
