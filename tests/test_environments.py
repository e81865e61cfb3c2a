"""Environments that reproduce: the first commit holds uv.lock, CI installs it with `--locked`, one
uv version runs everywhere, and Dependabot leaves the template's pins to `copier update`.

Every generated lock holds two builds of torch, in the conflicting groups `cpu` (PyTorch's CPU
index) and `cuda` (PyPI): `make setup` installs the one torch_backend names, CI always the CPU one.
Locking needs only index metadata, but download.pytorch.org cannot be reached from here: every lock
made here takes the fallback the generated docs give, the `pytorch-cpu` index pointed at a local
folder made from the CPU wheel on disk (helpers.torch_cpu_index, `UV_INDEX=pytorch-cpu=...`).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import stat
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import (
    BASE_ANSWERS,
    PYTHON,
    ROOT,
    copier_config,
    git,
    render,
    run,
    tool,
    torch_cpu_index,
)
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

PROJECTS: dict[str, dict[str, Any]] = {
    "L1": {"maturity_level": 1},
    "L2-kubeflow": {"maturity_level": 2, "orchestrator": "kubeflow"},  # workflows + Dockerfile
    # Both images, the Level 3 workflows and their uv.
    "L3-kubeflow": {"maturity_level": 3, "orchestrator": "kubeflow", "deploy_target": "kserve"},
}
SEMVER_LEVELS = {f"version-update:semver-{level}" for level in ("major", "minor", "patch")}


@pytest.fixture(scope="module", params=sorted(PROJECTS))
def project(
    request: pytest.FixtureRequest, copier_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    dst = tmp_path_factory.mktemp(request.param) / "project"
    return render(copier_template, dst, torch_backend="pypi", **PROJECTS[request.param])


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def pyproject(root: Path) -> dict[str, Any]:
    return tomllib.loads((root / "pyproject.toml").read_text())


def uv_sync_commands(root: Path) -> list[tuple[str, str]]:
    """(file, command) for every `uv sync` that the generated workflows and Dockerfiles run."""
    scripts = [
        (workflow.name, step.get("run", ""))
        for workflow in sorted((root / ".github" / "workflows").glob("*.yml"))
        for job in load_yaml(workflow)["jobs"].values()
        for step in job.get("steps", [])  # a job that calls a workflow has none
    ]
    for dockerfile in sorted(root.glob("deploy/docker/*Dockerfile")):
        lines = [line for line in dockerfile.read_text().splitlines() if not line.startswith("#")]
        scripts.append((dockerfile.name, "\n".join(lines).replace("\\\n", " ")))
    return [
        (name, "uv sync" + match.group(1))
        for name, script in scripts
        for match in re.finditer(r"\buv sync\b([^\n&;|]*)", script)
    ]


# --- one uv version ---------------------------------------------------------------------------


def uv_versions(root: Path) -> dict[str, str | None]:
    """Where the generated project and the template's own environment name a uv version."""
    found: dict[str, str | None] = {
        "pyproject.toml required-version": pyproject(root)["tool"]["uv"]["required-version"],
        "template pyproject.toml required-version": pyproject(ROOT)["tool"]["uv"][
            "required-version"
        ],
    }
    for workflow in sorted((root / ".github" / "workflows").glob("*.yml")):
        for job in load_yaml(workflow)["jobs"].values():
            for number, step in enumerate(job.get("steps", [])):
                if step.get("uses", "").startswith("astral-sh/setup-uv@"):
                    found[f"{workflow.name} step {number}"] = step.get("with", {}).get("version")
    for dockerfile in sorted(root.glob("deploy/docker/*Dockerfile")):
        for tag in re.findall(r"^FROM ghcr\.io/astral-sh/uv:(\S+)", dockerfile.read_text(), re.M):
            found[dockerfile.name] = tag
    makefile = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    ci_run = re.search(r"^UV_VERSION=(\S+)$", (ROOT / ".ci" / "run").read_text(), re.M)
    found["template Makefile UV_VERSION"] = makefile.group(1) if makefile else None
    found[".ci/run UV_VERSION"] = ci_run.group(1) if ci_run else None
    # The template README's install line for a fresh machine (None where it names no version).
    readme = re.findall(r"pip install uv\b(?:==([\w.]+))?", (ROOT / "README.md").read_text())
    for number, version in enumerate(readme or [""], start=1):
        found[f"template README.md `pip install uv` {number}"] = version or None
    return found


