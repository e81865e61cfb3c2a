"""Run: the generated Level 1 project, installed once into a shared prepared environment, passes
its own `make lint`, `make test` and `make train`; then the MLflow store the training wrote is
inspected, and the logged model is loaded back and predicts.

The environment is made with uv from the rendered pyproject.toml (dependencies + dev group, the
project itself editable). uv's own cache makes a repeated install take seconds; `UV_FIND_LINKS`
(taken from PIP_FIND_LINKS) lets uv take the local CPU build of torch instead of PyPI's CUDA one.
Never `uv sync` here: it would resolve torch from PyPI (several GB of CUDA wheels).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import (
    PACKAGE,
    PROBE,
    PYTHON,
    assert_validator_refuses_installed_modules,
    generated_repo,
    git,
    make,
    project_env,
    python_in,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def project(copier_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Level 1 tabular project."""
    return generated_repo(
        copier_template,
        tmp_path_factory.mktemp("level1"),
        maturity_level=1,
        model_family="tabular",
        python_version=PYTHON,
        torch_backend="pypi",  # the cpu backend points uv at download.pytorch.org
    )


@pytest.fixture(scope="session")
def prepared_env(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One virtual environment with what `make setup` installs, and the project itself."""
    with project_env(project, tmp_path_factory.mktemp("env")) as venv:
        yield venv


def stray_files(project: Path) -> list[str]:
    """Changes in the project that git would see: modified tracked files, untracked files that
    are not git-ignored."""
    return git(project, "status", "--porcelain", "--untracked-files=all").splitlines()


def store_state(project: Path) -> tuple[Any, ...]:
    """What the project's embedded MLflow store holds (runs and artifact files)."""
    db = project / "mlflow.db"
    runs: list[Any] = []
    if db.exists():
        with closing(sqlite3.connect(db)) as conn:
            runs = conn.execute("SELECT run_uuid, status FROM runs ORDER BY run_uuid").fetchall()
    artifacts = sorted(str(p) for p in (project / "mlartifacts").rglob("*"))
    return runs, artifacts


# --- the environment itself -------------------------------------------------------------------


def test_environment_has_the_cpu_torch_and_the_project(project: Path, prepared_env: Path) -> None:
    info = python_in(
        prepared_env,
        "-c",
        "import json, torch, importlib, sys;"
        f"pkg = importlib.import_module('{PACKAGE}');"
        "print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda,"
        " 'package': pkg.__file__, 'prefix': sys.prefix}))",
        cwd=project,
    )
    assert info["cuda"] is None, f"a CUDA build of torch was installed: {info['torch']}"
    assert Path(info["package"]).resolve().is_relative_to(project.resolve()), "not editable"
    assert Path(info["prefix"]) == prepared_env


def test_package_name_validator_knows_every_installed_module(
    project: Path, prepared_env: Path
) -> None:
    """A package named like any module the environment installs would shadow it: refused."""
    assert_validator_refuses_installed_modules(project, prepared_env)


# --- make lint / test / train -----------------------------------------------------------------


def test_make_lint(project: Path, prepared_env: Path) -> None:
    make(project, prepared_env, "lint", timeout=600)
    assert stray_files(project) == []


def test_make_test(project: Path, prepared_env: Path) -> None:
    """The project's own test suite passes, and does not write into the project's MLflow store.
    It executes the starter notebook too (tests/test_notebook.py, against a training run), the
    one run of the notebook in the template's suite."""
    before = store_state(project)
    out = make(project, prepared_env, "test", timeout=900)
    assert re.search(r"\d+ passed", out), out[-3000:]
    assert " failed" not in out
    assert store_state(project) == before, "make test wrote into the project's MLflow store"
    assert stray_files(project) == []


@pytest.fixture(scope="session")
def trained(project: Path, prepared_env: Path) -> dict[str, Any]:
    """`make train` with the default config, then a report of what the MLflow store holds."""
    assert not (project / "mlflow.db").exists() or store_state(project)[0] == []
    make(project, prepared_env, "train", timeout=900)
    return python_in(prepared_env, PROBE, "store", "sqlite:///mlflow.db", cwd=project)


def test_make_train_writes_only_ignored_outputs(project: Path, trained: dict[str, Any]) -> None:
    """Every output goes to Hydra's run dir or the (git-ignored) store: nothing lands elsewhere."""
    assert stray_files(project) == []
    assert (project / "mlflow.db").is_file()
    assert (project / "mlartifacts").is_dir()
    for stray in ("outputs", "multirun", "lightning_logs", "mlruns", "checkpoints", "wandb"):
        assert not (project / stray).exists(), f"{stray}/ written to the project root"


def artifact_dir(project: Path, uri: str) -> Path:
    """The local folder of an artifact URI (file://, absolute or relative to the project)."""
    path = Path(uri.removeprefix("file://"))
    return (path if path.is_absolute() else project / path).resolve()


def the_run(trained: dict[str, Any]) -> dict[str, Any]:
    assert len(trained["runs"]) == 1, [run["id"] for run in trained["runs"]]
    return trained["runs"][0]


def test_one_finished_run_in_the_store(project: Path, trained: dict[str, Any]) -> None:
    run_ = the_run(trained)
    assert run_["status"] == "FINISHED"
    experiment = next(e for e in trained["experiments"] if e["id"] == run_["experiment_id"])
    assert experiment["name"]
    # artifacts on local disk under the project, next to the sqlite store
    artifacts = artifact_dir(project, run_["artifact_uri"])
    assert artifacts.is_relative_to((project / "mlartifacts").resolve()), run_["artifact_uri"]
    assert artifacts.is_dir()


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(config, dict):
        out: dict[str, Any] = {}
        for key, value in config.items():
            out.update(flatten(value, f"{prefix}{key}/"))
        return out
    return {prefix.rstrip("/"): config}


def resolved_config(project: Path, run_: dict[str, Any]) -> dict[str, Any]:
    """The composed Hydra config the run logged as an artifact."""
    root = artifact_dir(project, run_["artifact_uri"])
    configs = [path for path in run_["artifacts"] if path.endswith((".yaml", ".yml"))]
    composed = [
        config
        for config in (yaml.safe_load((root / path).read_text()) for path in configs)
        if isinstance(config, dict) and {"data", "model", "trainer"} <= set(config)
    ]
    assert len(composed) == 1, f"one composed config artifact expected among {configs}"
    return composed[0]


def test_resolved_config_is_logged(project: Path, trained: dict[str, Any]) -> None:
    config = resolved_config(project, the_run(trained))
    text = yaml.safe_dump(config)
    assert "${" not in text, "interpolations left in the logged config"
    assert "???" not in text, "mandatory values left unset in the logged config"
    assert {"data", "model", "trainer", "logger", "callbacks", "paths", "seed"} <= set(config)


def test_run_params_are_the_resolved_config(project: Path, trained: dict[str, Any]) -> None:
    run_ = the_run(trained)
    leaves = flatten(resolved_config(project, run_))
    params = run_["params"]
    missing = sorted(key for key in leaves if key not in params)
    assert missing == [], "config values not logged as params"
    different = {
        key: (params[key], value) for key, value in leaves.items() if params[key] != str(value)
    }
    assert different == {}


def test_run_records_per_epoch_metric_history(trained: dict[str, Any]) -> None:
    run_ = the_run(trained)
    history = run_["history"]
    validation = sorted(key for key in history if key.startswith("val"))
    training = sorted(key for key in history if key.startswith("train"))
    assert validation, sorted(history)
    assert training, sorted(history)
    epochs = len(history["train/loss"])
    assert 1 < epochs <= int(run_["params"]["trainer/max_epochs"])
    for key in validation + training:
        steps = [step for step, *_ in history[key]]
        assert len(steps) == epochs, f"{key}: {len(steps)} values for {epochs} epochs"
        assert steps == sorted(set(steps)), f"{key}: one value per epoch expected, got {steps}"
    # one epoch's validation metrics go out together (one batch: one timestamp per step)
    for index in range(epochs):
        stamps = {history[key][index][2] for key in validation}
        steps = {history[key][index][0] for key in validation}
        assert len(steps) == 1
        assert len(stamps) == 1, f"validation metrics of epoch {index} logged one by one"
    assert [len(history[key]) for key in history if key.startswith("test")] != []


def test_run_records_the_git_commit(project: Path, trained: dict[str, Any]) -> None:
    tags = the_run(trained)["tags"]
    head = git(project, "rev-parse", "HEAD")
    assert tags["mlflow.source.git.commit"] == head
    assert tags["git.commit"] == head
    assert tags["git.dirty"] == "false"  # only git-ignored files changed since the commit


def test_run_records_the_data_fingerprint(trained: dict[str, Any]) -> None:
    """The fingerprint identifies the exact bytes the run trained on (sha256 of the raw file)."""
    run_ = the_run(trained)
    fingerprint = run_["params"]["data/fingerprint"]
    assert run_["tags"]["data.fingerprint"] == fingerprint
    raw = Path(run_["params"]["data/raw_path"])
    assert hashlib.sha256(raw.read_bytes()).hexdigest() == fingerprint


def test_run_logs_evaluation_plots(project: Path, trained: dict[str, Any]) -> None:
    run_ = the_run(trained)
    root = artifact_dir(project, run_["artifact_uri"])
    plots = [path for path in run_["artifacts"] if path.endswith(".png")]
    names = {Path(path).stem for path in plots}
    assert {"confusion_matrix", "roc_curve"} <= names, plots
    for path in plots:
        assert (root / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
        assert (root / path).stat().st_size > 5_000, f"{path} looks empty"


def the_model(trained: dict[str, Any]) -> dict[str, Any]:
    run_ = the_run(trained)
    models = [m for m in trained["logged_models"] if m["source_run_id"] == run_["id"]]
    assert len(models) == 1, trained["logged_models"]
    assert models[0]["status"].endswith("READY"), models[0]
    return models[0]


def assert_predicts_probabilities(result: dict[str, Any]) -> None:
    assert result["signature"] is not None
    assert result["signature"]["inputs"]
    assert result["example_rows"] >= 1
    prediction = result["prediction"]
    assert len(prediction) == result["example_rows"]
    assert all(0.0 <= float(p) <= 1.0 for p in prediction), prediction


def test_logged_model_loads_and_predicts(project: Path, prepared_env: Path, trained: dict) -> None:
    result = python_in(prepared_env, PROBE, "load", the_model(trained)["model_uri"], cwd=project)
    assert_predicts_probabilities(result)


def test_logged_model_loads_without_the_training_stack(
    project: Path, prepared_env: Path, trained: dict
) -> None:
    """The model loads where Lightning, Hydra and the project's package are not installed."""
    blocked = ["lightning", "pytorch_lightning", "lightning_fabric", "hydra", "omegaconf", PACKAGE]
    result = python_in(
        prepared_env,
        PROBE,
        "load",
        the_model(trained)["model_uri"],
        "--block",
        ",".join(blocked),
        cwd=project,
    )
    assert result["blocked_imported"] == []
    assert_predicts_probabilities(result)
