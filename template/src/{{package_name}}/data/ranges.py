"""The valid values of a numeric feature: one rule that the data schema, the service, batch
scoring and the monitor all apply, so a value one of them refuses is refused by all.

The team sets each feature's `Range` beside the feature in dataset.py. Whatever the range,
a value must be a finite number that float32 holds: the model computes in float32, and a
larger value would come back as a NaN probability.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Range:
    """Inclusive limits (None: only float32's on that side); `integer` allows whole numbers only."""

    low: float | None = None
    high: float | None = None
    integer: bool = False

    def __post_init__(self) -> None:
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"a range's low ({self.low}) is above its high ({self.high})")

    @property
    def lowest(self) -> float:
        return -FLOAT32_MAX if self.low is None else max(self.low, -FLOAT32_MAX)

    @property
    def highest(self) -> float:
        return FLOAT32_MAX if self.high is None else min(self.high, FLOAT32_MAX)

    @property
    def example(self) -> float:
        """A valid value: 0 where the range holds it, else its nearest limit."""
        return min(max(0, self.lowest), self.highest)

    def __str__(self) -> str:
        low = "no minimum" if self.low is None else f"{self.low:g}"
        high = "no maximum" if self.high is None else f"{self.high:g}"
        return f"{low} to {high}{', whole numbers' if self.integer else ''}"

    def invalid(self, values: np.ndarray) -> np.ndarray:
        """Per value (float64), whether it breaks the range: NaN, infinite, outside, not whole."""
        with np.errstate(invalid="ignore"):
            bad = ~((values >= self.lowest) & (values <= self.highest))
            if self.integer:
                bad |= np.mod(values, 1) != 0
        return np.asarray(bad | np.isnan(values))

    def problem(self, value: float) -> str | None:
        """Why `value` breaks the range, in words; None when it is valid."""
        if bool(self.invalid(np.asarray([value], dtype=np.float64))[0]):
            return f"{shorten(value)} is outside the valid range ({self})"
        return None


def numeric_ranges(declared: Mapping[str, Range] | Iterable[str]) -> dict[str, Range]:
    """dataset.py's `NUMERIC_FEATURES` as name -> Range. A project generated before ranges were
    part of the contract lists bare names: those get float32's limits only."""
    if isinstance(declared, Mapping):
        return {str(name): value for name, value in declared.items()}
    return {str(name): Range() for name in declared}


def shorten(value: object, limit: int = 40) -> str:
    """`value` as a short text for a message: an error never repeats a megabyte it was sent."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return clip(repr(value), limit)


def clip(text: str, limit: int = 40) -> str:
    """`text`, cut to about `limit` characters with its length said when it was longer."""
    return text if len(text) <= limit else f"{text[: limit - 15]}... ({len(text):,} chars)"
