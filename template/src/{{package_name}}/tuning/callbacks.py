"""The Lightning callback that connects a training run to its Optuna trial: it reports the
monitored metric after each validation epoch, lets the study's pruner stop a hopeless trial, and
keeps the values the trial is scored on. A trial cannot live in a config, so the search adds a
callback entry by target and hands it the running trial through `trial_scope`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import optuna
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from optuna_integration import PyTorchLightningPruningCallback


@dataclass
class TrialMonitor:
    """What one trial's training reported: the monitored metric per validation epoch."""

    trial: optuna.Trial
    monitor: str
    history: list[float] = field(default_factory=list)
    callback: TrialCallback | None = None

    def score(self, direction: str) -> float:
        """The trial's objective: the best value of any epoch (the one its checkpoint keeps)."""
        values = [value for value in self.history if math.isfinite(value)]
        if not values:
            raise RuntimeError(
                f"Training never reported {self.monitor!r}: check `hparams_search.metric` "
                "against the metrics the model logs (for example val/auroc)."
            )
        return max(values) if direction == "maximize" else min(values)

    def check_pruned(self) -> None:
        """Raise `optuna.TrialPruned` if ranks of a distributed run agreed to prune."""
        if self.callback is not None:
            self.callback.pruning.check_pruned()


_ACTIVE: ContextVar[TrialMonitor | None] = ContextVar("active_trial", default=None)


@contextmanager
def trial_scope(trial: optuna.Trial, monitor: str) -> Iterator[TrialMonitor]:
    """Makes `trial` the one that `trial_callback` reports to while the block runs."""
    state = TrialMonitor(trial, monitor)
    token = _ACTIVE.set(state)
    try:
        yield state
    finally:
        _ACTIVE.reset(token)


class TrialCallback(Callback):
    """Records the monitored metric, then lets optuna-integration report it and maybe prune."""

    def __init__(self, state: TrialMonitor) -> None:
        super().__init__()
        self.state = state
        self.pruning = PyTorchLightningPruningCallback(state.trial, monitor=state.monitor)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.pruning.on_fit_start(trainer, pl_module)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            value = trainer.callback_metrics.get(self.state.monitor)
            if value is not None:
                self.state.history.append(float(value))
        self.pruning.on_validation_end(trainer, pl_module)


def trial_callback() -> TrialCallback:
    """Hydra target of the callback entry that the search adds to each trial's config."""
    state = _ACTIVE.get()
    if state is None:
        raise RuntimeError(
            "The Optuna trial callback only works inside a search (`make tune`); "
            "remove `callbacks.optuna_trial` from the config to train on its own."
        )
    state.callback = TrialCallback(state)
    return state.callback
