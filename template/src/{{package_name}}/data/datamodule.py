"""The LightningDataModule: raw file, fingerprint, validation, seeded splits, preprocessing,
loaders."""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, TensorDataset

from .dataset import CATEGORICAL_FEATURES, NUMERIC_FEATURES, TARGET
from .preprocessing import Preprocessor
from .raw import read_table, require_file, write_table
from .schema import DataValidationError, Splits, validation_report


def split_frame(
    frame: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, pd.DataFrame]:
    """Shuffle rows with `seed` and cut them into disjoint train/val/test frames."""
    order = np.random.default_rng(seed).permutation(len(frame))
    sizes = Splits(val_fraction, test_fraction).sizes(len(frame))
    parts = np.split(order, [sizes["test"], sizes["test"] + sizes["val"]])
    return dict(zip(("test", "val", "train"), (frame.iloc[p] for p in parts), strict=True))


class TabularDataModule(LightningDataModule):
    """Serves the raw table as preprocessed tensors, after checking it against the schema.

    The table is the file `source` when set (the team's CSV or Parquet file, read as it is
    now); else what `dataset.generate_dataset` returns, written once to `raw_path`
    (`prepare_data`) and then only read, so every run trains on the same bytes until that file
    is deleted. `fingerprint` identifies the bytes in the tracking store. A table that breaks
    the schema, or has too few rows for the splits, raises `DataValidationError` in `setup`.
    """

    def __init__(
        self,
        raw_path: str | Path,
        n_rows: int = 10_000,
        seed: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        batch_size: int = 256,
        num_workers: int = 0,
        source: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.raw_path = Path(raw_path)
        self.source = Path(source) if source else None
        self.n_rows = n_rows
        self.seed = seed
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.frames: dict[str, pd.DataFrame] = {}
        self.datasets: dict[str, TensorDataset] = {}
        self._preprocessor: Preprocessor | None = None

    @property
    def n_features(self) -> int:
        """Width of the model input: one column per numeric feature and one per category of
        each categorical feature (fixed vocabularies, so no data needs reading)."""
        return len(NUMERIC_FEATURES) + sum(map(len, CATEGORICAL_FEATURES.values()))

    @property
    def preprocessor(self) -> Preprocessor:
        if self._preprocessor is None:
            raise RuntimeError("Call setup() first: preprocessing is fitted on the train split.")
        return self._preprocessor

    @property
    def data_path(self) -> Path:
        """The file this module reads: `source` when set, else the written `raw_path`."""
        return self.source or self.raw_path

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the data file: which exact data a run saw."""
        self.prepare_data()
        with self.data_path.open("rb") as raw:
            return hashlib.file_digest(raw, "sha256").hexdigest()

    def prepare_data(self) -> None:
        if self.source is not None:
            require_file(self.source)
        elif not self.raw_path.exists():
            write_table(self.raw_path, None, self.n_rows, self.seed)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.prepare_data()
        frame = read_table(self.data_path)
        # Before anything reads a column: bad data stops here with the report, not a KeyError.
        report = validation_report(frame, Splits(self.val_fraction, self.test_fraction))
        if not report["valid"]:
            raise DataValidationError.from_report(self.data_path, report)
        self.frames = split_frame(frame, self.val_fraction, self.test_fraction, self.seed)
        self._preprocessor = Preprocessor.fit(
            self.frames["train"], NUMERIC_FEATURES, CATEGORICAL_FEATURES
        )
        assert len(self._preprocessor.feature_names) == self.n_features
        self.datasets = {name: self._tensors(split) for name, split in self.frames.items()}

    def _tensors(self, frame: pd.DataFrame) -> TensorDataset:
        features = torch.from_numpy(self.preprocessor.transform(frame))
        targets = torch.from_numpy(frame[TARGET].to_numpy(dtype=np.float32))
        return TensorDataset(features, targets)

    def raw_rows(self, split: str = "test", n: int = 5) -> pd.DataFrame:
        """The first `n` raw rows of a split, input columns only (what a model consumer sends)."""
        self.setup()
        return self.frames[split][self.preprocessor.input_columns].head(n).reset_index(drop=True)

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader[tuple[torch.Tensor, ...]]:
        self.setup()
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        return self._loader("test")