def test_one_uv_version_everywhere(project: Path) -> None:
    found = uv_versions(project)
    assert any(".yml step" in where for where in found), "no setup-uv step found"
    assert (project / "deploy").is_dir() == any("Dockerfile" in where for where in found)
    exact = {where: str(value).removeprefix("==") for where, value in found.items()}
    assert len(set(exact.values())) == 1, exact
    required = str(found["pyproject.toml required-version"])
    assert required.startswith("=="), "an exact version, not a range"
    # The build backend the project names accepts the uv it requires.
    build = [Requirement(r) for r in pyproject(project)["build-system"]["requires"]]
    assert [r.name for r in build] == ["uv_build"]
    assert build[0].specifier.contains(required.removeprefix("==")), build


def test_the_uv_on_path_is_the_one_the_template_requires() -> None:
    """Generated projects are installed with the uv on PATH (tests/helpers.py), which their
    required-version checks; `make setup` and .ci/run install the right one."""
    required = SpecifierSet(pyproject(ROOT)["tool"]["uv"]["required-version"])
    on_path = run(["uv", "--version"], ROOT).stdout.split()[1]
    assert on_path in required, f"uv {on_path} on PATH; run `make setup` or .ci/run"


# --- CI installs the lock ---------------------------------------------------------------------


def test_generated_ci_and_images_install_with_uv_sync_locked(project: Path) -> None:
    commands = uv_sync_commands(project)
    assert "ci.yml" in {name for name, _ in commands}, "CI installs with uv sync"
    unlocked = [(name, cmd) for name, cmd in commands if "--locked" not in shlex.split(cmd)]
    assert unlocked == []


def test_make_setup_writes_the_lock_before_it_installs_the_hooks(project: Path) -> None:
    commands = run(["make", "--no-print-directory", "-n", "setup"], project).stdout.splitlines()
    sync = [i for i, line in enumerate(commands) if re.search(r"\buv sync\b", line)]
    hooks = [i for i, line in enumerate(commands) if "pre-commit install" in line]
    assert sync, commands
    assert hooks, commands
    assert max(sync) < min(hooks), commands


# --- Dependabot -------------------------------------------------------------------------------


def template_pins(root: Path) -> set[str]:
    """Distributions the rendered pyproject.toml pins, in Dependabot's (PEP 503) spelling."""
    config = pyproject(root)
    requirements = [
        *config["project"]["dependencies"],
        *config["build-system"]["requires"],
        *(item for group in config["dependency-groups"].values() for item in group),
    ]
    return {canonicalize_name(Requirement(item).name) for item in requirements}


def test_dependabot_ignores_exactly_the_template_pins(project: Path) -> None:
    path = project / ".github" / "dependabot.yml"
    run([tool("check-jsonschema"), "--builtin-schema", "vendor.dependabot", path], project)
    updates = {entry["package-ecosystem"]: entry for entry in load_yaml(path)["updates"]}
    docker = project / "deploy" / "docker"
    expected = {"uv", "github-actions"} | ({"docker"} if docker.is_dir() else set())
    assert set(updates) == expected

    uv = updates["uv"]
    assert uv["directory"] == "/"
    # Dependencies the team adds get weekly version updates.
    assert uv["schedule"]["interval"] == "weekly"
    assert uv.get("open-pull-requests-limit") != 0
    ignored = [rule["dependency-name"] for rule in uv["ignore"]]
    assert sorted(ignored) == sorted(template_pins(project))
    for rule in uv["ignore"]:
        # `update-types` filters version updates only (GitHub changelog, 2021-05-21, "Dependabot
        # version updates can now ignore major/minor/patch releases"); on a security update
        # Dependabot reads only an ignore rule's `versions` (dependabot-core, IgnoreCondition).
        assert "versions" not in rule, rule
        assert set(rule["update-types"]) == SEMVER_LEVELS, rule

    # Entirely platform files: no version updates; security updates have their own limit.
    for ecosystem in expected - {"uv"}:
        assert updates[ecosystem]["open-pull-requests-limit"] == 0, ecosystem
    if docker.is_dir():
        assert updates["docker"]["directory"] == "/deploy/docker"
        assert list(docker.glob("*Dockerfile")), "Dependabot's docker directory holds Dockerfiles"


