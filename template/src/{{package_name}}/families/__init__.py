"""Model families: what training, export, scoring, the registry and the pipeline ask of a kind
of model, so that none of them names a family's classes.

A family is a module in this package that defines `FAMILY`, an object with the methods of
`ModelFamily` and the schemas of the config's `data` and `model` sections; the config's `family`
key names the module. `tabular.py` is the first family.
A new one (an LLM family, say) is a new module and its configs: no platform file changes.
Family modules import their training stack inside their methods, so that checking a config
(which reads `metrics`) stays quick.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Mapping
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd
    from lightning.pytorch import LightningDataModule, LightningModule
    from matplotlib.figure import Figure
    from omegaconf import DictConfig
    from pydantic import BaseModel

    from ..tracking.runs import Store


class ModelFamily(Protocol):
    name: str
    # What `score` measures, higher is better: the names the evaluation gate may use.
    metrics: tuple[str, ...]
    # What the config's `data` and `model` sections may hold (training/settings.py checks them).
    data_settings: type[BaseModel]
    model_settings: type[BaseModel]

    def datamodule(self, cfg: DictConfig) -> LightningDataModule:
        """The data module of `cfg.data`; its sizes are known without `setup()`."""
        ...

    def fingerprint(self, datamodule: Any) -> str:
        """Which exact data a run trains on (a sha256), recorded with the run."""
        ...

    def model(self, cfg: DictConfig, datamodule: Any) -> LightningModule:
        """The LightningModule of `cfg.model`. `cfg` is training's own copy: values derived
        from the data (an input width) are set on it, so that the logged config shows them."""
        ...

    def figures(self, model: Any) -> Mapping[str, Figure]:
        """Plots of the last test epoch, by file stem."""
        ...

    def log_model(self, store: Store, run_id: str, model: Any, datamodule: Any) -> str:
        """Log what serving needs to `run_id`; the logged model's URI."""
        ...

    def held_out_rows(self, datamodule: Any) -> pd.DataFrame:
        """The rows that training held out from fitting and model selection (after setup)."""
        ...

    def score(self, store: Store, model_uri: str, rows: pd.DataFrame) -> dict[str, float]:
        """`metrics` of the model at `model_uri` (in `store`) on `rows`, and `rows`: their count."""
        ...


def available() -> tuple[str, ...]:
    """The family modules of this package, found without importing them."""
    return tuple(sorted(module.name for module in pkgutil.iter_modules(__path__)))


@cache
def load(name: str) -> ModelFamily:
    if name not in available():
        raise ValueError(f"No model family {name!r}; families: {', '.join(available())}")
    family: ModelFamily = import_module(f"{__name__}.{name}").FAMILY
    return family
