"""The served model: resolved in the registry, downloaded once, loaded without MLflow's pyfunc.

A logged model (models/export.py) holds the network exported as ONNX and the fitted
preprocessing as artifacts; the service and batch scoring read those two files directly, so
scoring needs onnxruntime, numpy and pandas: no torch, Lightning, Hydra or pyfunc wrapper. The
pyfunc (models/pyfunc_model.py, torch) computes the same numbers: tests/test_serving.py checks it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import onnxruntime as ort
import yaml

from ..data.preprocessing import Preprocessor
from ..data.ranges import clip
from ..errors import ProjectError

MODELS_SCHEME = "models:/"
RUNS_SCHEME = "runs:/"
# Written next to a downloaded model: which registry version the directory holds.
REGISTERED_FILE = "registered-model.json"
COMPLETE_MARKER = ".complete"
# Names (aliases, versions, models) a message lists at most.
LISTED = 5
# The module MLflow imports to read each storage scheme, and the package that has it.
STORAGE_CLIENTS = {
    "s3": ("boto3", "boto3"),
    "r2": ("boto3", "boto3"),
    "b2": ("boto3", "boto3"),
    "gs": ("google.cloud.storage", "google-cloud-storage"),
    "wasbs": ("azure.storage.blob", "azure-storage-blob"),
    "abfss": ("azure.storage.filedatalake", "azure-storage-file-datalake"),
    "sftp": ("pysftp", "pysftp"),
}


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
            client = _client(tracking_uri)
            try:
                version = str(client.get_model_version_by_alias(name, alias).version)
            except Exception as error:  # MlflowException, or the server is unreachable
                raise ModelLoadError(
                    _registry_problem(client, uri, tracking_uri, error, name, alias=alias)
                ) from error
        return ModelRef(f"{MODELS_SCHEME}{name}/{version}", name, version, alias)
    local = _local_folder(uri)
    if local is None:
        return ModelRef(uri)
    registered = local / REGISTERED_FILE
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
        raise ModelLoadError(
            f"{_short(uri)} names no version: use models:/NAME/VERSION or NAME@ALIAS"
        )
    return name, None, version


def _local_folder(uri: str) -> Path | None:
    """The folder that a plain path or a file:// URI names, which must exist; None for a URI
    of any other scheme (models:/, runs:/, s3://, ...)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        folder = Path(url2pathname(parsed.path))
    elif len(parsed.scheme) <= 1:  # none, or a Windows drive letter
        folder = Path(uri)
    else:
        return None
    if folder.is_dir():
        return folder
    relative = "" if folder.is_absolute() else f" (relative to {Path.cwd()})"
    problem = " is a file, not a model folder" if folder.exists() else ": no such folder"
    raise ModelLoadError(f"{_short(uri)}{problem}{relative}")


def _reason(error: BaseException) -> str:
    """An error's message on one line, shortened. MLflow's download errors span lines: a
    heading that ends with a colon, then per file a banner and what failed."""
    lines = [line.strip() for line in str(error).splitlines()]
    text = ""
    for line in (line for line in lines if line and not line.startswith("#####")):
        text += f"{' ' if text.endswith(':') else '; '}{line}" if text else line
    return _short(text or type(error).__name__)


def _short(text: str) -> str:
    """`text` cut for a message: a URI or an error can be any length."""
    return clip(text, 200)


def _listed(items: list[str]) -> str:
    """At most LISTED of `items`, each shortened; an ellipsis says there are more."""
    shown = [clip(item, 60) for item in items[:LISTED]]
    return ", ".join(shown + (["..."] if len(items) > LISTED else []))


def _where(tracking_uri: str) -> str:
    """The registry for a message, without a password it may hold."""
    parsed = urlparse(tracking_uri)
    if parsed.password is None:
        return clip(tracking_uri, 120)
    return clip(parsed._replace(netloc=parsed.netloc.rpartition("@")[2]).geturl(), 120)


def _missing(error: BaseException) -> bool:
    """Whether the registry answered that something does not exist (a missing alias is an
    invalid parameter to it), as opposed to not answering at all."""
    return getattr(error, "error_code", None) in (
        "RESOURCE_DOES_NOT_EXIST",
        "INVALID_PARAMETER_VALUE",
    )


def _registry_problem(
    client: Any,
    uri: str,
    tracking_uri: str,
    error: BaseException,
    name: str,
    alias: str | None = None,
    version: str | None = None,
) -> str:
    """Why a lookup of `uri` failed. Where the registry answered that something is missing,
    it is asked which: the model (naming those it has), the alias (naming the aliases) or the
    version (naming the latest ones). An unreachable registry is not asked again."""
    where = _where(tracking_uri)
    unclear = f"cannot resolve {_short(uri)} in {where}: {_reason(error)}"
    if not _missing(error):
        return unclear
    model_name = clip(name, 100)
    try:
        try:
            model = client.get_registered_model(name)
        except Exception as lookup:
            if not _missing(lookup):
                return unclear
            found = client.search_registered_models(max_results=LISTED + 1)
            names = _listed([each.name for each in found]) or "none: make pipeline registers one"
            return f"{_short(uri)}: no registered model {model_name!r} in {where} (it has {names})"
        if alias is not None and alias not in model.aliases:
            aliases = _listed([f"{key} (v{value})" for key, value in sorted(model.aliases.items())])
            there = f"its aliases: {aliases}" if aliases else "it has none: make promote sets one"
            return f"{_short(uri)}: {model_name} has no alias {clip(alias, 100)!r} ({there})"
        if version is not None:
            latest = client.search_model_versions(
                f"name = '{name}'", max_results=LISTED, order_by=["version_number DESC"]
            )
            numbers = ", ".join(str(found.version) for found in latest)
            there = f"the latest: {numbers}" if numbers else "it has none"
            return f"{_short(uri)}: {model_name} has no version {version} ({there})"
    except Exception:  # the registry stopped answering: what the first lookup said will do
        return unclear
    return unclear


def _storage_client(uri: str, location: str) -> None:
    """Refuse to download `uri` from a `location` whose storage needs a client package that is
    not installed, naming the package (MLflow would fail on some module the package pulls in)."""
    scheme = urlparse(location).scheme
    if scheme not in STORAGE_CLIENTS:
        return
    module, package = STORAGE_CLIENTS[scheme]
    try:
        importlib.import_module(module)
    except ImportError as error:
        stored = "" if location == uri else f" (its files: {_short(location)})"
        raise ModelLoadError(
            f"{_short(uri)}{stored}: {scheme}:// storage needs the package {package}, which is "
            f"missing here ({_reason(error)}); install it: uv add --group serve {package}"
        ) from None


def _run_artifacts(uri: str, tracking_uri: str) -> str:
    """Where the files of the run that a runs:/ URI names are."""
    run_id = uri.removeprefix(RUNS_SCHEME).lstrip("/").split("/", 1)[0]
    try:
        return str(_client(tracking_uri).get_run(run_id).info.artifact_uri)
    except Exception as error:  # MlflowException, or the server is unreachable
        if _missing(error):
            message = f"{_short(uri)}: no run {clip(run_id, 64)!r} in {_where(tracking_uri)}"
        else:
            message = f"cannot look up {_short(uri)} in {_where(tracking_uri)}: {_reason(error)}"
        raise ModelLoadError(message) from error


def fetch(ref: ModelRef, tracking_uri: str, cache_dir: Path) -> Path:
    """A local directory holding the model of `ref`; registry versions are downloaded once
    into `cache_dir` (a version never changes)."""
    local = _local_folder(ref.uri)
    if local is not None:
        return local
    source = ref.uri
    target = None
    if ref.name is not None and ref.version is not None:
        client = _client(tracking_uri)
        try:
            # Where the version's files are, asked of this registry: a models:/ URI would be
            # looked up in whichever registry MLflow's process-wide settings name.
            source = client.get_model_version_download_uri(ref.name, ref.version)
        except Exception as error:  # MlflowException, or the server is unreachable
            raise ModelLoadError(
                _registry_problem(
                    client, ref.uri, tracking_uri, error, ref.name, version=ref.version
                )
            ) from error
        # Keyed by where the files are too: a registry made afresh numbers versions from 1 again.
        key = hashlib.sha256(f"{tracking_uri} {source}".encode()).hexdigest()[:16]
        target = cache_dir / ref.name / f"{ref.version}-{key}"
        if (target / COMPLETE_MARKER).exists():
            return target
    if source != ref.uri:
        try:
            _local_folder(source)  # a version's files on this machine (a deleted mlruns/)
        except ModelLoadError as error:
            raise ModelLoadError(f"the files of {_short(ref.uri)} are gone: {error}") from None
    stored = _run_artifacts(source, tracking_uri) if source.startswith(RUNS_SCHEME) else source
    _storage_client(ref.uri, stored)
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
        where = "" if source == ref.uri else f" from {_short(source)}"
        raise ModelLoadError(
            f"cannot download {_short(ref.uri)}{where}: {_reason(error)}"
        ) from error
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
                f"{_reason(error)}"
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
