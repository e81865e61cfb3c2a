"""The contract of the raw table: column types, value ranges, no nulls, allowed categories, and
enough rows for the splits. The columns and their ranges come from `dataset.py` (team-owned,
read through contract.py), so a new feature is checked without editing this file; training
and the pipeline's validate step both raise `DataValidationError` with the same report
(docs/golden-path.md, "Data").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pandera.pandas as pa

from ..errors import ProjectError
from .contract import CATEGORICAL, NUMERIC, TARGET, Range
from .ranges import clip

TARGET_VALUES = (0, 1)
# The name pandera gives failures that concern the whole table (a missing column, for example).
TABLE = "raw_table"
# Each split needs at least this many rows: an empty one fails deep inside training.
MIN_SPLIT_ROWS = 1


class DataValidationError(ProjectError, ValueError):
    """The raw table breaks the schema; the message is the report (columns, rows, values)."""

    @classmethod
    def from_report(cls, source: object, report: Mapping[str, Any]) -> DataValidationError:
        return cls(f"{source} breaks the data schema.\n{format_report(report)}")


@dataclass(frozen=True)
class Splits:
    """The fractions of rows held out for validation and test (configs/data/: `val_fraction`,
    `test_fraction`); the data module cuts the splits with `sizes`."""

    val_fraction: float = 0.15
    test_fraction: float = 0.15

    def sizes(self, n_rows: int) -> dict[str, int]:
        """Rows per split: test and val are rounded fractions, train is the rest."""
        n_test = round(n_rows * self.test_fraction)
        n_val = round(n_rows * self.val_fraction)
        return {"train": n_rows - n_test - n_val, "val": n_val, "test": n_test}

    def fits(self, n_rows: int) -> bool:
        return all(size >= MIN_SPLIT_ROWS for size in self.sizes(n_rows).values())

    def min_rows(self, limit: int = 100_000) -> int | None:
        """The fewest rows that give every split `MIN_SPLIT_ROWS`; None when no table does."""
        return next((n for n in range(1, limit) if self.fits(n)), None)

    def problem(self, n_rows: int) -> str | None:
        """Why a table of `n_rows` rows cannot be split, or None when it can."""
        if self.fits(n_rows):
            return None
        what = "the table has no rows" if n_rows == 0 else f"{n_rows} rows are too few"
        sizes = ", ".join(f"{name} {size}" for name, size in self.sizes(n_rows).items())
        needed = self.min_rows()
        advice = (
            f"the table needs at least {needed} rows"
            if needed is not None
            else "no table is large enough: change the fractions"
        )
        return (
            f"{what} for the splits: val_fraction {self.val_fraction} and test_fraction "
            f"{self.test_fraction} give {sizes} rows; each split needs at least "
            f"{MIN_SPLIT_ROWS}, so {advice}."
        )


def _numeric_checks(valid: Range) -> list[pa.Check]:
    """dataset.py's range of a number (ranges.py), as pandera checks that name what failed."""
    checks = [
        pa.Check.greater_than_or_equal_to(valid.lowest),
        pa.Check.less_than_or_equal_to(valid.highest),
    ]
    if valid.integer:
        checks.append(
            pa.Check(lambda values: values % 1 == 0, element_wise=False, name="whole_number")
        )
    return checks


def raw_schema() -> pa.DataFrameSchema:
    """Schema of the raw table; other columns (identifiers, for example) pass unchecked."""
    columns: dict[str, pa.Column] = {}
    for name, valid in NUMERIC.items():
        # Coerced to float for checking only: the validated file is the raw file, byte for byte.
        columns[name] = pa.Column(float, _numeric_checks(valid), nullable=False, coerce=True)
    for name, vocabulary in CATEGORICAL.items():
        columns[name] = pa.Column(str, pa.Check.isin(vocabulary), nullable=False, coerce=True)
    columns[TARGET] = pa.Column(int, pa.Check.isin(TARGET_VALUES), nullable=False, coerce=True)
    return pa.DataFrameSchema(columns, strict=False, name=TABLE)


def failure_cases(frame: pd.DataFrame) -> pd.DataFrame:
    """Every failing (column, check, row, value) of `frame`; empty when it passes.

    A column whose values cannot be converted to its type reports the rows that cannot,
    not the follow-on errors of its range checks.
    """
    try:
        raw_schema().validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases.rename(columns={"index": "row"})
    else:
        return pd.DataFrame(columns=["column", "check", "row", "failure_case"])
    checks = cases["check"].astype(str)
    unconvertible = set(cases.loc[checks.str.startswith("coerce_dtype"), "column"])
    follow_on = cases["column"].isin(unconvertible) & ~checks.str.startswith("coerce_dtype")
    cases = cases.loc[~follow_on, ["column", "check", "row", "failure_case"]]
    return cases.reset_index(drop=True)


def validation_report(
    frame: pd.DataFrame, splits: Splits | None = None, examples: int = 10
) -> dict[str, Any]:
    """A JSON-ready summary: per failing (column, check), how many rows and which ones.

    Failures of the whole table (missing columns, too few rows for `splits`) carry a
    `message` instead of rows.
    """
    cases = failure_cases(frame)
    failures: list[dict[str, Any]] = []
    for (column, check), group in cases.groupby(["column", "check"], sort=False, dropna=False):
        rows = [int(row) for row in group["row"].dropna()]
        values = [clip(str(value), 200) for value in group["failure_case"]]  # a cell may be huge
        failure: dict[str, Any] = {
            "column": str(column),
            "check": str(check),
            "count": len(group),
            "rows": rows[:examples],
            "values": values[:examples],
        }
        if check == "column_in_dataframe":
            failure["values"] = values
            failure["message"] = (
                f"missing columns: {', '.join(values)} (dataset.py declares them; "
                "extra columns are fine)"
            )
        failures.append(failure)
    if problem := (splits or Splits()).problem(len(frame)):
        failures.append(
            {
                "column": TABLE,
                "check": "enough_rows_for_splits",
                "count": 1,
                "rows": [],
                "values": [str(len(frame))],
                "message": problem,
            }
        )
    return {
        "valid": not failures,
        "rows": len(frame),
        "columns": [str(column) for column in frame.columns],
        "failures": failures,
    }


def format_report(report: Mapping[str, Any]) -> str:
    """The report as lines a person reads in a terminal."""
    if report["valid"]:
        return f"{report['rows']} rows passed the schema."
    count = len(report["failures"])
    lines = [f"{count} failed check{'s' if count != 1 else ''} in {report['rows']} rows:"]
    for failure in report["failures"]:
        if "message" in failure:
            lines.append(f"  {failure['message']}")
            continue
        where = f"rows {failure['rows']}" if failure["rows"] else "the table"
        more = " ..." if failure["count"] > len(failure["rows"]) else ""
        lines.append(
            f"  {failure['column']}: {failure['check']} fails in {failure['count']} "
            f"({where}{more}); values {failure['values']}"
        )
    return "\n".join(lines)
