"""Export the trained network and log it as an MLflow pyfunc model.

The network is saved twice: as a torch.export program, which the pyfunc runs, and as ONNX with
the sigmoid included, which the Level 3 service and batch scoring run with onnxruntime (no torch
to import: a lean image and a quick start). tests/test_model.py checks that both agree.
The model also carries its drift baseline (models/baseline.py).
"""

from __future__ import annotations

import copy
import logging
import tempfile
import warnings
from importlib.metadata import version
from pathlib import Path

import mlflow
import torch
from mlflow.models import infer_signature
from mlflow.models.model import ModelInfo
from torch import nn

from ..data import preprocessing
from ..data.datamodule import TabularDataModule
from ..tracking.runs import Store
from . import baseline

PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
# Where pip finds CPU builds of torch (the `+cpu` local version is not on PyPI).
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def export_network(net: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """A CPU copy of `net` in eval mode, exported with a dynamic batch dimension."""
    network = copy.deepcopy(net).cpu().eval()
    batch = torch.export.Dim("batch")
    return torch.export.export(network, (example,), dynamic_shapes=({0: batch},))


class Probabilities(nn.Module):
    """The network followed by the sigmoid: features in, positive-class probabilities out."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.network(features))


def save_onnx(net: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Save `Probabilities(net)` as ONNX with a dynamic batch dimension."""
    program = export_network(Probabilities(net), example)
    # The exporter warns about every torchvision operator it cannot register: none is used.
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_program = torch.onnx.export(program, (example,), dynamo=True, verbose=False)
    finally:
        quiet.setLevel(level)
    assert onnx_program is not None
    onnx_program.save(str(path))


def pip_requirements() -> list[str]:
    """Exact versions of what the model imports; a CPU torch build stays a CPU build.

    Without the extra index, `torch==X` resolves to PyPI's CUDA wheels on Linux: gigabytes
    that an exported CPU program does not need.
    """
    torch_version = version("torch")
    requirements = [f"{name}=={version(name)}" for name in ("mlflow", "numpy", "pandas")]
    requirements.append(f"torch=={torch_version.split('+')[0]}")
    if torch_version.endswith("+cpu"):
        requirements.insert(0, f"--extra-index-url {TORCH_CPU_INDEX}")
    return requirements


def log_model(store: Store, run_id: str, net: nn.Module, datamodule: TabularDataModule) -> str:
    """Log `net` with its preprocessing to `run_id` as a pyfunc taking raw feature rows; the
    logged model's URI."""
    # The signature takes the raw file's column types; every input column is required, so
    # MLflow's hint that integer columns cannot carry missing values does not apply.
    example = datamodule.raw_rows("test", n=5)
    features = torch.from_numpy(datamodule.preprocessor.transform(example))
    program = export_network(net, features)
    with torch.inference_mode():
        probabilities = torch.sigmoid(program.module()(features)).numpy()

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer", UserWarning)
        signature = infer_signature(example, probabilities)

    with tempfile.TemporaryDirectory() as folder:
        network_path = Path(folder, "network.pt2")
        onnx_path = Path(folder, "network.onnx")
        preprocessing_path = Path(folder, "preprocessing.json")
        torch.export.save(program, network_path)
        save_onnx(net, features, onnx_path)
        datamodule.preprocessor.save(preprocessing_path)
        monitoring = _save_baseline(program, datamodule, Path(folder))
        with store.fluent(), mlflow.start_run(run_id=run_id):
            info: ModelInfo = mlflow.pyfunc.log_model(
                name="model",
                python_model=PYFUNC_CODE,
                artifacts={
                    "network": str(network_path),
                    "network_onnx": str(onnx_path),
                    "preprocessing": str(preprocessing_path),
                    **{name: str(path) for name, path in monitoring.items()},
                },
                code_paths=[preprocessing.__file__],
                signature=signature,
                input_example=example,
                pip_requirements=pip_requirements(),
            )
    return str(info.model_uri)


def _save_baseline(
    program: torch.export.ExportedProgram, datamodule: TabularDataModule, folder: Path
) -> dict[str, Path]:
    """The training rows drift monitoring compares live traffic with, scored by this model."""
    rows = datamodule.raw_rows("train", n=baseline.MAX_ROWS)
    features = torch.from_numpy(datamodule.preprocessor.transform(rows))
    with torch.inference_mode():
        probabilities = torch.sigmoid(program.module()(features)).numpy().reshape(-1)
    frame = baseline.reference(rows, probabilities)
    preprocessor = datamodule.preprocessor
    stats = baseline.profile(frame, preprocessor.numeric, preprocessor.categorical)
    return baseline.save(frame, stats, folder)
