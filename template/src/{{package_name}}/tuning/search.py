"""Hyperparameter search with Optuna over training's own config (`make tune`).

    make tune                                         # 10 more trials of hparams_search/mlp_optuna
    make tune ARGS="hparams_search.n_trials=3 trainer.max_epochs=8"
    make pipeline ARGS="experiment=tuned_mlp_optuna"  # train with the best parameters found

How trials are composed and tracked, how a study resumes, and why the best parameters become an
experiment config: docs/pipeline.md, "Hyperparameter search".
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import optuna
from hydra.utils import instantiate
from mlflow.entities import RunStatus
from omegaconf import DictConfig, OmegaConf, open_dict
from sqlalchemy.engine import make_url

from ..errors import reported_errors
from ..training.config import compose_config, config_dir
from ..training.settings import ConfigError
from ..training.train import quiet_console, train
from .settings import SearchConfig
from .space import Parameter, as_overrides, config_values, nested, parse_space, sample
from .tracking import StudyTracker

GROUP = "hparams_search"
DEFAULT_SEARCH = "mlp_optuna"
EXPERIMENT_GROUP = "experiment"
# The training callback that connects each trial's training to Optuna (see callbacks.py).
CALLBACK_ENTRY = "optuna_trial"
# By name: callbacks.py imports Lightning, which a mistake in the search config need not wait for.
CALLBACK_TARGET = f"{__package__}.callbacks.trial_callback"
HEARTBEAT_S = 60


@dataclass(frozen=True)
class SearchSettings:
    """The `hparams_search` node of the composed config, checked."""

    study_name: str
    storage: str | None
    metric: str
    direction: Literal["maximize", "minimize"]
    n_trials: int | None
    timeout: float | None
    best_experiment: str | None
    space: tuple[Parameter, ...]
    sampler: DictConfig | None
    pruner: DictConfig | None

    @classmethod
    def from_config(cls, cfg: DictConfig) -> SearchSettings:
        node = cfg.get(GROUP)
        if not isinstance(node, DictConfig):
            raise ConfigError(f"No `{GROUP}` settings: pass {GROUP}=<a file in configs/{GROUP}/>")
        search = SearchConfig.from_config(cfg).hparams_search
        return cls(
            study_name=search.study_name,
            storage=_storage_url(search.storage, Path(cfg.paths.root_dir)),
            metric=search.metric,
            direction=search.direction,
            n_trials=search.n_trials,
            timeout=search.timeout,
            best_experiment=search.best_experiment,
            space=parse_space(node.search_space),
            sampler=node.get("sampler"),
            pruner=node.get("pruner"),
        )


@dataclass
class SearchResult:
    study: optuna.Study
    best_values: dict[str, Any] = field(default_factory=dict)  # config key -> value
    parent_run_id: str | None = None
    best_experiment_path: Path | None = None


def _storage_url(storage: Any, root: Path) -> str | None:
    """The storage URL with a relative sqlite path anchored at the project root, never the
    current directory; its folder is created. None keeps the study in memory (no resuming)."""
    if storage is None:
        return None
    url = str(storage)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url.removeprefix("sqlite:///"))
        path = path if path.is_absolute() else root / path
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    return url


def _safe_url(url: str | None, root: Path | None = None) -> str:
    """The storage URL for logs and tags, without a password (and relative to `root`)."""
    if url is None:
        return "in-memory"
    if root is not None and url.startswith(prefix := f"sqlite:///{root}/"):
        return "sqlite:///" + url.removeprefix(prefix)  # resolved against the project root
    return make_url(url).render_as_string(hide_password=True)


def _key(override: str) -> str:
    return override.partition("=")[0].lstrip("+~")


def split_overrides(overrides: Sequence[str]) -> tuple[list[str], str | None]:
    """The overrides every composition uses (the search config appended to the defaults list),
    and the experiment the search runs on top of, if any."""
    base: list[str] = []
    chosen = False
    experiment = None
    for override in overrides:
        key, _, value = override.partition("=")
        if _key(override) == GROUP and not key.startswith("~"):
            base.append(f"+{GROUP}={value}")  # not in train.yaml's defaults: always appended
            chosen = True
            continue
        if _key(override) == EXPERIMENT_GROUP and not key.startswith("~"):
            experiment = value if value not in ("", "null") else None
        base.append(override)
    if not chosen:
        base.insert(0, f"+{GROUP}={DEFAULT_SEARCH}")
    return base, experiment


def trial_config(overrides: Sequence[str]) -> DictConfig:
    """The training config of one trial: the search settings are not part of it."""
    cfg = compose_config(overrides)
    with open_dict(cfg):
        cfg.pop(GROUP, None)
    return cfg


def _instantiate(node: DictConfig | None, kind: type[Any], what: str) -> Any:
    if node is None:
        return None
    built = instantiate(node)
    if not isinstance(built, kind):
        raise TypeError(f"{GROUP}.{what} must build a {kind.__name__}, got {type(built).__name__}")
    return built


def open_study(settings: SearchSettings) -> optuna.Study:
    """Create the study, or load it to add trials when it exists in the storage."""
    storage: str | optuna.storages.BaseStorage | None = settings.storage
    if settings.storage is not None and not settings.storage.endswith(":memory:"):
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                settings.storage,
                heartbeat_interval=HEARTBEAT_S,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=1
                ),
            )
    study = optuna.create_study(
        study_name=settings.study_name,
        storage=storage,
        sampler=_instantiate(settings.sampler, optuna.samplers.BaseSampler, "sampler"),
        pruner=_instantiate(settings.pruner, optuna.pruners.BasePruner, "pruner"),
        direction=settings.direction,
        load_if_exists=True,
    )
    if study.direction.name.lower() != settings.direction:
        raise ConfigError(
            f"Study {settings.study_name!r} in {_safe_url(settings.storage)} was created to "
            f"{study.direction.name.lower()}; use another study_name to {settings.direction}."
        )
    return study


def best_experiment_text(
    settings: SearchSettings,
    trial: optuna.trial.FrozenTrial,
    values: dict[str, Any],
    base_experiment: str | None,
    overrides: Sequence[str],
    parent_run_id: str | None,
    root: Path | None = None,
) -> str:
    """A Hydra experiment config that sets the best trial's values."""
    search_overrides = [
        o for o in overrides if _key(o).partition(".")[0] not in (GROUP, EXPERIMENT_GROUP)
    ]
    header = [
        "# @package _global_",
        f"# Written by `make tune`: the best parameters of Optuna study {settings.study_name!r}",
        f"# (storage {_safe_url(settings.storage, root)}), trial {trial.number}: "
        f"{settings.metric} = {trial.value:.6g} ({settings.direction}).",
        f"# MLflow parent run: {parent_run_id or 'none (tracking off)'}.",
        f"# Other overrides of the search, not applied here: {' '.join(search_overrides) or '-'}",
        f'# Train with them: make pipeline ARGS="experiment={settings.best_experiment}"',
        "# (or make train ARGS=...). The next improvement of the study rewrites this file;",
        "# commit it to adopt the values.",
    ]
    document: dict[str, Any] = {}
    if base_experiment:
        document["defaults"] = [base_experiment, "_self_"]
    document.update(nested(values))
    return "\n".join(header) + "\n" + OmegaConf.to_yaml(OmegaConf.create(document))


