"""Shared helpers of the template's own tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import copier
import pytest
import yaml
from torch_index import torch_index  # tools/, on pytest's pythonpath

ROOT = Path(__file__).resolve().parent.parent

# What makes up the template: everything copier needs to render a project, nothing else.
TEMPLATE_PATHS = ("copier.yml", "template", "extensions")

# The tools this environment pins (ruff, check-jsonschema, zizmor, copier) live next to its python.
TOOLS_BIN = Path(sysconfig.get_path("scripts"))

# Explicit answers for every render in the tests; each test overrides what it is about.
BASE_ANSWERS: dict[str, Any] = {
    "project_name": "Churn Prediction",
    "description": "Predict customer churn from tabular features.",
    "author_name": "Test Team",
    "author_email": "test-team@example.org",
}
PACKAGE = "churn_prediction"  # the package name BASE_ANSWERS derive
# One row a generated churn project's service scores (data/dataset.py's features).
SAMPLE_ROW: dict[str, Any] = {
    "age": 42,
    "tenure_months": 5,
    "monthly_charges": 70.5,
    "total_charges": 352.5,
    "support_calls": 2,
    "num_products": 1,
    "contract": "month_to_month",
    "payment_method": "electronic_check",
    "internet_service": "fiber_optic",
    "paperless_billing": "yes",
}


def registry_show(
    name: str, champion: str | None, challenger: str | None = None, previous: str | None = None
) -> dict[str, str | None]:
    """What `<project>-registry show --json` prints: the model's name and the version number
    (a string) each alias holds, null where unset. test_workflows_l3.py's `uv` stand-in answers
    with it; test_level3.py checks that the real command's output is exactly such a dict."""
    return {"name": name, "champion": champion, "challenger": challenger, "previous": previous}


def copier_config() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "copier.yml").read_text())


def question_choices(name: str) -> list[Any]:
    """The values of a question's choices, as copier.yml lists them (validators not applied)."""
    choices = copier_config()[name]["choices"]
    if isinstance(choices, list):
        return list(choices)
    return [spec["value"] if isinstance(spec, dict) else spec for spec in choices.values()]


def render(
    template: Path | str,
    dst: Path,
    *,
    vcs_ref: str | None = None,
    pretend: bool = False,
    **answers: Any,
) -> Path:
    """Render the template with BASE_ANSWERS overridden by `answers`; defaults for the rest."""
    copier.run_copy(
        str(template),
        dst,
        data={**BASE_ANSWERS, **answers},
        defaults=True,
        unsafe=True,
        quiet=True,
        vcs_ref=vcs_ref,
        pretend=pretend,
    )
    return dst


def run(
    cmd: Sequence[str | os.PathLike[str]],
    cwd: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure the assertion message carries its full output."""
    proc = subprocess.run(
        [str(part) for part in cmd],
        cwd=cwd,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"`{' '.join(map(str, cmd))}` exited with {proc.returncode} in {cwd}\n"
            f"--- stdout ---\n{proc.stdout[-20000:]}\n--- stderr ---\n{proc.stderr[-20000:]}"
        )
    return proc


def tool(name: str) -> str:
    """Path of a tool installed in the template's own environment."""
    path = TOOLS_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed in {TOOLS_BIN} nor on PATH")
    return found


def run_step(
    script: str, cwd: Path, env: Mapping[str, str], tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run a workflow's `run:` block as a runner does (bash --noprofile --norc -eo pipefail, a
    fresh GITHUB_OUTPUT file, RUNNER_TEMP); the process and the outputs the step wrote."""
    output = tmp_path / "github_output"
    output.write_text("")
    path = tmp_path / "step.sh"
    path.write_text(script)
    full_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_OUTPUT": str(output),
        **env,
    }
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return proc, outputs


def require_tool(name: str, package: str, *, search: Sequence[str] = ()) -> str:
    """Path of a system tool the suite drives, from Debian's `package` (tools/system-deps.sh
    installs every such package: `make system-deps` as root, which `make test` runs first).
    `search` globs are looked in before PATH (PostgreSQL keeps its servers off PATH). A tool
    that is missing skips the test, naming its package; in CI (`CI` set: .ci/run installs them
    all as root) it fails instead, so that a broken install cannot pass as skipped tests."""
    candidates = [found for pattern in search for found in sorted(glob.glob(pattern))]
    found = candidates[-1] if candidates else shutil.which(name)
    if found is not None:
        return found
    message = (
        f"{name} is not installed (Debian package {package}; "
        "`make system-deps` run as root installs it)"
    )
    if os.environ.get("CI"):
        pytest.fail(f"{message}, and CI installs every system package first")
    pytest.skip(message)


def git(cwd: Path, *args: str) -> str:
    return run(["git", *args], cwd).stdout.strip()


def git_commit_all(cwd: Path, message: str) -> str:
    """Stage everything, commit, and return the new HEAD commit."""
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "--no-verify", "-m", message)
    return git(cwd, "rev-parse", "HEAD")


def init_repo(dst: Path, message: str) -> Path:
    """Make `dst` a git repository whose first commit holds everything in it."""
    git(dst, "init", "-q")
    git_commit_all(dst, message)
    return dst


def generated_repo(template: Path | str, folder: Path, **answers: Any) -> Path:
    """A project rendered into `folder`/churn-prediction, a git repository with its first commit
    (for the git tags)."""
    project = render(template, folder / "churn-prediction", **answers)
    return init_repo(project, "Generate from mlops-golden-path")


@contextmanager
def project_env(project: Path, folder: Path) -> Iterator[Path]:
    """`prepare_env` in `folder`/venv, removed afterwards (a few GB with torch)."""
    venv = prepare_env(project, folder / "venv")
    try:
        yield venv
    finally:
        shutil.rmtree(venv, ignore_errors=True)


def make_template_repo(dst: Path, tag: str | None = None) -> Path:
    """Copy the template's own paths into a fresh git repository at `dst`, commit and tag it."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in TEMPLATE_PATHS:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(
                src,
                dst / name,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        else:
            shutil.copy2(src, dst / name)
    init_repo(dst, "Template")
    if tag:
        git(dst, "tag", tag)
    return dst


