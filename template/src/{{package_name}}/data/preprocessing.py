"""Feature preprocessing: fitted on the training split, saved as JSON, applied to raw rows.

This module imports nothing but numpy and pandas on purpose: the logged MLflow model ships
it as code next to `models/pyfunc_model.py`, so serving applies exactly the transform that
training used without this package (or Lightning) installed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# Up to this many rows of plain values (a request to the service), transform computes with
# Python floats: numpy's fixed cost per call is most of the time of a few rows.
FEW_ROWS = 8
BIG = 1e300  # beyond this a number takes the array path (where overflow has numpy's meaning)


@dataclass(frozen=True)
class Preprocessor:
    """Standardises numeric columns and one-hot encodes categorical ones.

    Missing or unparsable numbers become the training mean (0 after scaling); a category
    outside the vocabulary encodes as all zeros, so serving never fails on a new value.
    """

    numeric: Mapping[str, tuple[float, float]]  # column -> (mean, standard deviation)
    categorical: Mapping[str, tuple[str, ...]]  # column -> vocabulary

    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        numeric: Iterable[str],
        categorical: Mapping[str, Iterable[str]],
    ) -> Preprocessor:
        scales = {}
        for column in numeric:
            values = pd.to_numeric(frame[column], errors="coerce")
            std = float(values.std(ddof=0))
            scales[column] = (float(values.mean()), std if std > 0 else 1.0)
        return cls(scales, {column: tuple(vocab) for column, vocab in categorical.items()})

    @property
    def feature_names(self) -> list[str]:
        one_hot = [
            f"{column}={value}" for column, vocab in self.categorical.items() for value in vocab
        ]
        return [*self.numeric, *one_hot]

    @property
    def input_columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @cached_property
    def _scales(self) -> tuple[np.ndarray, np.ndarray]:
        """Means and standard deviations as arrays, made once (transform runs per request)."""
        mean, std = zip(*self.numeric.values(), strict=True) if self.numeric else ((), ())
        return np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)

    @cached_property
    def _vocabularies(self) -> list[np.ndarray]:
        return [np.asarray(vocab, dtype=object)[None, :] for vocab in self.categorical.values()]

    @cached_property
    def _one_hot_positions(self) -> list[dict[str, int]]:
        """Per categorical column, each known value's column in the feature matrix."""
        start, positions = len(self.numeric), []
        for vocab in self.categorical.values():
            positions.append({value: start + index for index, value in enumerate(vocab)})
            start += len(vocab)
        return positions

    def transform(self, columns: Mapping[str, Any]) -> np.ndarray:
        """Raw rows -> float32 matrix of `feature_names`.

        `columns` maps each of `input_columns` to its values: a DataFrame (training, batch
        scoring) or a dict of lists (the service's validated rows: building a DataFrame per
        request would cost more than the network).
        """
        few = self._transform_few(columns) if isinstance(columns, dict) else None
        if few is not None:
            return few
        mean, std = self._scales
        raw = np.column_stack([numbers(columns[column]) for column in self.numeric])
        blocks = [np.nan_to_num((raw - mean) / std, nan=0.0)]
        for column, vocab in zip(self.categorical, self._vocabularies, strict=True):
            blocks.append(np.asarray(columns[column], dtype=object)[:, None] == vocab)
        return np.hstack(blocks).astype(np.float32)

    def _transform_few(self, columns: dict[str, list[Any]]) -> np.ndarray | None:
        """What `transform` computes, bit for bit, for a few rows of finite numbers and strings;
        None for anything else (more rows, missing or odd values), which takes the array path."""
        numeric = [columns[column] for column in self.numeric]
        categorical = [columns[column] for column in self.categorical]
        size = len((numeric or categorical or [[]])[0])
        if size > FEW_ROWS:
            return None
        width = len(self.numeric) + sum(map(len, self.categorical.values()))
        matrix = []
        for row in range(size):
            features = [0.0] * width
            for index, (values, (mean, std)) in enumerate(
                zip(numeric, self.numeric.values(), strict=True)
            ):
                value = values[row]
                if type(value) not in (int, float) or not -BIG < value < BIG:
                    return None
                features[index] = scaled = (value - mean) / std
                if not math.isfinite(scaled):
                    return None
            for values, positions in zip(categorical, self._one_hot_positions, strict=True):
                value = values[row]
                if type(value) is not str:
                    return None
                position = positions.get(value)
                if position is not None:
                    features[position] = 1.0
            matrix.append(features)
        return np.array(matrix, dtype=np.float32).reshape(size, width)

    def to_json(self) -> str:
        return json.dumps(
            {"numeric": dict(self.numeric), "categorical": dict(self.categorical)}, indent=2
        )

    @classmethod
    def from_json(cls, text: str) -> Preprocessor:
        state = json.loads(text)
        return cls(
            {column: (float(m), float(s)) for column, (m, s) in state["numeric"].items()},
            {column: tuple(vocab) for column, vocab in state["categorical"].items()},
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Preprocessor:
        return cls.from_json(Path(path).read_text())


def numbers(values: Any) -> np.ndarray:
    """`values` as float64; what is not a number (text in a CSV column) becomes NaN."""
    array = np.asarray(values)
    if array.dtype.kind in "biuf":
        return array.astype(np.float64, copy=False)
    parsed: np.ndarray = pd.to_numeric(pd.Series(array), errors="coerce").to_numpy(np.float64)
    return parsed
