"""Fixtures of the template's own test suite (pytest + pytest-copier)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    TEMPLATE_PATHS,
    env_for,
    generated_repo,
    make,
    project_env,
    run,
)

# `make test` runs the suite on two workers (pytest-xdist, `--dist loadgroup`). Each file is one
# group, so its module and session fixtures (a rendered project, its environment) are made once on
# one worker; the files that share the Level 3 project below are one group together.
LEVEL3_FILES = frozenset({"test_level3.py", "test_platform.py", "test_image.py"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        name = item.path.name
        item.add_marker(pytest.mark.xdist_group("level3" if name in LEVEL3_FILES else name))


@pytest.fixture(scope="session")
def copier_template_paths() -> list[str]:
    """pytest-copier copies only these into its session template repo (tagged 99.99.99)."""
    return list(TEMPLATE_PATHS)


# --- one Level 3 project with a champion, shared by the LEVEL3_FILES ----------------------------


@pytest.fixture(scope="session")
def level3_project(copier_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_repo(
        copier_template,
        tmp_path_factory.mktemp("level3"),
        maturity_level=3,
        deploy_target="kubernetes",
    )


@pytest.fixture(scope="session")
def level3_venv(level3_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with project_env(level3_project, tmp_path_factory.mktemp("env3")) as env:
        yield env


@pytest.fixture(scope="session")
def level3_champion(level3_project: Path, level3_venv: Path) -> dict[str, Any]:
    """`make pipeline` then `make promote`, as the project's docs/serving.md says; the aliases."""
    make(level3_project, level3_venv, "pipeline", 900)
    promoted = make(level3_project, level3_venv, "promote", 300, "REASON=first model")
    assert "champion: (none) -> v1" in promoted
    shown = run(
        [level3_venv / "bin" / "churn-prediction-registry", "show", "--json"],
        level3_project,
        env=env_for(level3_venv),
    )
    aliases: dict[str, Any] = json.loads(shown.stdout.strip().splitlines()[-1])
    return aliases
