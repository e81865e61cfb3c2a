"""The pipeline's config (configs/pipeline.yaml): training's, plus the `pipeline` section.

Checked right after composition, before a step runs or an MLflow run is made (see
training/settings.py for how a bad value is reported). Its JSON Schema: `make config-schema
SCHEMA=pipeline`.
"""

from __future__ import annotations

from pydantic import model_validator

from ..registry.settings import GateSettings
from ..training.settings import Section, Text, TrainConfig, config_error
from .definition import PIPELINE

FORCE_ALL = "all"


class PipelineSection(Section):
    """`pipeline`: where the cache and the runs live, what to re-run, where to register."""

    cache_dir: Text
    runs_dir: Text
    force: list[str]  # steps to run even when cached, or [all]
    registered_model_name: Text
    gate: GateSettings

    @model_validator(mode="after")
    def _force_names_steps(self) -> PipelineSection:
        names = [step.name for step in PIPELINE.order]
        for position, name in enumerate(self.force):
            if name not in (*names, FORCE_ALL):
                raise config_error(
                    f"force[{position}]", f"must be a step ({', '.join(names)}) or all", value=name
                )
        return self


class PipelineConfig(TrainConfig):
    """The config of `make pipeline` (configs/pipeline.yaml)."""

    pipeline: PipelineSection

    @model_validator(mode="after")
    def _gate_names_measured_metrics(self) -> PipelineConfig:
        from ..families import available, load

        if self.family in available():  # else TrainConfig has reported the family
            measured = load(self.family).metrics
            if error := self.pipeline.gate.metric_error(measured, "pipeline.gate"):
                raise error
        return self
