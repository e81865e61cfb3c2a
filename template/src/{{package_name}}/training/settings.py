"""What each training config value may be, checked right after Hydra composes the config.

The values live in configs/; these models carry only types and ranges. Every command checks its
composed config (`TrainConfig.from_config`) before it reads data or creates a run, and a bad
value stops it with one line that names the key: `Invalid config: trainer.max_epochs = -1: must
be >= 1`. How unknown keys are treated, section by section: docs/golden-path.md, "Configs".
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import inspect
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Self

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from ..errors import ProjectError

PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]
Text = Annotated[str, Field(min_length=1)]
# Seeds go to Lightning's seed_everything, which replaces a larger one with a random seed.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


class ConfigError(ProjectError, ValueError):
    """A composed config breaks its schema; the message is one line naming the key."""


def config_error(key: str, message: str, **value: Any) -> PydanticCustomError:
    """An error about `key` (relative to the model that raises it) for `from_config`;
    `value=...` shows the offending value."""
    return PydanticCustomError("config", message, {"key": key, **value})


def unknown_key(key: str, value: Any, allowed: Iterable[str]) -> PydanticCustomError:
    names = sorted(allowed)
    close = difflib.get_close_matches(key, names, n=1)
    hint = f"did you mean {close[0]}?" if close else f"expected one of {', '.join(names)}"
    context = {"key": key, "value": value}
    return PydanticCustomError("unknown_key", f"unknown key; {hint}", context)


class ConfigModel(BaseModel):
    """Settings that a composed config is checked against (`from_config`)."""

    model_config = ConfigDict(strict=True, frozen=True)

    @classmethod
    def schema_for(cls, data: Mapping[str, Any]) -> type[Self]:
        """The model that checks `data`: this one, unless a subclass picks by content."""
        return cls

    @classmethod
    def from_config(cls, cfg: DictConfig | Mapping[str, Any]) -> Self:
        """The settings of a composed config (or of plain data); `ConfigError`, one line that
        names the first bad key, when it breaks them."""
        data = plain_config(cfg) if isinstance(cfg, DictConfig) else cfg
        try:
            return cls.schema_for(data).model_validate(data)
        except ValidationError as error:
            problems = error.errors()
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ConfigError(f"Invalid config: {describe(problems[0])}{more}") from error


class Section(ConfigModel):
    """A section the project defines: every key is declared, anything else is a typo."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            allowed = {field.alias or name for name, field in cls.model_fields.items()}
            for key, value in data.items():
                if key not in allowed:
                    raise unknown_key(str(key), value, allowed)
        return data


class Open(ConfigModel):
    """A section that may hold more keys than the ones declared (and typed) here."""

    model_config = ConfigDict(extra="allow")


class Arguments(Open):
    """Keyword arguments of another library's class: the keys declared here are checked, the
    others go to the class as they are (Hydra reports a wrong one when it builds the object)."""

    target: Text = Field(alias="_target_")


@cache
def trainer_parameters() -> frozenset[str]:
    """The parameters of Lightning's Trainer: the keys that `trainer` may set.

    Read from Lightning's source, not imported: importing Lightning (and torch) takes seconds,
    and a command that trains nothing (a fully cached pipeline run) must not pay for it. The
    signature itself is the fallback if the source is not where Lightning 2 keeps it.
    """
    spec = importlib.util.find_spec("lightning")
    origin = spec.origin if spec is not None else None
    source = Path(origin).parent / "pytorch" / "trainer" / "trainer.py" if origin else None
    if source is not None and source.is_file():
        for node in ast.parse(source.read_text()).body:
            if isinstance(node, ast.ClassDef) and node.name == "Trainer":
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                        arguments = [*item.args.args[1:], *item.args.kwonlyargs]
                        return frozenset(argument.arg for argument in arguments)
    from lightning.pytorch import Trainer

    return frozenset(inspect.signature(Trainer).parameters)


