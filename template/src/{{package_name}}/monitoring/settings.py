"""The monitor's config (configs/monitor.yaml): the pipeline's, plus the `monitor` section.

Checked right after composition, before the prediction log is read (`make config-schema
SCHEMA=monitor` prints its JSON Schema).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from ..pipeline.settings import PipelineConfig
from ..training.settings import PositiveInt, Section, Text

Share = Annotated[float, Field(ge=0, le=1)]
Score = Annotated[float, Field(gt=0)]
# Evidently's tests that return a distance (0: the same distribution; larger: further apart), so
# that one threshold means the same whatever the window's size.
NumericMethod = Literal["wasserstein", "psi", "kl_div", "hellinger", "ed"]
CategoricalMethod = Literal["jensenshannon", "psi", "kl_div", "hellinger"]


class MonitorSection(Section):
    """`monitor`: which model, which rows, and when a difference counts as drift."""

    model_uri: Text
    predictions_dir: Text
    window_hours: Annotated[float, Field(gt=0)]
    # When the window ends (ISO 8601; UTC unless it has an offset); None: now.
    end: Annotated[datetime, Field(strict=False)] | None = None
    min_rows: PositiveInt
    numeric_method: NumericMethod
    categorical_method: CategoricalMethod
    feature_threshold: Score
    feature_thresholds: dict[str, Score]  # per feature, overriding feature_threshold
    prediction_threshold: Score
    max_missing_share: Share
    max_out_of_range_share: Share
    max_invalid_share: Share
    skip_unreadable_files: bool
    output_dir: Text
    pushgateway_url: Text | None = None
    experiment_name: Text
    log_to_mlflow: bool


class MonitorConfig(PipelineConfig):
    """The config of `make monitor` (configs/monitor.yaml)."""

    monitor: MonitorSection