def test_dependabot_config_is_platform_owned(project: Path) -> None:
    """`copier update` keeps it in step with the pins: no team-owned pattern may match it."""
    team = copier_config()["_skip_if_exists"]
    assert not [p for p in team if fnmatch.fnmatch(".github/dependabot.yml", p)]
    assert "`.github/dependabot.yml`" in (project / "docs" / "ownership.md").read_text()


# The distribution of each tool the git hooks run (its console script, as in the hook's entry).
HOOK_TOOLS = {
    "ruff": "ruff",
    "trailing-whitespace-fixer": "pre-commit-hooks",
    "end-of-file-fixer": "pre-commit-hooks",
    "check-yaml": "pre-commit-hooks",
    "check-toml": "pre-commit-hooks",
    "check-merge-conflict": "pre-commit-hooks",
    "check-added-large-files": "pre-commit-hooks",
    "nbstripout": "nbstripout",
}


def test_git_hooks_run_the_dev_groups_tools_and_download_nothing(project: Path) -> None:
    """Every hook is local and runs a tool that the dev group pins, from the project's .venv: a
    commit needs no network (pre-commit would clone each remote hook repository on first use),
    and `make lint`, the git hook and the template's own render checks run one ruff."""
    repos = load_yaml(project / ".pre-commit-config.yaml")["repos"]
    assert [repo["repo"] for repo in repos] == ["local"]
    hooks = repos[0]["hooks"]
    assert {hook["id"] for hook in hooks} >= {"ruff-check", "ruff-format", "nbstripout"}
    dev = {Requirement(item).name for item in pyproject(project)["dependency-groups"]["dev"]}
    for hook in hooks:
        assert hook["language"] == "system", hook  # pre-commit installs nothing for it
        command = shlex.split(hook["entry"])
        assert command[:3] == ["uv", "run", "--no-sync"], hook
        assert HOOK_TOOLS[command[3]] in dev, hook
    assert dev_pin(ROOT, "ruff") == dev_pin(project, "ruff"), "the template's ruff checks the code"
    assert dev_pin(ROOT, "pre-commit-hooks") == dev_pin(project, "pre-commit-hooks")


def dev_pin(root: Path, name: str) -> str:
    """The exact version that pyproject.toml's dev group pins `name` to."""
    dev = [Requirement(item) for item in pyproject(root)["dependency-groups"]["dev"]]
    (specifier,) = [r.specifier for r in dev if r.name == name]
    (pin,) = list(specifier)
    assert pin.operator == "==", pin
    return pin.version


# --- following the copy message ---------------------------------------------------------------

MESSAGE_START = "Your golden-path repository"

# Stands in for make: records each target. Its `setup` keeps what matters here of the real one
# (`uv sync`, then `pre-commit install`): `uv lock`, the part of uv sync that writes uv.lock (the
# real sync downloads gigabytes of torch), and a git pre-commit hook, which needs the repository.
FAKE_MAKE = """#!/usr/bin/env bash
set -euo pipefail
echo "$1" >> "$MAKE_LOG"
if [ "$1" = setup ]; then
  uv lock --quiet
  install -m 755 "$HOOK" "$(git rev-parse --git-dir)/hooks/pre-commit"
fi
"""

# The hook of .pre-commit-config.yaml that uv.lock meets: check-added-large-files from
# pre-commit-hooks, with the config's args and exclude (the real hooks run from the .venv that
# FAKE_MAKE does not install; test_cpu_project_follows_the_copy_message_offline runs them all).
HOOK = f"""#!{sys.executable}
import os, re, subprocess, sys
import yaml
from pre_commit_hooks.check_added_large_files import main

with open(os.environ["MAKE_LOG"], "a") as log:
    log.write("pre-commit\\n")
config = yaml.safe_load(open(".pre-commit-config.yaml"))
hook = next(h for r in config["repos"] for h in r["hooks"] if h["id"] == "check-added-large-files")
staged = subprocess.run(["git", "diff", "--cached", "--name-only"], capture_output=True,
                        text=True, check=True).stdout.split()
checked = [name for name in staged if not re.search(hook.get("exclude", "^$"), name)]
sys.exit(main([*hook.get("args", []), *checked]))
"""


