"""The row contract, as every consumer reads it: the features dataset.py declares, with each
numeric feature's valid range (ranges.py) and each category's vocabulary.

dataset.py is the team's and may come from an older template version: read it through this
module, never directly, when ranges matter.
"""

from __future__ import annotations

from .dataset import CATEGORICAL_FEATURES, NUMERIC_FEATURES, TARGET
from .ranges import Range, numeric_ranges

NUMERIC: dict[str, Range] = numeric_ranges(NUMERIC_FEATURES)
CATEGORICAL: dict[str, tuple[str, ...]] = {
    name: tuple(vocabulary) for name, vocabulary in CATEGORICAL_FEATURES.items()
}
FEATURES: tuple[str, ...] = (*NUMERIC, *CATEGORICAL)
# A category is free text (an unseen value is scored, and left for the monitor to notice), but
# not a document: longer values are refused.
MAX_CATEGORY_LENGTH = 200

__all__ = ["CATEGORICAL", "FEATURES", "MAX_CATEGORY_LENGTH", "NUMERIC", "TARGET", "Range"]
