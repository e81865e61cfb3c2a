"""The contract of the raw table: column types, value ranges, no nulls, allowed categories.

The columns come from `dataset.py` (team-owned), so a team that adds or renames a feature
there gets it checked here without editing this file: numeric features must be numbers and
categorical ones must hold a value of their vocabulary. `NUMERIC_BOUNDS` adds plausible
ranges for the example's columns; a bound for a column the data set no longer has is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pandera.pandas as pa

from .dataset import CATEGORICAL_FEATURES, NUMERIC_FEATURES, TARGET


@dataclass(frozen=True)
class Bounds:
    """Inclusive limits of a numeric column; `integer` requires whole numbers."""

    low: float | None = None
    high: float | None = None
    integer: bool = False


NUMERIC_BOUNDS: dict[str, Bounds] = {
    "age": Bounds(18, 120, integer=True),
    "tenure_months": Bounds(0, 1200, integer=True),
    "monthly_charges": Bounds(0, 10_000),
    "total_charges": Bounds(0, None),
    "support_calls": Bounds(0, None, integer=True),
    "num_products": Bounds(1, 100, integer=True),
}
TARGET_VALUES = (0, 1)


def _numeric_checks(bounds: Bounds) -> list[pa.Check]:
    checks = []
    if bounds.low is not None:
        checks.append(pa.Check.greater_than_or_equal_to(bounds.low))
    if bounds.high is not None:
        checks.append(pa.Check.less_than_or_equal_to(bounds.high))
    if bounds.integer:
        checks.append(
            pa.Check(lambda values: values % 1 == 0, element_wise=False, name="whole_number")
        )
    return checks


def raw_schema() -> pa.DataFrameSchema:
    """Schema of the raw table; other columns (identifiers, for example) pass unchecked."""
    columns: dict[str, pa.Column] = {}
    for name in NUMERIC_FEATURES:
        bounds = NUMERIC_BOUNDS.get(name, Bounds())
        # Coerced to float for checking only: the validated file is the raw file, byte for byte.
        columns[name] = pa.Column(float, _numeric_checks(bounds), nullable=False, coerce=True)
    for name, vocabulary in CATEGORICAL_FEATURES.items():
        columns[name] = pa.Column(str, pa.Check.isin(vocabulary), nullable=False, coerce=True)
    columns[TARGET] = pa.Column(int, pa.Check.isin(TARGET_VALUES), nullable=False, coerce=True)
    return pa.DataFrameSchema(columns, strict=False, name="raw_table")


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


def validation_report(frame: pd.DataFrame, examples: int = 10) -> dict[str, Any]:
    """A JSON-ready summary: per failing (column, check), how many rows and which ones."""
    cases = failure_cases(frame)
    failures = []
    for (column, check), group in cases.groupby(["column", "check"], sort=False, dropna=False):
        rows = [int(row) for row in group["row"].dropna()]
        failures.append(
            {
                "column": str(column),
                "check": str(check),
                "count": len(group),
                "rows": rows[:examples],
                "values": [str(value) for value in group["failure_case"].head(examples)],
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
    lines = [f"{len(report['failures'])} failed checks in {report['rows']} rows:"]
    for failure in report["failures"]:
        where = f"rows {failure['rows']}" if failure["rows"] else "the table"
        more = " ..." if failure["count"] > len(failure["rows"]) else ""
        lines.append(
            f"  {failure['column']}: {failure['check']} fails in {failure['count']} "
            f"({where}{more}); values {failure['values']}"
        )
    return "\n".join(lines)
