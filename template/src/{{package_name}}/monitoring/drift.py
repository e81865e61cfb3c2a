"""Evidently's tests of a window of traffic against a model's baseline, and their summary.

Per feature: a drift score (a distance between the two distributions, by the method the
config names for its type), the share of missing values, and the share outside what the
baseline holds (a number beyond its min..max, a category it lacks). The same drift test runs
on the model's probabilities. Every check is an Evidently test; a failed one is drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.core.report import Snapshot
from evidently.metrics import (
    MissingValueCount,
    OutListValueCount,
    OutRangeValueCount,
    RowCount,
    ValueDrift,
)
from evidently.presets import DataDriftPreset
from evidently.tests import lte

from ..errors import ProjectError
from ..models.baseline import PREDICTION
from .quality import invalid_findings
from .settings import MonitorSection


class ThresholdError(ProjectError):
    """A threshold in the config names a feature the model does not have."""


@dataclass(frozen=True)
class FeatureResult:
    kind: str  # numeric or categorical
    method: str
    score: float
    threshold: float
    drifted: bool
    missing_share: float  # invalid values count as missing too: they are left out
    out_of_range_share: float
    invalid_share: float  # outside the valid range dataset.py sets, or not finite (quality.py)


@dataclass(frozen=True)
class DriftResult:
    rows: int
    baseline_rows: int
    features: dict[str, FeatureResult]
    prediction: FeatureResult
    failed: list[str] = field(default_factory=list)  # Evidently's descriptions of failed tests

    @property
    def drift(self) -> bool:
        return bool(self.failed)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drift": self.drift}


def run_report(
    current: pd.DataFrame,
    baseline: pd.DataFrame,
    profile: Mapping[str, Any],
    cfg: MonitorSection,
    invalid: Mapping[str, float] | None = None,
) -> tuple[Snapshot, DriftResult]:
    """Run every test on `current` (the window) against `baseline`; the report and its summary.
    `invalid`: per column, the share of invalid values already set aside (quality.py)."""
    numeric = [column for column in profile["numeric"] if column != PREDICTION]
    categorical = list(profile["categorical"])
    features = [*numeric, *categorical]
    if unknown := sorted(set(cfg.feature_thresholds) - set(features)):
        raise ThresholdError(
            f"monitor.feature_thresholds names {', '.join(unknown)}, not a feature of the model "
            f"(its features: {', '.join(features)})"
        )
    thresholds = {
        name: cfg.feature_thresholds.get(name, cfg.feature_threshold) for name in features
    }
    metrics: list[Any] = [
        RowCount(tests=[]),  # reported; too few rows stop the monitor before this
        DataDriftPreset(
            columns=features,
            num_method=cfg.numeric_method,
            cat_method=cfg.categorical_method,
            threshold=cfg.feature_threshold,
            per_column_threshold=thresholds,
            # Evidently's "dataset drift" as this monitor judges it: one drifted feature is enough.
            drift_share=1 / len(features),
        ),
        ValueDrift(
            column=PREDICTION, method=cfg.numeric_method, threshold=cfg.prediction_threshold
        ),
    ]
    missing = [lte(cfg.max_missing_share)]
    out_of_range = [lte(cfg.max_out_of_range_share)]
    for column in features:
        metrics.append(MissingValueCount(column=column, share_tests=missing))
    for column in numeric:
        stats = profile["numeric"][column]
        metrics.append(
            OutRangeValueCount(
                column=column, left=stats["min"], right=stats["max"], share_tests=out_of_range
            )
        )
    for column in categorical:
        known = list(profile["categorical"][column]["frequencies"])
        metrics.append(OutListValueCount(column=column, values=known, share_tests=out_of_range))

    definition = DataDefinition(
        numerical_columns=[*numeric, PREDICTION], categorical_columns=categorical
    )
    columns = [*features, PREDICTION]
    snapshot = Report(metrics, include_tests=True).run(
        Dataset.from_pandas(current[columns], data_definition=definition),
        Dataset.from_pandas(baseline[columns], data_definition=definition),
    )
    invalid = dict(invalid or {})
    result = summarise(snapshot, len(current), len(baseline), numeric, invalid)
    result.failed.extend(invalid_findings(invalid, len(current), cfg.max_invalid_share))
    return snapshot, result


def summarise(
    snapshot: Snapshot,
    rows: int,
    baseline_rows: int,
    numeric: list[str],
    invalid: Mapping[str, float],
) -> DriftResult:
    """Scores and verdicts per column, read from the report's metrics and tests."""
    content = snapshot.dict()
    values: dict[tuple[str, str | None], Any] = {}
    methods: dict[str, tuple[str, float]] = {}
    for metric in content["metrics"]:
        config = metric["config"]
        kind = config["type"].rpartition(":")[2]
        column = config.get("column")
        values[kind, column] = metric["value"]
        if kind == "ValueDrift":
            methods[column] = (config["method"], config["threshold"])
    failed_columns: set[tuple[str, str | None]] = set()
    failed = []
    for test in content["tests"]:
        if test["status"] != "FAIL":
            continue
        params = test["metric_config"]["params"]
        kind, column = params["type"].rpartition(":")[2], params.get("column")
        if kind == "DriftedColumnsCount":  # the count of the drift tests listed on their own
            continue
        failed_columns.add((kind, column))
        # A drift test's description does not name its column; the others do.
        failed.append(
            f"{column}: {test['description']}" if kind == "ValueDrift" else test["description"]
        )

    def result(column: str, kind: str) -> FeatureResult:
        method, threshold = methods[column]
        return FeatureResult(
            kind=kind,
            method=method,
            score=float(values["ValueDrift", column]),
            threshold=float(threshold),
            drifted=("ValueDrift", column) in failed_columns,
            missing_share=_share(values.get(("MissingValueCount", column))),
            out_of_range_share=_share(
                values.get(
                    ("OutRangeValueCount", column), values.get(("OutListValueCount", column))
                )
            ),
            invalid_share=invalid.get(column, 0.0),
        )

    features = {
        column: result(column, "numeric" if column in numeric else "categorical")
        for column in methods
        if column != PREDICTION
    }
    return DriftResult(rows, baseline_rows, features, result(PREDICTION, "numeric"), failed)


def _share(value: Mapping[str, Any] | None) -> float:
    return 0.0 if value is None else float(value["share"])
