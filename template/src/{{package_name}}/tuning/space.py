"""Search spaces: config key -> distribution spec, sampled by an Optuna trial as Hydra overrides.

A search config's `search_space` maps a training-config key to one of

    {type: float, low: 1.0e-4, high: 1.0e-1, log: true}   # `step` instead of `log` for a grid
    {type: int, low: 1, high: 4}                          # `step` and `log` as for float
    {type: categorical, choices: [[64, 32], [128, 64]]}   # any values Hydra can parse

Optuna stores categorical choices only as None, bool, int, float or str: a choice of any other
kind (a list of layer widths) is stored under its override text (`[64, 32]`) and turned back
into the value when a trial or the best parameters are used.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf

from .settings import Distribution, SearchSpace

Primitive = None | bool | int | float | str
PRIMITIVES = (type(None), bool, int, float, str)


def override_value(value: Any) -> str:
    """`value` in Hydra's override grammar: `key=<this>` composes to exactly `value`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"Cannot pass {value} as an override")
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        return f"'{escaped}'"
    if isinstance(value, list | tuple):
        return "[" + ",".join(override_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        items = (f"{key}:{override_value(item)}" for key, item in value.items())
        return "{" + ",".join(items) + "}"
    raise TypeError(f"Cannot pass a {type(value).__name__} as an override: {value!r}")


def _label(choice: Any) -> str:
    """How a non-primitive choice is stored in the study: compact, readable JSON."""
    return json.dumps(choice, separators=(", ", ": "))


@dataclass(frozen=True)
class Parameter:
    """One searched config key and its distribution."""

    key: str
    kind: str  # float | int | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    @property
    def labelled(self) -> bool:
        """Whether Optuna stores this parameter's choices as labels (see the module docstring)."""
        return self.kind == "categorical" and not all(
            isinstance(choice, PRIMITIVES) for choice in self.choices
        )

    def suggest(self, trial: optuna.Trial) -> Any:
        """The trial's value for this key (sampled now, or the stored one on a fixed trial)."""
        if self.kind == "categorical":
            if self.labelled:
                labels = [_label(choice) for choice in self.choices]
                return self.value(trial.suggest_categorical(self.key, labels))
            primitives: list[Primitive] = list(self.choices)
            return trial.suggest_categorical(self.key, primitives)
        low, high = self.low, self.high
        assert low is not None
        assert high is not None
        if self.kind == "int":
            step = int(self.step) if self.step is not None else 1
            return trial.suggest_int(self.key, int(low), int(high), step=step, log=self.log)
        return trial.suggest_float(self.key, low, high, step=self.step, log=self.log)

    def value(self, stored: Any) -> Any:
        """The config value for what the study stored under this key."""
        if self.labelled:
            by_label = {_label(choice): choice for choice in self.choices}
            if stored not in by_label:
                raise ValueError(f"{self.key}: {stored!r} is not one of the search space's choices")
            return by_label[stored]
        return stored

    def describe(self) -> str:
        if self.kind == "categorical":
            return f"categorical {list(self.choices)}"
        scale = " log" if self.log else ""
        step = f" step {self.step}" if self.step is not None else ""
        return f"{self.kind} [{self.low}, {self.high}]{scale}{step}"


def _parameter(key: str, spec: Distribution) -> Parameter:
    if spec.choices is not None:
        return Parameter(key, spec.type, choices=tuple(spec.choices))
    assert spec.low is not None
    assert spec.high is not None
    step = None if spec.step is None else float(spec.step)
    return Parameter(key, spec.type, float(spec.low), float(spec.high), spec.log, step)


def parse_space(space: DictConfig | Mapping[str, Any]) -> tuple[Parameter, ...]:
    """The parameters of a `search_space` mapping, in the order written; `ConfigError` names
    a bad entry (the checks are in settings.py)."""
    plain = OmegaConf.to_container(space, resolve=True) if isinstance(space, DictConfig) else space
    checked = SearchSpace.from_config({"search_space": plain}).search_space
    return tuple(_parameter(key, spec) for key, spec in checked.items())


def sample(space: tuple[Parameter, ...], trial: optuna.Trial) -> dict[str, Any]:
    """Config key -> value for this trial."""
    return {parameter.key: parameter.suggest(trial) for parameter in space}


def as_overrides(values: Mapping[str, Any]) -> list[str]:
    """Hydra overrides that set each key to its value."""
    return [f"{key}={override_value(value)}" for key, value in values.items()]


def config_values(space: tuple[Parameter, ...], params: Mapping[str, Any]) -> dict[str, Any]:
    """Config key -> value for parameters as the study stores them (`study.best_params`)."""
    by_key = {parameter.key: parameter for parameter in space}
    return {
        key: by_key[key].value(stored) if key in by_key else stored
        for key, stored in params.items()
    }


def nested(values: Mapping[str, Any]) -> dict[str, Any]:
    """`{"model.optimizer.lr": 0.1}` -> `{"model": {"optimizer": {"lr": 0.1}}}`."""
    tree = OmegaConf.create()
    for key, value in values.items():
        OmegaConf.update(tree, key, value, force_add=True)
    container = OmegaConf.to_container(tree)
    assert isinstance(container, dict)
    return {str(key): item for key, item in container.items()}
