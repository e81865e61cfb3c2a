"""The LightningDataModule: raw file, fingerprint, seeded splits, preprocessing, loaders."""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, TensorDataset

from .dataset import CATEGORICAL_FEATURES, NUMERIC_FEATURES, TARGET, generate_dataset
from .preprocessing import Preprocessor


def split_frame(
    frame: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, pd.DataFrame]:
    """Shuffle rows with `seed` and cut them into disjoint train/val/test frames."""
    order = np.random.default_rng(seed).permutation(len(frame))
    n_test = round(len(frame) * test_fraction)
    n_val = round(len(frame) * val_fraction)
    parts = np.split(order, [n_test, n_test + n_val])
    return dict(zip(("test", "val", "train"), (frame.iloc[p] for p in parts), strict=True))


class TabularDataModule(LightningDataModule):
    """Serves the table that `dataset.generate_dataset` defines as preprocessed tensors.

    The raw CSV is written once (`prepare_data`) and then only read, so every run of a
    project trains on the same bytes; `fingerprint` identifies them in the tracking store.
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
    ) -> None:
        super().__init__()
        self.raw_path = Path(raw_path)
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
        """Width of the model input (one column per preprocessed feature)."""
        self.setup()
        return len(self.preprocessor.feature_names)

    @property
    def preprocessor(self) -> Preprocessor:
        if self._preprocessor is None:
            raise RuntimeError("Call setup() first: preprocessing is fitted on the train split.")
        return self._preprocessor

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the raw file: which exact data a run saw."""
        self.prepare_data()
        with self.raw_path.open("rb") as raw:
            return hashlib.file_digest(raw, "sha256").hexdigest()

    def prepare_data(self) -> None:
        if self.raw_path.exists():
            return
        self.raw_path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.raw_path.with_suffix(".partial")
        generate_dataset(self.n_rows, self.seed).to_csv(partial, index=False)
        partial.replace(self.raw_path)  # atomic: a crash never leaves a truncated raw file

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.prepare_data()
        frame = pd.read_csv(self.raw_path)
        self.frames = split_frame(frame, self.val_fraction, self.test_fraction, self.seed)
        self._preprocessor = Preprocessor.fit(
            self.frames["train"], NUMERIC_FEATURES, CATEGORICAL_FEATURES
        )
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
