"""Values in the window that no valid row holds: a number outside the range dataset.py sets (or
not finite), a probability outside 0..1. The service refuses such rows, but the log may come
from an older version or another producer. They are counted per column, then left out of the
checks (as missing values are), so that one bad row can neither crash the report nor decide a
drift score.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.contract import NUMERIC
from ..data.ranges import Range
from ..models.baseline import PREDICTION

PROBABILITY = Range(0, 1)


def valid_values(column: str) -> Range:
    """The range a logged column's values must lie in: the contract's, or 0..1 for the
    probability (a feature the contract no longer has: float32's limits only)."""
    return PROBABILITY if column == PREDICTION else NUMERIC.get(column, Range())


def set_aside_invalid(frame: pd.DataFrame, numeric: list[str]) -> dict[str, float]:
    """Per numeric column (and the probability), the share of invalid values in `frame`, which
    become missing values in place."""
    shares = {}
    for column in [*numeric, PREDICTION]:
        values = frame[column].to_numpy(dtype=np.float64)
        # A missing value is not an invalid one.
        invalid = valid_values(column).invalid(values) & ~np.isnan(values)
        shares[column] = float(invalid.mean()) if len(values) else 0.0
        if invalid.any():
            frame.loc[invalid, column] = np.nan
    return shares


def invalid_findings(shares: dict[str, float], rows: int, limit: float) -> list[str]:
    """A failed check per column whose share of invalid values is above `limit`."""
    return [
        f"{column}: {share:.2%} of {rows:,} values invalid (outside {valid_values(column)}, or "
        f"not finite), above monitor.max_invalid_share={limit:g}"
        for column, share in shares.items()
        if share > limit
    ]
