"""Helpers shared by the benchmarks: timing subprocesses, the machine, and result files.

Every script records the exact command behind each number, so docs/benchmarks.md can quote it.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
VENV_BIN = REPO / ".venv" / "bin"
COPIER = str(VENV_BIN / "copier")
# Where uv finds torch's CPU build on this machine; without it uv fetches PyPI's CUDA build (GBs).
WHEELS = os.environ.get("PIP_FIND_LINKS", "/opt/wheels")
# Measure what a developer's machine does: Python caches compiled bytecode (__pycache__/) on the
# first import and reads it afterwards. Some sandboxes and CI images set this variable, and then
# every command compiles every module it imports from source again (4 s of a cached pipeline run).
BYTECODE_OFF = os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def run(
    cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command, fail loudly with its output if it fails."""
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def timed(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> float:
    """Wall-clock seconds of one successful run of `cmd`."""
    start = time.perf_counter()
    run(cmd, cwd=cwd, env=env)
    return time.perf_counter() - start


def shown(command: str, scratch: str | Path | None = None) -> str:
    """A command as quoted in the docs: paths relative to the repository root, $TMP for scratch."""
    if scratch is not None:
        command = command.replace(str(scratch), "$TMP")
    return command.replace(f"{REPO}/", "").replace(str(REPO), ".")


def summary(samples: list[float]) -> dict[str, Any]:
    return {
        "runs": len(samples),
        "median_s": round(statistics.median(samples), 3),
        "min_s": round(min(samples), 3),
        "max_s": round(max(samples), 3),
        "samples_s": [round(s, 3) for s in samples],
    }


def with_path(bin_dir: Path) -> dict[str, str]:
    """The current environment with `bin_dir` first on PATH (a prepared venv, no activation)."""
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["VIRTUAL_ENV"] = str(bin_dir.parent)
    return env


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    uv = shutil.which("uv")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_gib, 1),
        "gpu": shutil.which("nvidia-smi") is not None,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "uv": run([uv, "--version"]).stdout.strip() if uv else None,
        "copier": run([COPIER, "--version"]).stdout.strip(),
        "pythondontwritebytecode_unset_for_the_runs": BYTECODE_OFF is not None,
        # Other work on the machine skews timings: 1, 5 and 15 minute load when results were saved.
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }


def save(name: str, data: dict[str, Any]) -> Path:
    """Write one benchmark's results (with the machine) to bench/results/<name>.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {"benchmark": name, "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), **data}
    data["machine"] = machine()
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path.relative_to(REPO)}")
    return path