class TrainerSettings(Arguments):
    """`trainer`: keyword arguments of Lightning's Trainer; a few are checked further."""

    max_epochs: PositiveInt
    min_epochs: NonNegativeInt | None = None  # None: not set here, Lightning decides

    @model_validator(mode="before")
    @classmethod
    def _trainer_parameters(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            allowed = trainer_parameters() | {"_target_"}
            for key, value in data.items():
                if key not in allowed:
                    raise unknown_key(str(key), value, allowed)
        return data

    @model_validator(mode="after")
    def _epochs_in_order(self) -> TrainerSettings:
        if self.min_epochs is not None and self.min_epochs > self.max_epochs:
            raise config_error(
                "min_epochs", f"must be <= max_epochs ({self.max_epochs})", value=self.min_epochs
            )
        return self


class CallbackSettings(Arguments):
    """One entry of `callbacks`: a Lightning callback."""

    patience: NonNegativeInt | None = None  # EarlyStopping's; None: not an EarlyStopping


class LoggerSettings(Arguments):
    """`logger`: MLflow through Lightning's MLFlowLogger."""

    experiment_name: Text
    tracking_uri: Text
    artifact_location: str | None


class PathSettings(Open):
    """`paths`: every folder a run reads or writes."""

    root_dir: Text
    data_dir: Text
    log_dir: Text
    output_dir: Text


class TrainConfig(ConfigModel):
    """The config of `make train` (configs/train.yaml and its groups)."""

    model_config = ConfigDict(extra="allow")  # a team's own top-level keys

    task_name: Text
    family: Text
    seed: Seed
    ckpt_path: str | None = None  # None (or absent): fit from scratch
    # Typed by the model family (`for_family`): each family defines its own sections.
    data: dict[str, Any]
    model: dict[str, Any]
    trainer: TrainerSettings
    # None or absent (`~logger`, `~callbacks`): training logs nothing, uses no callbacks.
    logger: LoggerSettings | None = None
    callbacks: dict[str, CallbackSettings | None] | None = None
    paths: PathSettings

    @classmethod
    def for_family(cls, name: str) -> type[Self]:
        """This config with the `data` and `model` sections of family `name`."""
        schema: type[Self] = _with_family(cls, name)
        return schema

    @classmethod
    def schema_for(cls, data: Mapping[str, Any]) -> type[Self]:
        family = data.get("family")
        return cls.for_family(family) if isinstance(family, str) else cls

    @model_validator(mode="after")
    def _family_exists(self) -> TrainConfig:
        from ..families import available

        if self.family not in available():
            names = ", ".join(available())
            raise config_error(
                "family", f"must be a module of families/ ({names})", value=self.family
            )
        return self


@cache
def _with_family(base: type[TrainConfig], name: str) -> Any:
    from ..families import available, load

    if name not in available():
        return base  # its validator names the families on offer
    family = load(name)
    return create_model(
        base.__name__,
        __base__=base,
        __doc__=base.__doc__,
        data=(family.data_settings, ...),
        model=(family.model_settings, ...),
    )


def _show(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _bound(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


COMPARISONS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<"}
COMPARISONS |= {"less_than_equal": "<="}
SHOULD = re.compile(r"^\w+ should ")  # pydantic's "Input should be ...", "String should match ..."


def _dotted(loc: Sequence[int | str]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else part
    return key


def describe(error: ErrorDetails) -> str:
    """One pydantic error as `key = value: what is allowed`."""
    loc, value, ctx, kind = list(error["loc"]), error["input"], error.get("ctx", {}), error["type"]
    if kind in ("config", "unknown_key"):
        loc.append(ctx["key"])
        if "value" not in ctx:
            return f"{_dotted(loc)}: {error['msg']}"
        value = ctx["value"]
    if loc and loc[-1] == "[key]":  # a mapping key that is not one of the allowed ones
        expected = error["msg"].removeprefix("Input should be ")
        return f"{_dotted(loc[:-1])}: unknown key; expected {expected}"
    key = _dotted(loc)
    if kind == "missing":
        return f"{key}: missing (set it in configs/ or on the command line)"
    if kind in COMPARISONS:
        message = f"must be {COMPARISONS[kind]} {_bound(next(iter(ctx.values())))}"
    elif kind == "too_short":
        message = f"must have at least {ctx['min_length']} item(s)"
    else:
        message = SHOULD.sub("must ", error["msg"].removeprefix("Value error, "))
    return f"{key} = {_show(value)}: {message}"


def _plain(node: Any, path: str) -> Any:
    """The config as plain data, every interpolation resolved. A mandatory value still unset
    (`???`) is left out; a value that only a Hydra run knows (`${hydra:runtime.output_dir}`
    outside one) stays as written."""
    if isinstance(node, DictConfig):
        return {
            str(key): _leaf(node, key, path + str(key))
            for key in node
            if not OmegaConf.is_missing(node, key)
        }
    if isinstance(node, ListConfig):
        return [_leaf(node, index, f"{path}[{index}]") for index in range(len(node))]
    return node


def _leaf(parent: DictConfig | ListConfig, key: Any, path: str) -> Any:
    try:
        value = parent[key]
    except OmegaConfBaseException as error:
        raw = OmegaConf.to_container(parent, resolve=False)[key]  # type: ignore[index]
        if not HydraConfig.initialized() and "HydraConfig was not set" in str(error):
            return raw  # `${hydra:...}`, directly or through other keys
        reason = str(error).splitlines()[0]
        raise ConfigError(f"Invalid config: {path} = {raw}: {reason}") from error
    return _plain(value, f"{path}.") if OmegaConf.is_config(value) else value


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    plain = _plain(cfg, "")
    assert isinstance(plain, dict)
    return plain
