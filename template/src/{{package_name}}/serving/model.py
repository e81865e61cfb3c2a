"""The served model: resolved in the registry, downloaded once, loaded without MLflow's pyfunc.

A logged model (models/export.py) holds the network exported as ONNX and the fitted
preprocessing as artifacts; the service and batch scoring read those two files directly, so
scoring needs onnxruntime, numpy and pandas: no torch, Lightning, Hydra or pyfunc wrapper. The
pyfunc (models/pyfunc_model.py, torch) computes the same numbers: tests/test_serving.py checks it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import yaml

from ..data.preprocessing import Preprocessor
from ..errors import ProjectError

MODELS_SCHEME = "models:/"
# Written next to a downloaded model: which registry version the directory holds.
REGISTERED_FILE = "registered-model.json"
COMPLETE_MARKER = ".complete"


class ModelLoadError(ProjectError, RuntimeError):
    """The model cannot be resolved, fetched or read; the message says which and why."""


@dataclass(frozen=True)
class ModelRef:
    """Which model: its registry name, version and alias where it has them, and the URI that
    names exactly this version."""

    uri: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None

    def info(self) -> dict[str, str | None]:
        return {"name": self.name, "version": self.version, "alias": self.alias}


def _client(tracking_uri: str) -> Any:
    from mlflow import MlflowClient  # imported when needed: a baked model needs no MLflow

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def resolve(uri: str, tracking_uri: str) -> ModelRef:
    """The version `uri` names now: an alias is looked up in the registry; a model directory
    reports what `registered-model.json` says."""
    if uri.startswith(MODELS_SCHEME):
        name, alias, version = _parse_models_uri(uri)
        if alias is not None:
            try:
                version = str(_client(tracking_uri).get_model_version_by_alias(name, alias).version)
            except Exception as error:  # MlflowException, or the server is unreachable
                raise ModelLoadError(
                    f"cannot resolve {uri} in {tracking_uri}: {_first_line(error)}"
                ) from error
        return ModelRef(f"{MODELS_SCHEME}{name}/{version}", name, version, alias)
    registered = Path(uri) / REGISTERED_FILE
    if registered.is_file():
        recorded = json.loads(registered.read_text())
        return ModelRef(uri, recorded["name"], recorded["version"], recorded["alias"])
    return ModelRef(uri)


def _parse_models_uri(uri: str) -> tuple[str, str | None, str | None]:
    rest = uri.removeprefix(MODELS_SCHEME)
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return name, alias, None
    name, _, version = rest.rpartition("/")
    if not name or not version.isdigit():
        raise ModelLoadError(f"{uri} names no version: use models:/NAME/VERSION or NAME@ALIAS")
    return name, None, version


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def fetch(ref: ModelRef, tracking_uri: str, cache_dir: Path) -> Path:
    """A local directory holding the model of `ref`; registry versions are downloaded once
    into `cache_dir` (a version never changes)."""
    local = Path(ref.uri)
    if local.is_dir():
        return local
    source = ref.uri
    target = None
    if ref.name is not None and ref.version is not None:
        try:
            # Where the version's files are, asked of this registry: a models:/ URI would be
            # looked up in whichever registry MLflow's process-wide settings name.
            client = _client(tracking_uri)
            source = client.get_model_version_download_uri(ref.name, ref.version)
        except Exception as error:  # MlflowException, or the server is unreachable
            raise ModelLoadError(
                f"cannot find the files of {ref.uri}: {_first_line(error)}"
            ) from error
        # Keyed by where the files are too: a registry made afresh numbers versions from 1 again.
        key = hashlib.sha256(f"{tracking_uri} {source}".encode()).hexdigest()[:16]
        target = cache_dir / ref.name / f"{ref.version}-{key}"
        if (target / COMPLETE_MARKER).exists():
            return target
    target = target or Path(tempfile.mkdtemp(prefix="model-", dir=_made(cache_dir)))
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=_made(cache_dir)))
    try:
        import mlflow

        downloaded = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=str(staging), tracking_uri=tracking_uri
            )
        )
        (downloaded / COMPLETE_MARKER).touch()
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        downloaded.rename(target)
    except Exception as error:
        raise ModelLoadError(f"cannot download {ref.uri}: {_first_line(error)}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _made(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ModelLoadError(f"cannot create the model cache {folder}: {error}") from error
    return folder


def artifact_paths(directory: Path) -> dict[str, Path]:
    """Where each artifact of the pyfunc model in `directory` is (models/export.py names them)."""
    mlmodel = yaml.safe_load((directory / "MLmodel").read_text())
    artifacts = mlmodel.get("flavors", {}).get("python_function", {}).get("artifacts", {})
    return {name: directory / entry["path"] for name, entry in artifacts.items()}


@dataclass
class LoadedModel:
    """A model ready to score: the preprocessing and the exported network of one version."""

    ref: ModelRef
    preprocessor: Preprocessor
    session: ort.InferenceSession
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def from_directory(cls, ref: ModelRef, directory: Path, threads: int = 1) -> LoadedModel:
        """Read an MLflow model directory logged by models/export.py; `threads` per call."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            artifacts = artifact_paths(directory)
            preprocessor = Preprocessor.load(artifacts["preprocessing"])
            if "network_onnx" not in artifacts:
                raise ModelLoadError(
                    f"{ref.uri} has no ONNX network (it was logged before the project served "
                    "models): train and register it again (`make pipeline`)"
                )
            network = artifacts["network_onnx"]
            session = ort.InferenceSession(network, options, providers=["CPUExecutionProvider"])
        except ModelLoadError:
            raise
        except Exception as error:  # a missing file, a foreign model, a corrupt ONNX graph
            raise ModelLoadError(
                f"{ref.uri} is not a model this service can read (models/export.py logs one): "
                f"{_first_line(error)}"
            ) from error
        return cls(ref, preprocessor, session)

    @cached_property
    def input_name(self) -> str:
        return str(self.session.get_inputs()[0].name)

    def check_features(self, features: tuple[str, ...]) -> None:
        """The model must read exactly the features the API accepts (data/dataset.py)."""
        if sorted(self.preprocessor.input_columns) != sorted(features):
            raise ModelLoadError(
                f"{self.ref.uri} reads features {self.preprocessor.input_columns}, but this "
                f"service accepts {list(features)}: serve a model trained on this code"
            )

    def predict(self, columns: Any) -> np.ndarray:
        """Positive-class probabilities of raw rows (a DataFrame or a dict of lists)."""
        features = self.preprocessor.transform(columns)
        (probabilities,) = self.session.run(None, {self.input_name: features})
        return np.asarray(probabilities, dtype=np.float64).reshape(-1)

    def describe(self) -> dict[str, Any]:
        return {**self.ref.info(), "uri": self.ref.uri, "loaded_at": self.loaded_at.isoformat()}


def load(uri: str, tracking_uri: str, cache_dir: Path, threads: int = 1) -> LoadedModel:
    """Resolve, fetch and read the model that `uri` names now."""
    ref = resolve(uri, tracking_uri)
    return LoadedModel.from_directory(ref, fetch(ref, tracking_uri, cache_dir), threads)


def download(uri: str, tracking_uri: str, output: Path) -> ModelRef:
    """Copy the model `uri` names into `output` with `registered-model.json`, for serving
    without a registry (an image with the model baked in)."""
    ref = resolve(uri, tracking_uri)
    with tempfile.TemporaryDirectory() as cache:
        source = fetch(ref, tracking_uri, Path(cache))
        LoadedModel.from_directory(ref, source)  # refuse to bake what the service cannot read
        if output.exists():
            shutil.rmtree(output)
        shutil.copytree(source, output, ignore=shutil.ignore_patterns(COMPLETE_MARKER))
    recorded = {**ref.info(), "source": ref.uri}
    (output / REGISTERED_FILE).write_text(json.dumps(recorded, indent=2) + "\n")
    return ref
