"""Benchmark: the Level 2 local pipeline (cold and re-run) and level-up `copier update`s.

Pipeline: renders a Level 2 project, installs it with its dev and pipeline groups into a venv
(torch's CPU build from local disk), commits it, then times `make pipeline RUN=` cold (no data/,
logs/, mlflow.db, mlartifacts/) and immediately again, when ingest calls the team's generator
again (no `data.source`, so it is never cached) and every step after it hits the cache; `make train`
alone, what a team without the pipeline runs; and the imports of `python -m <package>.pipeline run`,
the fixed start-up cost inside both.

Update: renders a Level 1 and a Level 2 project from a committed and tagged copy of the template,
commits them, and times, on a fresh copy of the project each run, the level-ups `copier update`
to Level 2 and from 2 to 3 next to a plain version update with no changes (same tag), the baseline
a user would compare to.

    .venv/bin/python bench/pipeline_time.py --runs 3
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from common import COPIER, run, save, shown, summary, timed, with_path
from project import install, render, render_command
from render_time import golden_path_folder, tagged_repo
from train_time import commit, package_of, slowest_imports, time_runs

# What a pipeline run writes (configs/paths/default.yaml); deleted for a cold run.
RUN_STATE = ("data", "logs", "mlflow.db", "mlartifacts")
STEPS = ("ingest", "validate", "train", "evaluate", "register")
# What a re-run with unchanged data takes from the cache: every step after ingest, which reads
# `generate_dataset` (no `data.source` by default) and therefore runs every time.
CACHED_ON_RERUN = STEPS[1:]


def clean_state(project: Path) -> None:
    for name in RUN_STATE:
        path = project / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def cached_steps(output: str) -> list[str]:
    """The steps that the run summary table reports as cached."""
    return [
        step
        for step in STEPS
        for line in output.splitlines()
        if line.strip("│ ").startswith(f"{step} ") and "│ cached" in line
    ]


def timed_pipeline(project: Path, env: Path) -> tuple[float, str]:
    start = time.perf_counter()
    result = run(["make", "pipeline", "RUN="], cwd=project, env=with_path(env / "bin"))
    return time.perf_counter() - start, result.stdout


def pipeline(project: Path, env: Path, runs: int, import_runs: int) -> dict[str, Any]:
    results: dict[str, Any] = {
        "render_command": shown(shlex.join(render(project, maturity_level=2)))
    }
    results["install"] = install(project, env, groups=("dev", "pipeline"))
    commit(project)
    package = package_of(project)
    python = str(env / "bin" / "python")

    cold: list[float] = []
    cached: list[float] = []
    cached_lists: list[list[str]] = []
    for _ in range(runs):
        clean_state(project)
        seconds, output = timed_pipeline(project, env)
        cold.append(seconds)
        seconds, output = timed_pipeline(project, env)
        cached.append(seconds)
        cached_lists.append(cached_steps(output))
    if any(steps != list(CACHED_ON_RERUN) for steps in cached_lists):
        raise RuntimeError(f"a re-run did not hit the cache after ingest: {cached_lists}")
    cached_counts = [len(steps) for steps in cached_lists]
    command = f"cd {project} && PATH={env}/bin:$PATH make pipeline RUN="
    results["cold"] = {
        "command": command,
        "state_removed_before_each_run": list(RUN_STATE),
        **summary(cold),
    }
    results["cached"] = {
        "command": command,
        "runs_after": "each cold run, immediately",
        "steps_cached_per_run": cached_counts,
        **summary(cached),
    }

    # The alternative without a pipeline: training alone, by hand (no validation, no held-out
    # scoring, no registry), in the same project and store.
    results["train_alone"] = time_runs(["make", "train", "RUN="], project, env, runs)

    # What `python -m <package>.pipeline run` imports before the first step (see its __main__.py).
    modules = f"{package}.pipeline.__main__, {package}.training.config, {package}.pipeline.local"
    results["interpreter_start"] = time_runs([python, "-c", "pass"], project, env, import_runs)
    results["import_pipeline"] = time_runs(
        [python, "-c", f"import {modules}"], project, env, import_runs
    )
    results["slowest_imports"] = slowest_imports(modules, env)
    imports = results["import_pipeline"]["median_s"]
    results["cached_minus_imports_s"] = round(results["cached"]["median_s"] - imports, 2)
    results["import_share_of_cached"] = round(imports / results["cached"]["median_s"], 3)
    return results


def update_command(project: Path, *answers: str) -> list[str]:
    data = [arg for answer in answers for arg in ("-d", answer)]
    flags = ["--trust", "--defaults", "--quiet", *data, "--vcs-ref", "1.0.0"]
    return [COPIER, "update", *flags, str(project)]


def answers_of(project: Path) -> dict[str, Any]:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


def updates(scratch: Path, runs: int) -> dict[str, Any]:
    """Level-ups and a plain version update, each on a fresh copy of a committed project of the
    level it starts from."""
    repo = tagged_repo(
        golden_path_folder(scratch / "template-folder"), scratch / "golden-path-repo"
    )
    starts: dict[int, Path] = {}
    results: dict[str, Any] = {}
    for level in (1, 2):
        starts[level] = scratch / f"level{level}"
        render_cmd = render_command(starts[level], src=repo, maturity_level=level)
        run(render_cmd)
        commit(starts[level])
        results[f"render_command_level{level}"] = shown(shlex.join(render_cmd), scratch)
    # name: (the level it starts from, the level it ends at)
    cases = {"version_update": (1, 1), "level_up_1_to_2": (1, 2), "level_up_2_to_3": (2, 3)}
    for name, (start, end) in cases.items():
        project = scratch / "project"
        answers = [f"maturity_level={end}"] if end != start else []
        cmd = update_command(project, *answers)
        samples, changed = [], []
        for _ in range(runs):
            shutil.rmtree(project, ignore_errors=True)
            shutil.copytree(starts[start], project, symlinks=True)
            samples.append(timed(cmd))
            level = answers_of(project)["maturity_level"]
            status = subprocess.run(
                ["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True
            ).stdout.splitlines()
            changed.append(len(status))
            # A level-up must reach its level; the version update must change nothing.
            if level != end or (end == start and status):
                raise RuntimeError(f"{name}: level {level} after the update, changed {status}")
        results[name] = {
            "command": shown(shlex.join(cmd), scratch),
            "maturity_level_after": level,
            "paths_changed_per_run": changed,
            **summary(samples),
        }
        shutil.rmtree(project, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per measure (median)")
    parser.add_argument("--import-runs", type=int, default=5, help="timed runs of the imports")
    parser.add_argument("--project", type=Path, default=Path("/tmp/bench-pipeline"))
    parser.add_argument("--env", type=Path, default=Path("/tmp/bench-pipeline-env"))
    args = parser.parse_args()

    results: dict[str, Any] = {
        "pipeline": pipeline(args.project, args.env, args.runs, args.import_runs)
    }
    with tempfile.TemporaryDirectory(prefix="bench-update-") as tmp:
        results["update"] = updates(Path(tmp), args.runs)

    for key in ("cold", "cached", "train_alone", "import_pipeline"):
        entry = results["pipeline"][key]
        print(f"pipeline {key}: median {entry['median_s']} s over {entry['runs']} runs")
    print(f"cached re-run minus imports: {results['pipeline']['cached_minus_imports_s']} s")
    for key in ("version_update", "level_up_1_to_2", "level_up_2_to_3"):
        entry = results["update"][key]
        print(f"{key}: median {entry['median_s']} s over {entry['runs']} runs")
    save("pipeline_time", results)


if __name__ == "__main__":
    main()
