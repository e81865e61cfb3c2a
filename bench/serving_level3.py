"""Benchmark: a Level 3 project's service, next to `mlflow models serve`, with its own script.

Renders a Level 3 project, installs it with its
default groups into a venv (torch's CPU build from local disk), commits it, trains and registers
a model (`make pipeline`), promotes it to champion (`make promote`) and runs the project's own
serving benchmark (`make serve-bench`, bench/serving.py in the project), which needs wrk. Its
JSON results go into bench/results/serving_level3.json with the commands and the machine.

    .venv/bin/python bench/serving_level3.py                       # about 13 minutes
    .venv/bin/python bench/serving_level3.py -- --duration 3 --warmup 1 --batch-rows 10000 100000
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from common import run, save, shown, with_path
from project import install, render
from train_time import commit


def default_groups(project: Path) -> tuple[str, ...]:
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    return tuple(pyproject["tool"]["uv"]["default-groups"])


def make(project: Path, env: Path, *args: str) -> dict[str, Any]:
    """Run a make target in the prepared venv; its command and wall seconds."""
    cmd = ["make", *args, "RUN="]
    start = time.perf_counter()
    run(cmd, cwd=project, env=with_path(env / "bin"))
    return {
        "command": f"cd {project} && PATH={env}/bin:$PATH {shlex.join(cmd)}",
        "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path("/tmp/bench-serving"))
    parser.add_argument("--env", type=Path, default=Path("/tmp/bench-serving-env"))
    parser.add_argument(
        "options",
        nargs=argparse.REMAINDER,
        help="passed to the project's bench/serving.py (default: its defaults), e.g. --duration 3",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("serving_level3: needs wrk (apt-get install --no-install-recommends wrk)")

    results: dict[str, Any] = {
        "render_command": shown(
            shlex.join(render(args.project, maturity_level=3, deploy_target="kubernetes"))
        )
    }
    results["install"] = install(args.project, args.env, groups=default_groups(args.project))
    commit(args.project)
    results["pipeline"] = make(args.project, args.env, "pipeline")
    results["promote"] = make(args.project, args.env, "promote", "REASON=benchmark")

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        output = Path(tmp) / "serving.json"
        options = [option for option in args.options if option != "--"]
        cmd = [
            "make",
            "serve-bench",
            "RUN=",
            f"ARGS={shlex.join([*options, '--json', str(output)])}",
        ]
        start = time.perf_counter()
        proc = run(cmd, cwd=args.project, env=with_path(args.env / "bin"))
        seconds = time.perf_counter() - start
        command = f"cd {args.project} && PATH={args.env}/bin:$PATH {shlex.join(cmd)}"
        lines = proc.stdout.splitlines()  # make's echo of the command, then the tables
        first = next(index for index, line in enumerate(lines) if line.startswith("|"))
        results["serve_bench"] = {
            "command": command.replace(str(output), "serving.json"),
            "seconds": round(seconds, 1),
            "table": "\n".join(lines[first:]),
            "results": json.loads(output.read_text()),
        }
    print(results["serve_bench"]["table"])
    save("serving_level3", results)


if __name__ == "__main__":
    main()
