"""Render a Level 1 project and install it into a venv, as the benchmarks and a user would.

The venv takes torch's CPU build from the local wheel folder (UV_FIND_LINKS), held at the
project's pin; `uv sync` would install the default `cuda` group, PyPI's CUDA build, several GB.
"""

from __future__ import annotations

import os
import shlex
import shutil
import time
import tomllib
from pathlib import Path
from typing import Any

from common import COPIER, WHEELS, run

PROJECT_NAME = "Churn Prediction"
PYTHON = "3.11"


TEMPLATE_ROOT = Path(__file__).resolve().parent.parent


def render_command(dst: Path, src: Path = TEMPLATE_ROOT, **data: Any) -> list[str]:
    """`copier copy` of `src` (the template's working tree unless given) into `dst`."""
    answers = [arg for key, value in data.items() for arg in ("-d", f"{key}={value}")]
    return [
        COPIER,
        "copy",
        "--trust",
        "--defaults",
        "--quiet",
        "-d",
        f"project_name={PROJECT_NAME}",
        *answers,
        str(src),
        str(dst),
    ]


def render(dst: Path, **data: Any) -> list[str]:
    """Render the template's working tree into `dst` (replaced if present); returns the command."""
    shutil.rmtree(dst, ignore_errors=True)
    cmd = render_command(dst, **data)
    run(cmd)
    return cmd


def install(project: Path, env: Path, groups: tuple[str, ...] = ("dev",)) -> dict[str, Any]:
    """Create `env` and install the project with `groups`; returns commands and seconds."""
    shutil.rmtree(env, ignore_errors=True)
    variables = {"VIRTUAL_ENV": str(env), "UV_FIND_LINKS": WHEELS}
    create = ["uv", "venv", "--quiet", "--python", PYTHON, str(env)]
    # `--group dev` reads the pyproject.toml of the working directory. torch's pin is a uv
    # constraint there ([tool.uv] constraint-dependencies; its groups `cpu`/`cuda` are pinned to
    # indexes): given to `uv pip` as one, it makes uv take the CPU build from WHEELS.
    uv_settings = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["uv"]
    constraints = env / "constraints.txt"
    group_args = [arg for group in groups for arg in ("--group", group)]
    add = ["uv", "pip", "install", "--quiet", "-c", str(constraints), "-e", ".", *group_args]
    start = time.perf_counter()
    run(create)
    constraints.write_text("".join(f"{pin}\n" for pin in uv_settings["constraint-dependencies"]))
    run(add, cwd=project, env={**os.environ, **variables})
    seconds = time.perf_counter() - start
    assignments = " ".join(f"{key}={value}" for key, value in variables.items())
    return {
        "commands": [shlex.join(create), f"cd {project} && {assignments} {shlex.join(add)}"],
        "seconds": round(seconds, 1),
    }
