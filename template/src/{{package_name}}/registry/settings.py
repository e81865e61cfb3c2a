"""The evaluation gate's settings (`pipeline.gate` in configs/pipeline.yaml), with their ranges.

Standard library and pydantic only: every pipeline command checks its config before anything
runs, and a fully cached pipeline run imports no training stack.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field

from ..training.settings import NonNegativeFloat, Section

# What `scoring.score` measures: the metrics a gate can set thresholds on and compare.
Metric = Literal["auroc", "accuracy", "f1"]
METRICS: tuple[str, ...] = get_args(Metric)
Score = Annotated[float, Field(ge=0, le=1)]


class GateSettings(Section):
    """`pipeline.gate`: what a candidate must reach on the held-out split (see gate.py)."""

    thresholds: dict[Metric, Score]  # metric -> minimum value
    metric: Metric  # compared with the champion's
    tolerance: NonNegativeFloat  # how far below the champion still passes
    register_rejected: bool  # a failing candidate gets a version without the alias
