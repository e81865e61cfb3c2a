"""Each model version's reference for drift monitoring, logged with the model (models/export.py).

`baseline.parquet` holds a sample of the training rows, raw as a client would send them, with the
model's probability for each; `profile.json` summarises it per column (missing share, range and
quantiles of numbers, frequency of each category). Monitoring (Level 3) compares the rows the
service scored with the baseline of the version that scored them, never with today's data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REFERENCE_FILE = "baseline.parquet"
PROFILE_FILE = "profile.json"
PREDICTION = "probability"  # the reference's prediction column, named as in the prediction log
# Drift tests on 10,000 rows take a fraction of a second; more rows add little to a distribution.
MAX_ROWS = 10_000
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def reference(rows: pd.DataFrame, probabilities: np.ndarray) -> pd.DataFrame:
    """`rows` (the first MAX_ROWS of the shuffled training split) with the model's probability
    for each."""
    return rows.reset_index(drop=True).assign(**{PREDICTION: probabilities})


def profile(
    frame: pd.DataFrame, numeric: Iterable[str], categorical: Iterable[str]
) -> dict[str, Any]:
    """Per column of `frame`: what a person (or a range check) compares live values with."""
    return {
        "rows": len(frame),
        "numeric": {column: _numbers(frame[column]) for column in [*numeric, PREDICTION]},
        "categorical": {column: _categories(frame[column]) for column in categorical},
    }


def _numbers(values: pd.Series) -> dict[str, Any]:
    present = pd.to_numeric(values, errors="coerce").dropna()
    if present.empty:
        return {"missing_share": 1.0}
    return {
        "missing_share": 1 - len(present) / len(values),
        "min": float(present.min()),
        "max": float(present.max()),
        "mean": float(present.mean()),
        "std": float(present.std(ddof=0)),
        "quantiles": {f"{q:g}": float(present.quantile(q)) for q in QUANTILES},
    }


def _categories(values: pd.Series) -> dict[str, Any]:
    shares = values.dropna().astype(str).value_counts(normalize=True).sort_index()
    return {
        "missing_share": float(values.isna().mean()) if len(values) else 0.0,
        "frequencies": {str(value): float(share) for value, share in shares.items()},
    }


def save(frame: pd.DataFrame, stats: Mapping[str, Any], folder: Path) -> dict[str, Path]:
    """Write both files into `folder`; the paths by artifact name (the pyfunc's artifacts)."""
    paths = {"baseline": folder / REFERENCE_FILE, "profile": folder / PROFILE_FILE}
    frame.to_parquet(paths["baseline"], index=False)
    paths["profile"].write_text(json.dumps(stats, indent=2) + "\n")
    return paths
