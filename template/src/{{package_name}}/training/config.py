"""Find the project's `configs/` folder and compose Hydra configs the way training does."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from ..errors import ProjectError
from ..tracking.store import artifact_location

ROOT_ENV = "PROJECT_ROOT"
CONFIG_FOLDER = "configs"
ROOT_MARKERS = ("pyproject.toml", f"{CONFIG_FOLDER}/train.yaml")


class ProjectRootError(ProjectError, FileNotFoundError):
    """A command ran outside a project (and without $PROJECT_ROOT)."""


def _is_root(folder: Path) -> bool:
    return all((folder / marker).is_file() for marker in ROOT_MARKERS)


def project_root() -> Path:
    """$PROJECT_ROOT if set; else the nearest folder above the current directory, or above
    this package (an editable install run from elsewhere), that holds pyproject.toml and
    configs/train.yaml. Every default path (data, logs, MLflow store) hangs off this folder.
    """
    if env := os.environ.get(ROOT_ENV):
        return Path(env).expanduser().resolve()
    for start in (Path.cwd().resolve(), Path(__file__).resolve().parent):
        for folder in (start, *start.parents):
            if _is_root(folder):
                return folder
    raise ProjectRootError(
        f"No project root (a folder with pyproject.toml and {CONFIG_FOLDER}/train.yaml) above "
        f"{Path.cwd()}. Run from inside the project or set {ROOT_ENV}."
    )


def config_dir() -> Path:
    return project_root() / CONFIG_FOLDER


def register_resolvers() -> None:
    """Resolvers the config tree uses; idempotent."""
    OmegaConf.register_new_resolver("project_root", lambda: str(project_root()), replace=True)
    OmegaConf.register_new_resolver("mlflow_artifact_location", artifact_location, replace=True)


def compose_config(
    overrides: Sequence[str] = (), config_name: str = "train", return_hydra_config: bool = False
) -> DictConfig:
    """The config training would see with these command-line overrides (for tests, notebooks).

    Outside a Hydra run `${hydra:...}` does not resolve: override `paths.output_dir`
    before resolving anything that writes outputs.
    """
    register_resolvers()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name, list(overrides), return_hydra_config=return_hydra_config)