class Search:
    """One invocation of a study: the objective and what happens after each trial."""

    def __init__(self, overrides: Sequence[str]) -> None:
        self.overrides, self.base_experiment = split_overrides(overrides)
        base = compose_config(self.overrides)
        self.settings = SearchSettings.from_config(base)
        if self.settings.best_experiment and self.settings.best_experiment == self.base_experiment:
            raise ConfigError(
                f"The search runs on experiment={self.base_experiment} and would overwrite it "
                f"with its results: set {GROUP}.best_experiment to another name."
            )
        self.tracker = StudyTracker.from_config(trial_config(self.overrides))
        self.root = Path(base.paths.root_dir)
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        self.output_dir = Path(base.paths.log_dir) / "tune" / self.settings.study_name / stamp
        self.study = open_study(self.settings)
        self.best_path: Path | None = None
        if self.settings.best_experiment:
            name = f"{self.settings.best_experiment}.yaml"
            self.best_path = config_dir() / EXPERIMENT_GROUP / name

    def objective(self, trial: optuna.Trial) -> float:
        from .callbacks import trial_scope  # Lightning: loaded by the first trial

        values = sample(self.settings.space, trial)
        trial_overrides = as_overrides(values)
        cfg = trial_config(
            [
                *self.overrides,
                *trial_overrides,
                f"++callbacks.{CALLBACK_ENTRY}._target_={CALLBACK_TARGET}",
                f"paths.output_dir={self.output_dir / f'trial_{trial.number}'}",
            ]
        )
        run_id = None
        if self.tracker:
            run_id = self.tracker.start_child(self.study, trial, " ".join(trial_overrides))
            trial.set_user_attr("mlflow_run_id", run_id)
        state, score = optuna.trial.TrialState.FAIL, None
        try:
            with trial_scope(trial, self.settings.metric) as monitor:
                train(cfg, run_id=run_id)  # training logs into the trial's child run
                monitor.check_pruned()
            score = monitor.score(self.settings.direction)
            state = optuna.trial.TrialState.COMPLETE
            return score
        except optuna.TrialPruned:
            state = optuna.trial.TrialState.PRUNED
            raise
        finally:
            if self.tracker and run_id:
                self.tracker.end_child(run_id, state, score)

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Keep the parent run and the best-parameters file current after every trial."""
        completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if self.tracker:
            self.tracker.record_counts(study)
        if not completed:
            return
        best = study.best_trial
        assert best.value is not None
        if self.tracker:
            self.tracker.record_trial(self.settings.metric, trial, best.value)
        if best.number == trial.number:
            self.record_best(best)

    def record_best(self, best: optuna.trial.FrozenTrial) -> dict[str, Any]:
        values = config_values(self.settings.space, best.params)
        parent = self.tracker.parent_run_id if self.tracker else None
        text = best_experiment_text(
            self.settings, best, values, self.base_experiment, self.overrides, parent, self.root
        )
        if self.best_path:
            self.best_path.parent.mkdir(parents=True, exist_ok=True)
            self.best_path.write_text(text)
        if self.tracker:
            self.tracker.record_best(best, values)
            self.tracker.log_text(text, "tuning/best_params.yaml")
        return values

    def run(self) -> SearchResult:
        settings = self.settings
        if self.tracker:
            tags = {
                "optuna.study_name": settings.study_name,
                "optuna.storage": _safe_url(settings.storage),
                "optuna.metric": settings.metric,
                "optuna.direction": settings.direction,
                "optuna.sampler": type(self.study.sampler).__name__,
                "optuna.pruner": type(self.study.pruner).__name__,
            }
            self.tracker.open_parent(self.study, tags)
            space = {p.key: p.describe() for p in settings.space}
            self.tracker.log_text(OmegaConf.to_yaml(space), "tuning/search_space.yaml")
        status = RunStatus.FAILED
        try:
            self.study.optimize(
                self.objective,
                n_trials=settings.n_trials,
                timeout=settings.timeout,
                callbacks=[self.after_trial],
            )
            status = RunStatus.FINISHED
        except KeyboardInterrupt:
            status = RunStatus.KILLED
            raise
        finally:
            if self.tracker:
                frame = self.study.trials_dataframe()
                self.tracker.log_text(frame.to_csv(index=False), "tuning/trials.csv")
                self.tracker.close(status)
        result = SearchResult(
            self.study, parent_run_id=self.tracker.parent_run_id if self.tracker else None
        )
        if self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            result.best_values = config_values(settings.space, self.study.best_params)
            result.best_experiment_path = self.best_path
        return result


def run_search(overrides: Sequence[str] = ()) -> SearchResult:
    """Add `n_trials` trials to the study that the composed search config names."""
    return Search(overrides).run()


def summary(search_result: SearchResult, settings: SearchSettings) -> str:
    study = search_result.study
    trials = study.get_trials(deepcopy=False)
    counts = {
        state.name.lower(): sum(trial.state == state for trial in trials)
        for state in optuna.trial.TrialState
        if any(trial.state == state for trial in trials)
    }
    lines = [
        f"\nStudy {study.study_name!r}: {len(trials)} trials "
        f"({', '.join(f'{n} {state}' for state, n in counts.items())}) "
        + (f"in {_safe_url(settings.storage)}" if settings.storage else "in memory (not resumable)")
    ]
    if not search_result.best_values:
        return "\n".join([*lines, "  no trial has completed yet"])
    best = study.best_trial
    lines.append(f"  best trial {best.number}: {settings.metric} = {best.value:.4f}")
    lines += [f"    {key} = {value}" for key, value in search_result.best_values.items()]
    if search_result.parent_run_id:
        lines.append(f"  MLflow parent run {search_result.parent_run_id}")
    if path := search_result.best_experiment_path:
        shown = path.relative_to(path.parents[2]) if len(path.parents) > 2 else path
        lines.append(f"  best parameters: {shown}")
        lines.append(f'  train with them: make pipeline ARGS="experiment={path.stem}"')
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, report: Callable[[str], None] = print) -> None:
    """Console entry point: the arguments are Hydra overrides."""
    cli = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument("overrides", nargs="*", help="Hydra overrides of configs/train.yaml")
    arguments = cli.parse_args(argv).overrides
    quiet_console()
    with reported_errors():  # a bad override, value or server: one line, exit status 2
        search = Search(arguments)
        report(summary(search.run(), search.settings))


if __name__ == "__main__":
    main()