def project_files(root: Path) -> list[str]:
    """Every file below `root` (relative POSIX paths, sorted), .git excluded."""
    return sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if (path.is_file() or path.is_symlink()) and ".git" not in path.relative_to(root).parts
    )


def load_extension(name: str) -> ModuleType:
    """Import extensions/<name>.py the way copier's loader does: by file path."""
    module_name = f"gp_extension_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "extensions" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


# --- prepared environments of generated projects ------------------------------------------------

PYTHON = "3.11"  # the interpreter of this machine, and of the local torch wheel


def find_links() -> list[str]:
    """pip's extra wheel folders (whitespace-separated in PIP_FIND_LINKS), /opt/wheels if unset."""
    return os.environ.get("PIP_FIND_LINKS", "/opt/wheels").split()


def local_torch_wheels() -> list[Path]:
    """The CPU builds of torch in pip's wheel folders (PIP_FIND_LINKS), oldest first."""
    return sorted(
        wheel for folder in find_links() for wheel in Path(folder).glob("torch-*+cpu-*.whl")
    )


# The dependency groups of a generated pyproject.toml that hold torch, one build each, every one
# pinned to an index (tool.uv.sources): `cpu` to download.pytorch.org, `cuda` to PyPI.
TORCH_GROUPS = ("cpu", "cuda")


def torch_cpu_index(folder: Path) -> dict[str, str]:
    """The environment that points a generated project's `pytorch-cpu` index at `folder`, made a
    local index of the CPU wheels on disk (tools/torch_index.py): the fallback that the generated
    docs/golden-path.md gives where download.pytorch.org cannot be reached, as this machine.
    Empty where no local CPU wheel exists (uv then asks the real index)."""
    wheels = local_torch_wheels()
    return {"UV_INDEX": torch_index(folder, wheels)} if wheels else {}


def prepare_env(project: Path, venv: Path) -> Path:
    """A virtual environment with what `make setup` installs (the project editable and every
    default dependency group), made with uv from the rendered pyproject.toml.

    Never `uv sync` here: it would install the `cuda` group's torch, several GB of CUDA wheels. The
    torch groups are left out (their index pins would take torch from an index, never from local
    disk); Lightning brings torch, and `UV_FIND_LINKS` (from PIP_FIND_LINKS) with a constraint
    holds it at the local CPU build when one is at hand.
    """
    env = {**os.environ, "UV_FIND_LINKS": ",".join(find_links())}  # uv wants commas
    env.pop("VIRTUAL_ENV", None)
    run(["uv", "venv", "--quiet", "--python", PYTHON, venv], project, env=env, timeout=300)
    install: list[str | Path] = [
        "uv",
        "pip",
        "install",
        "--quiet",
        "--python",
        venv / "bin" / "python",
    ]
    pyproject = project / "pyproject.toml"
    uv_settings = tomllib.loads(pyproject.read_text())["tool"]["uv"]
    # The project's own pins (torch==...), and the local build's version: where the two differ,
    # the install fails instead of fetching PyPI's CUDA build.
    pins = list(uv_settings.get("constraint-dependencies", []))
    local_torch = local_torch_wheels()
    if local_torch:
        pins.append(f"torch=={local_torch[-1].name.split('-')[1]}")
    if pins:
        constraints = venv.parent / "constraints.txt"
        constraints.write_text("".join(f"{pin}\n" for pin in pins))
        install += ["--constraint", constraints]
    install += ["--editable", project]
    for group in uv_settings["default-groups"]:
        if group not in TORCH_GROUPS:
            install += ["--group", f"{pyproject}:{group}"]
    run(install, project, env=env, timeout=1200)
    return venv


def env_for(venv: Path) -> dict[str, str]:
    """The environment of a shell with `venv` activated, with nothing of this pytest run in it."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "MLFLOW_", "UV_")) and key not in ("PYTHONPATH",)
    }
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"
    return env


def generated_pytest(venv: Path) -> list[str | Path]:
    """A generated project's pytest, quiet, in a random order (pytest-randomly) whose seed is on
    the command line: a failure's message shows it, and `--randomly-seed=N` repeats the order."""
    return [venv / "bin" / "pytest", "-q", f"--randomly-seed={random.randrange(1 << 32)}"]


def make(project: Path, venv: Path, target: str, timeout: float, *args: str) -> str:
    proc = run(["make", target, "RUN=", *args], project, env=env_for(venv), timeout=timeout)
    return proc.stdout + proc.stderr


def python_in(venv: Path, *args: str | Path, cwd: Path, timeout: float = 300) -> Any:
    """Run a script with the prepared environment's python; return its JSON output."""
    proc = run([venv / "bin" / "python", *args], cwd, env=env_for(venv), timeout=timeout)
    return json.loads(proc.stdout)


PROBE = Path(__file__).with_name("mlflow_probe.py")


def assert_validator_refuses_installed_modules(project: Path, venv: Path) -> None:
    """Every top-level module of `venv` is a package name the template refuses; a miss names
    the lines to add to extensions/installed_modules.txt."""
    names = load_extension("names")
    modules = python_in(venv, PROBE, "modules", cwd=project)
    accepted = [module for module in modules if names.package_name_problem(module) == ""]
    assert accepted == [], f"add to extensions/installed_modules.txt: {' '.join(accepted)}"