@pytest.fixture(scope="module")
def copied(copier_template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A Level 2 Kubeflow project copied with copier's command line, and copier's last words."""
    dst = tmp_path_factory.mktemp("copied") / "project"
    answers = {**BASE_ANSWERS, **PROJECTS["L2-kubeflow"], "torch_backend": "pypi"}
    data = [arg for key, value in answers.items() for arg in ("-d", f"{key}={value}")]
    copier = [tool("copier"), "copy", "--trust", "--defaults", *data, copier_template, dst]
    stderr = run(copier, dst.parent).stderr
    assert MESSAGE_START in stderr, stderr
    return dst, stderr[stderr.index(MESSAGE_START) :]


def message_commands(message: str) -> list[str]:
    """The indented lines of the message: the commands it tells the user to run."""
    return [line.strip() for line in message.splitlines() if re.match(r"^ {2}\S", line)]


def test_copy_message_runs_setup_between_git_init_and_the_first_commit(
    copied: tuple[Path, str],
) -> None:
    dst, message = copied
    steps = [shlex.split(command)[:2] for command in message_commands(message)]
    assert steps == [
        ["cd", str(dst)],
        ["git", "init"],
        ["make", "setup"],
        ["git", "add"],
        ["make", "train"],
    ], message
    assert "git commit" in message_commands(message)[3]


@pytest.fixture(scope="module")
def first_commit(
    copied: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """The copied project after its copy message was run as printed with FAKE_MAKE, and the
    log of what ran."""
    dst, message = copied
    tools = tmp_path_factory.mktemp("fake-tools")
    for name, text in (("make", FAKE_MAKE), ("pre-commit-hook", HOOK)):
        (tools / name).write_text(text)
        (tools / name).chmod(stat.S_IRWXU)
    env = {
        **os.environ,
        "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}",
        "MAKE_LOG": str(tools / "make.log"),
        "HOOK": str(tools / "pre-commit-hook"),
        "UV_PYTHON": PYTHON,
        **torch_cpu_index(tools / "torch-index"),
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.org",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.org",
    }
    env.pop("VIRTUAL_ENV", None)
    script = "set -euo pipefail\n" + "\n".join(message_commands(message))
    run(["bash", "-c", script], dst.parent, env=env, timeout=600)
    return dst, tools / "make.log"


@pytest.mark.slow
def test_following_the_copy_message_commits_uv_lock_first(first_commit: tuple[Path, Path]) -> None:
    project, log = first_commit
    # The hook that make setup installed ran on the first commit, between setup and train.
    assert log.read_text().split() == ["setup", "pre-commit", "train"]
    assert git(project, "rev-list", "--count", "HEAD") == "1"
    assert "uv.lock" in git(project, "ls-tree", "--name-only", "HEAD").split()
    assert git(project, "status", "--porcelain") == "", "everything is in the first commit"


def planned_installs(output: str) -> dict[str, str]:
    """`name -> version` from the ` + name==version` lines of a `uv sync --dry-run`."""
    return dict(re.findall(r"^ \+ ([\w.-]+)==(\S+)", output, re.M))


@pytest.mark.slow
def test_ci_install_commands_accept_the_committed_lock(first_commit: tuple[Path, Path]) -> None:
    project, log = first_commit
    # The lock names the index it was made with: the same fallback index as the first commit's.
    env = {**os.environ, "UV_PYTHON": PYTHON, **torch_cpu_index(log.parent / "torch-index")}
    env.pop("VIRTUAL_ENV", None)
    named = [(name, [*shlex.split(cmd), "--dry-run"]) for name, cmd in uv_sync_commands(project)]
    commands = [command for _, command in named]
    for name, command in named:
        out = run(command, project, env=env)
        planned = planned_installs(out.stdout + out.stderr)
        if name.endswith(".yml"):  # GitHub's runners have no GPU: torch's CPU build, no CUDA
            assert planned["torch"].endswith("+cpu"), (name, planned.get("torch"))
            assert not [p for p in planned if p.startswith("nvidia-")], (name, planned)
    # `make setup` with torch_backend=pypi (a GPU machine) installs PyPI's CUDA build.
    setup = run(["uv", "sync", "--locked", "--dry-run"], project, env=env)
    planned = planned_installs(setup.stdout + setup.stderr)
    assert planned["torch"] == "2.13.0", planned.get("torch")
    assert [p for p in planned if p.startswith("nvidia-")], planned
    # And `--locked` refuses a lock that no longer matches pyproject.toml.
    path = project / "pyproject.toml"
    path.write_text(path.read_text().replace('version = "0.1.0"', 'version = "0.1.1"', 1))
    try:
        stale = run(commands[0], project, env=env, check=False)
    finally:
        git(project, "checkout", "--", "pyproject.toml")
    assert stale.returncode != 0
    assert "--locked" in stale.stderr, stale.stderr


# --- torch_backend=cpu without PyTorch's index -------------------------------------------------

TORCH_PROBE = (
    "import json, torch;"
    "print(json.dumps({'version': torch.__version__, 'cuda_build': torch.version.cuda,"
    " 'cuda_available': torch.cuda.is_available()}))"
)


@pytest.mark.slow
def test_cpu_project_follows_the_copy_message_offline(
    copier_template: Path, tmp_path: Path
) -> None:
    """torch_backend=cpu where download.pytorch.org cannot be reached, with the fallback the
    generated docs give (the `pytorch-cpu` index pointed at a local folder of the CPU wheel, by
    UV_INDEX): the copy message's steps run for real. `make setup` locks and installs torch's CPU
    build and no CUDA wheel; the first commit passes every git hook and pre-commit fetches
    nothing; CI's install command accepts the committed lock and changes nothing."""
    project = render(
        copier_template,
        tmp_path / "project",
        torch_backend="cpu",
        maturity_level=1,
        python_version=PYTHON,
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("UV_")}
    env.pop("VIRTUAL_ENV", None)
    env |= {
        **torch_cpu_index(tmp_path / "torch-index"),  # empty without a local wheel: the real index
        "UV_PYTHON": PYTHON,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit"),
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.org",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.org",
    }
    try:
        run(["git", "init", "-q"], project, env=env)
        run(["make", "setup"], project, env=env, timeout=900)
        run(["git", "add", "-A"], project, env=env)
        commit = run(["git", "commit", "-m", "Generate from mlops-golden-path"], project, env=env)
        assert "nbstripout" in commit.stdout + commit.stderr, "the git hooks did not run"
        assert not list((tmp_path / "pre-commit").glob("repo*")), "pre-commit cloned a hook repo"
        assert "uv.lock" in git(project, "ls-tree", "--name-only", "HEAD").split()
        assert git(project, "status", "--porcelain") == "", "the hooks changed files"

        locked = tomllib.loads((project / "uv.lock").read_text())["package"]
        torch_builds = sorted(p["version"] for p in locked if p["name"] == "torch")
        assert torch_builds == ["2.13.0", "2.13.0+cpu"], "one lock, both builds"
        venv = project / ".venv"
        info = json.loads(run([venv / "bin" / "python", "-c", TORCH_PROBE], project).stdout)
        assert info["version"].endswith("+cpu"), info
        assert info["cuda_build"] is None, info
        assert info["cuda_available"] is False, info
        site_packages = next(venv.glob("lib/python*/site-packages"))
        cuda = sorted(p.name for p in site_packages.glob("*.dist-info") if "nvidia" in p.name)
        assert cuda == [], cuda

        (ci,) = [cmd for name, cmd in uv_sync_commands(project) if name == "ci.yml"]
        out = run([*shlex.split(ci), "--dry-run"], project, env=env)
        assert "Would make no changes" in out.stdout + out.stderr, out.stdout + out.stderr
    finally:
        shutil.rmtree(project / ".venv", ignore_errors=True)  # about 1.6 GB


# --- the system packages the suite drives -------------------------------------------------------


def test_every_system_tool_the_tests_require_is_one_system_deps_installs() -> None:
    """A test that needs a system tool calls require_tool with the tool's Debian package, which
    `make system-deps` (tools/system-deps.sh) installs: no test relies on a tool that happens
    to be on the machine, and none is left to fail where it is missing."""
    script = (ROOT / "tools" / "system-deps.sh").read_text()
    installed = set(re.findall(r'^  "([a-z0-9.+-]+)\|', script, re.M))
    required = {
        package
        for path in sorted((ROOT / "tests").glob("*.py"))
        for package in re.findall(r'\brequire_tool\(\s*[^,()]+,\s*"([^"]+)"', path.read_text())
    }
    assert {"podman", "wrk", "prometheus", "chromium", "postgresql"} <= required
    assert required <= installed, f"add to tools/system-deps.sh: {sorted(required - installed)}"
