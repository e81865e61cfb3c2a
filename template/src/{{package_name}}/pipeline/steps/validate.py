"""validate: check the raw table against the data schema; stop on bad data with a report.

The same check as training's data module (data/schema.py), made a step of its own so that bad
data stops the pipeline before training and its report is kept as an artifact and in MLflow.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from omegaconf import DictConfig

from ...data import schema
from ...data.raw import read_table
from ...data.schema import DataValidationError
from ..tracking import current_run_id, log_json, set_tags, tracking_client


def validate(
    raw_data: Path, validated_data: Path, validation_report: Path, cfg: DictConfig
) -> None:
    """Write the report (also to MLflow); copy the raw file unchanged to `validated_data`
    when it passes, raise `DataValidationError` when it does not."""
    splits = schema.Splits(cfg.data.val_fraction, cfg.data.test_fraction)
    report = schema.validation_report(read_table(raw_data), splits)
    validation_report.write_text(json.dumps(report, indent=2))
    if run_id := current_run_id():
        client = tracking_client(cfg)
        log_json(client, report, "validation/report.json")
        tags = {"validation.valid": report["valid"], "validation.failures": len(report["failures"])}
        set_tags(client, run_id, tags)
    if not report["valid"]:
        raise DataValidationError.from_report(raw_data, report)
    shutil.copyfile(raw_data, validated_data)
