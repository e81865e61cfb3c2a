"""validate: check the raw table against the data schema; stop on bad data with a report.

The same check as training's data module (data/schema.py), made a step of its own so that bad
data stops the pipeline before training and its report is kept as an artifact and in MLflow.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ...data import schema
from ...data.raw import read_table
from ...data.schema import DataValidationError
from ..context import StepContext


def validate(
    raw_data: Path, validated_data: Path, validation_report: Path, context: StepContext
) -> None:
    """Write the report (also to MLflow); copy the raw file unchanged to `validated_data`
    when it passes, raise `DataValidationError` when it does not."""
    data = context.cfg.data
    report = schema.validation_report(
        read_table(raw_data), schema.Splits(data.val_fraction, data.test_fraction)
    )
    validation_report.write_text(json.dumps(report, indent=2))
    context.log_json(report, "validation/report.json")
    context.set_tags(
        {"validation.valid": report["valid"], "validation.failures": len(report["failures"])}
    )
    if not report["valid"]:
        raise DataValidationError.from_report(raw_data, report)
    shutil.copyfile(raw_data, validated_data)
