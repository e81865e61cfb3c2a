"""Benchmark: the generated Level 1 project's `make train` and `make test`, and the import share.

Renders a Level 1 project, installs it into a venv (torch's CPU build from local disk), commits
it as a user would, then times in that prepared environment (`RUN=`, no `uv run`):
`make train` with the default config, `make test` (once), and importing the training entry point,
which is the fixed start-up cost inside every `make train`.

    .venv/bin/python bench/train_time.py --runs 3
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

from common import run, save, shown, summary, timed, with_path
from project import install, render

GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]


def package_of(project: Path) -> str:
    return next(path.name for path in (project / "src").iterdir() if path.is_dir())


def commit(project: Path) -> None:
    """Train from a clean git checkout, like a user does (runs record the commit)."""
    run([*GIT, "init", "-q"], cwd=project)
    run([*GIT, "add", "-A"], cwd=project)
    run([*GIT, "commit", "-q", "-m", "Generate from mlops-golden-path"], cwd=project)


def time_runs(cmd: list[str], project: Path, env: Path, runs: int) -> dict[str, Any]:
    samples = [timed(cmd, cwd=project, env=with_path(env / "bin")) for _ in range(runs)]
    command = f"cd {project} && PATH={env}/bin:$PATH {shlex.join(cmd)}"
    return {"command": command, **summary(samples)}


def test_suite(project: Path, env: Path) -> dict[str, Any]:
    """One timed `make test`, recorded even when tests fail (with pytest's summary line)."""
    cmd = ["make", "test", "RUN="]
    start = time.perf_counter()
    result = subprocess.run(
        cmd, cwd=project, env=with_path(env / "bin"), capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    lines = [line.strip("= ") for line in result.stdout.splitlines() if line.startswith("=")]
    return {
        "command": f"cd {project} && PATH={env}/bin:$PATH {shlex.join(cmd)}",
        "seconds": round(seconds, 1),
        "passed": result.returncode == 0,
        "pytest_summary": lines[-1] if lines else result.stderr.strip()[-300:],
    }


def slowest_imports(module: str, env: Path, count: int = 10) -> list[dict[str, Any]]:
    """Import time per top-level package (its modules' own time), from `python -X importtime`.

    Self times do not overlap, so the rows add up to the whole import instead of double
    counting what one package imports from another.
    """
    python = str(env / "bin" / "python")
    stderr = run([python, "-X", "importtime", "-c", f"import {module}"]).stderr
    per_package: dict[str, int] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, _, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        root = name.split(".")[0]
        per_package[root] = per_package.get(root, 0) + int(own)
    ranked = sorted(per_package.items(), key=lambda item: item[1], reverse=True)
    return [{"package": name, "s": round(us / 1e6, 2)} for name, us in ranked[:count]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs of make train (median)")
    parser.add_argument("--project", type=Path, default=Path("/tmp/bench-gen"))
    parser.add_argument("--env", type=Path, default=Path("/tmp/bench-env"))
    args = parser.parse_args()
    project, env = args.project, args.env

    results: dict[str, Any] = {"render_command": shown(shlex.join(render(project)))}
    results["install"] = install(project, env)
    commit(project)
    module = f"{package_of(project)}.training.train"
    python = str(env / "bin" / "python")

    results["interpreter_start"] = time_runs([python, "-c", "pass"], project, env, 5)
    results["import_train"] = time_runs([python, "-c", f"import {module}"], project, env, 5)
    results["slowest_imports"] = slowest_imports(module, env)
    results["make_train"] = time_runs(["make", "train", "RUN="], project, env, args.runs)
    results["make_test"] = test_suite(project, env)
    results["import_share_of_train"] = round(
        results["import_train"]["median_s"] / results["make_train"]["median_s"], 3
    )
    for key in ("import_train", "make_train"):
        print(f"{key}: median {results[key]['median_s']} s over {results[key]['runs']} runs")
    tests = results["make_test"]
    print(f"make_test: {tests['seconds']} s, {tests['pytest_summary']}")
    print(f"import share of make train: {results['import_share_of_train']:.0%}")
    save("train_time", results)


if __name__ == "__main__":
    main()
