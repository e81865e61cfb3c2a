"""Benchmark: how big the Level 1 environment is, and what torch's CUDA build would add.

Installs a rendered Level 1 project (dev group included) into a fresh venv with torch's CPU
build from local disk, measures it with `du`, and lists the largest packages. Then resolves the
project's default `uv sync` (torch_backend=pypi: the `cuda` group) with `uv lock`, which downloads
no wheels, and reads from uv.lock the size of every wheel that torch pulls only on Linux (the CUDA
stack).

    .venv/bin/python bench/env_size.py
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from common import REPO, WHEELS, run, save, shown
from packaging.markers import Marker
from project import PYTHON, install, render

MIB = 2**20
LINUX = {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"}
MACOS = {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64"}


def du_bytes(path: Path) -> int:
    return int(run(["du", "-sb", str(path)]).stdout.split()[0])


def largest_packages(env: Path, count: int = 10) -> list[dict[str, Any]]:
    site_packages = next(env.glob("lib/python*/site-packages"))
    sizes = [(du_bytes(entry), entry.name) for entry in site_packages.iterdir() if entry.is_dir()]
    return [
        {"name": name, "mib": round(size / MIB)}
        for size, name in sorted(sizes, reverse=True)[:count]
    ]


def torch_version(env: Path) -> str:
    python = str(env / "bin" / "python")
    return run([python, "-c", "import torch; print(torch.__version__)"]).stdout.strip()


def closure(packages: dict[str, Any], root: str, platform: dict[str, str]) -> set[str]:
    """Every package `root` needs on `platform` under Python 3.11, extras followed."""
    environment = {**platform, "python_version": PYTHON, "python_full_version": f"{PYTHON}.0"}
    needed: set[str] = set()
    visited: set[tuple[str, tuple[str, ...]]] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [(root, ())]
    while todo:
        node = todo.pop()
        if node in visited:
            continue
        visited.add(node)
        name, extras = node
        needed.add(name)
        package = packages[name]
        edges = list(package.get("dependencies", []))
        for extra in extras:
            edges += package.get("optional-dependencies", {}).get(extra, [])
        for edge in edges:
            if "marker" in edge and not Marker(edge["marker"]).evaluate(environment):
                continue
            todo.append((edge["name"], tuple(sorted(edge.get("extra", ())))))
    return needed


def linux_wheel_bytes(package: dict[str, Any]) -> int:
    """Size of the wheel uv would pick for CPython 3.11 on x86-64 Linux."""
    for wheel in package.get("wheels", []):
        name = wheel["url"].rsplit("/", 1)[-1]
        fits_python = any(tag in name for tag in ("-cp311-", "-abi3-", "-py3-none-", "-py2.py3-"))
        fits_linux = ("x86_64" in name and "linux" in name) or name.endswith("-none-any.whl")
        if fits_python and fits_linux:
            return int(wheel.get("size", 0))
    return 0


def cuda_download(project: Path) -> dict[str, Any]:
    """What `uv sync` with torch_backend=pypi (the `cuda` group) downloads for torch on Linux,
    from `uv lock`. The lock's `cpu` group needs PyTorch's CPU index: where a local CPU wheel is
    at hand, the lock goes through a local stand-in for it (tools/torch_index.py)."""
    command = ["uv", "lock", "--quiet", "--python", PYTHON]
    env = dict(os.environ)
    cpu_wheels = sorted(Path(WHEELS).glob("torch-*+cpu-*.whl"))
    if cpu_wheels:
        index = project.parent / "torch-index"
        script = str(REPO / "tools" / "torch_index.py")
        env["UV_INDEX"] = run(
            [sys.executable, script, str(index), *map(str, cpu_wheels)]
        ).stdout.strip()
    run(command, cwd=project, env=env)
    locked = tomllib.loads((project / "uv.lock").read_text())["package"]
    # The lock holds both torch builds: the `cuda` group's is PyPI's (no local version label).
    packages = {p["name"]: p for p in locked if not (p["name"] == "torch" and "+" in p["version"])}
    # uv.lock marks "the group is installed" as the extra `group-<len>-<project>-<group>`.
    slug = tomllib.loads((project / "pyproject.toml").read_text())["project"]["name"]
    cuda = {"extra": f"group-{len(slug)}-{slug}-cuda"}
    linux_only = closure(packages, "torch", LINUX | cuda) - closure(packages, "torch", MACOS | cuda)
    wheels = {name: linux_wheel_bytes(packages[name]) for name in sorted(linux_only | {"torch"})}
    return {
        "command": f"cd {project} && {shlex.join(command)}",
        "torch_version": packages["torch"]["version"],
        "wheels_mib": {name: round(size / MIB) for name, size in wheels.items()},
        "total_mib": round(sum(wheels.values()) / MIB),
    }


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()

    # Project and venv live in one scratch folder: an editable install must not outlive its project.
    with tempfile.TemporaryDirectory(prefix="bench-env-") as tmp:
        project, env = Path(tmp) / "project", Path(tmp) / "env"
        render_cmd = render(project)
        installed = install(project, env)
        cpu_wheel = next(Path(WHEELS).glob("torch-*+cpu-*.whl"))
        results = {
            "render_command": shown(shlex.join(render_cmd), tmp),
            "install": {**installed, "commands": [shown(c, tmp) for c in installed["commands"]]},
            "env_mib": round(du_bytes(env) / MIB),
            "du_command": shown(f"du -sb {env}", tmp),
            "torch_version": torch_version(env),
            "largest_packages": largest_packages(env),
            "cpu_torch_wheel": {
                "file": str(cpu_wheel),
                "mib": round(cpu_wheel.stat().st_size / MIB),
            },
        }
        cuda_project = Path(tmp) / "project-pypi"
        render(cuda_project, torch_backend="pypi")
        try:
            cuda = cuda_download(cuda_project)
            cuda["command"] = shown(cuda["command"], tmp)
        except RuntimeError as error:  # no registry reachable: say so instead of guessing
            cuda = {"error": str(error).splitlines()[0]}
        results["pypi_torch_download_linux"] = cuda
    print(f"env: {results['env_mib']} MiB, torch {results['torch_version']}")
    print(f"pypi torch on Linux: {cuda.get('total_mib', cuda.get('error'))} MiB download")
    save("env_size", results)


if __name__ == "__main__":
    main()
