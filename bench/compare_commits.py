"""Benchmark: two template commits side by side, on the same machine in the same minutes.

    .venv/bin/python bench/compare_commits.py --base d5a1ad6 [--head HEAD] [--runs 3]

Timings drift between days on a shared machine (up to 1.8x here), so a change is judged against
its parent measured in alternation, not against numbers from another day. For each commit it
renders a Level 2 project (each with its own package name, so both install into one venv),
then alternates: `copier copy`, `make train`'s command, and a `make pipeline` re-run with
unchanged data (after one cold run each). Results: bench/results/compare_commits.json.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any

from common import REPO, WHEELS, run, save, shown, summary, timed, with_path
from project import install, render_command
from train_time import commit, package_of

NAMES = {"base": "Base Churn", "head": "Head Churn"}


def render_cmd(ref: str, dst: Path, name: str) -> list[str]:
    cmd = render_command(dst, REPO, project_name=name, maturity_level=2)
    cmd[2:2] = ["--vcs-ref", ref]  # after `copier copy`
    return cmd


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_argument("--base", required=True)
    cli.add_argument("--head", default="HEAD")
    cli.add_argument("--runs", type=int, default=3)
    args = cli.parse_args()
    refs = {"base": args.base, "head": args.head}
    scratch = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    projects = {side: scratch / side for side in refs}
    for side, ref in refs.items():
        run(render_cmd(ref, projects[side], NAMES[side]))
        commit(projects[side])
    env = scratch / "env"
    # The head's dependency groups; the base adds its own package only (same pins otherwise).
    install(projects["head"], env, groups=("dev", "pipeline"))
    variables = {**with_path(env / "bin"), "UV_FIND_LINKS": WHEELS}
    run(
        ["uv", "pip", "install", "--quiet", "--no-deps", "-e", str(projects["base"])], env=variables
    )
    python = str(env / "bin" / "python")
    train = {
        side: [python, "-m", f"{package_of(p)}.training.train"] for side, p in projects.items()
    }
    pipeline = {
        side: [python, "-m", f"{package_of(p)}.pipeline", "run"] for side, p in projects.items()
    }
    for side, project in projects.items():  # one cold pipeline run each: data, cache, bytecode
        timed(pipeline[side], cwd=project, env=variables)

    samples: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.runs):
        for side, project in projects.items():
            shutil.rmtree(scratch / "render", ignore_errors=True)
            times = {
                "render (Level 2)": timed(render_cmd(refs[side], scratch / "render", "X")),
                "make train": timed(train[side], cwd=project, env=variables),
                "make pipeline re-run": timed(pipeline[side], cwd=project, env=variables),
            }
            for name, seconds in times.items():
                samples.setdefault(name, {}).setdefault(side, []).append(seconds)
    commands = {
        "render (Level 2)": render_cmd("REF", Path("$TMP/render"), "X"),
        "make train": ["python", "-m", "<package>.training.train"],
        "make pipeline re-run": ["python", "-m", "<package>.pipeline", "run"],
    }
    results: dict[str, Any] = {"base": args.base, "head": args.head, "measures": {}}
    for name, sides in samples.items():
        stats = {side: summary(values) for side, values in sides.items()}
        results["measures"][name] = {"command": shown(shlex.join(commands[name])), **stats}
        medians = "  ".join(f"{side} {stat['median_s']:.2f} s" for side, stat in stats.items())
        print(f"{name:22} {medians}")
    save("compare_commits", results)
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
