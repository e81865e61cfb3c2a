"""The search's config (`make tune`): training's, plus the `hparams_search` section.

Checked right after composition, before a study or an MLflow run is made (see
training/settings.py for how a bad value is reported). Besides its own ranges, each searched
key must exist in the training config, and the ends of its range (or each choice) must be
values that training accepts: a bad search space fails now, not at a trial hours later.

Its JSON Schema: `make config-schema SCHEMA=tune`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from ..training.settings import (
    Arguments,
    PositiveInt,
    Section,
    Text,
    TrainConfig,
    config_error,
    describe,
)

# A study name or an experiment file stem: it becomes part of a file name.
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")]
Number = int | float


class Distribution(Section):
    """One `search_space` entry: `{type: float|int, low, high, log?, step?}` or
    `{type: categorical, choices}` (see space.py)."""

    type: Literal["float", "int", "categorical"]
    low: Number | None = None
    high: Number | None = None
    log: bool = False
    step: Number | None = None
    choices: Annotated[list[Any], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Distribution:
        if self.type == "categorical":
            if self.choices is None:
                raise config_error("choices", "a categorical parameter needs choices")
            for key in ("low", "high", "step"):
                if getattr(self, key) is not None:
                    raise config_error(key, "not used by a categorical", value=getattr(self, key))
            return self
        if self.choices is not None:
            raise config_error("choices", f"not used by a {self.type}", value=self.choices)
        if self.low is None or self.high is None:
            missing = "low" if self.low is None else "high"
            raise config_error(missing, f"a {self.type} parameter needs low and high")
        if self.type == "int":
            for key in ("low", "high", "step"):
                value = getattr(self, key)
                if value is not None and not isinstance(value, int):
                    raise config_error(key, "must be an integer for an int", value=value)
        if self.low >= self.high:
            raise config_error("high", f"must be > low ({self.low})", value=self.high)
        if self.log and self.low <= 0:
            raise config_error("low", "must be > 0 on a log scale", value=self.low)
        if self.step is not None and (self.log or self.step <= 0):
            reason = "cannot be combined with log: true" if self.log else "must be > 0"
            raise config_error("step", reason, value=self.step)
        return self

    def extremes(self) -> Iterator[tuple[str, Any]]:
        """(setting, value): the values whose acceptance stands for the whole range."""
        if self.choices is not None:
            yield from ((f"choices[{n}]", choice) for n, choice in enumerate(self.choices))
        else:
            yield from (("low", self.low), ("high", self.high))


class SearchSpace(Section):
    """A search space alone: config key -> distribution."""

    search_space: Annotated[dict[str, Distribution], Field(min_length=1)]


class SearchSection(SearchSpace):
    """`hparams_search`: the Optuna study and what it searches (configs/hparams_search/)."""

    study_name: Name
    storage: Text | None  # null: in memory, not resumable
    metric: Text  # a metric that training logs every validation epoch
    direction: Literal["maximize", "minimize"]
    n_trials: PositiveInt | None  # trials added by each run; null: until the timeout
    timeout: Annotated[float, Field(gt=0)] | None  # seconds; null: no limit
    best_experiment: Name | None  # configs/experiment/<name>.yaml; null: no file
    sampler: Arguments | None
    pruner: Arguments | None


def _with(config: Mapping[str, Any], dotted: str, value: Any) -> dict[str, Any] | None:
    """A copy of `config` with the key at `dotted` set to `value`; None if there is no such key."""
    changed = copy.deepcopy(dict(config))
    node: Any = changed
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or last not in node:
        return None
    node[last] = value
    return changed


class SearchConfig(TrainConfig):
    """The config of `make tune` (configs/train.yaml with `+hparams_search=<name>`)."""

    hparams_search: SearchSection

    @model_validator(mode="after")
    def _space_fits_training(self) -> SearchConfig:
        """Each trial sets the searched keys as overrides of the training config."""
        training = self.model_dump(by_alias=True, exclude={"hparams_search"})
        for key, distribution in self.hparams_search.search_space.items():
            where = f"hparams_search.search_space.{key}"
            for setting, value in distribution.extremes():
                trial = _with(training, key, value)
                if trial is None or key.partition(".")[0] == "hparams_search":
                    raise config_error(where, "no such key in the training config")
                try:
                    TrainConfig.for_family(self.family).model_validate(trial)
                except ValidationError as error:
                    refused = describe(error.errors()[0])
                    message = f"a trial would be refused: {refused}"
                    raise config_error(f"{where}.{setting}", message, value=value) from None
        return self
