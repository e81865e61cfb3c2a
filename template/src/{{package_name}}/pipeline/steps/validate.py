"""validate: check the raw table against the data schema; stop on bad data with a report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from ...data import schema
from ..tracking import current_run_id, log_json, set_tags, tracking_client


class DataValidationError(ValueError):
    """The raw table breaks the schema; the message lists the offending columns and rows."""


def validate(
    raw_data: Path, validated_data: Path, validation_report: Path, cfg: DictConfig
) -> None:
    """Write the report (also to MLflow); copy the raw file unchanged to `validated_data`
    when it passes, raise `DataValidationError` when it does not."""
    report = schema.validation_report(pd.read_csv(raw_data))
    validation_report.write_text(json.dumps(report, indent=2))
    if run_id := current_run_id():
        client = tracking_client(cfg)
        log_json(client, report, "validation/report.json")
        tags = {"validation.valid": report["valid"], "validation.failures": len(report["failures"])}
        set_tags(client, run_id, tags)
    if not report["valid"]:
        raise DataValidationError(
            f"{raw_data} breaks the data schema.\n{schema.format_report(report)}"
        )
    shutil.copyfile(raw_data, validated_data)
