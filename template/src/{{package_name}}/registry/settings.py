"""The evaluation gate's settings (`pipeline.gate` in configs/pipeline.yaml), with their ranges.

Standard library and pydantic only: every pipeline command checks its config before anything
runs, and a fully cached pipeline run imports no training stack. Which metrics a gate may name
is the model family's answer (`families/`): `PipelineConfig` checks them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import Field
from pydantic_core import PydanticCustomError

from ..training.settings import NonNegativeFloat, Section, Text, config_error

Score = Annotated[float, Field(ge=0, le=1)]


class GateSettings(Section):
    """`pipeline.gate`: what a candidate must reach on the held-out split (see gate.py)."""

    thresholds: dict[Text, Score]  # metric -> minimum value
    metric: Text  # compared with the champion's
    tolerance: NonNegativeFloat  # how far below the champion still passes
    register_rejected: bool  # a failing candidate gets a version without the alias

    def metric_error(self, measured: Sequence[str], at: str) -> PydanticCustomError | None:
        """An error naming the first metric that the family does not measure (`at`: where
        this section sits in the config), or None."""
        names = " or ".join([", ".join(repr(m) for m in measured[:-1]), repr(measured[-1])])
        for metric in self.thresholds:
            if metric not in measured:
                return config_error(f"{at}.thresholds.{metric}", f"unknown key; expected {names}")
        if self.metric not in measured:
            return config_error(f"{at}.metric", f"must be {names}", value=self.metric)
        return None
