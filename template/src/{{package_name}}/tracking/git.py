"""The code version of a run: git commit and whether the work tree had uncommitted changes."""

from __future__ import annotations

import subprocess
from pathlib import Path

UNKNOWN = "unknown"


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=10
    )
    return result.stdout.strip()


def git_tags(root: str | Path) -> dict[str, str]:
    """MLflow tags for the repository at `root`; `unknown` values outside a git repository."""
    try:
        commit = _git(Path(root), "rev-parse", "HEAD")
        dirty = bool(_git(Path(root), "status", "--porcelain"))
    except (OSError, subprocess.SubprocessError):  # no git, no repository, or no commit yet
        return {"git.commit": UNKNOWN, "git.dirty": UNKNOWN}
    return {
        "git.commit": commit,
        "git.dirty": str(dirty).lower(),
        "mlflow.source.git.commit": commit,  # the field MLflow's UI shows
    }
