"""Benchmark: wall time of `copier copy` per maturity level, next to a trivial template.

Both templates are rendered from the same two kinds of source, a tagged git repository (how a
released template is used) and a plain folder, with the same copier command, so the difference
is what this template's questions, extensions and files cost on top of copier itself.
Levels that copier refuses (not implemented yet) are recorded with copier's message.

    .venv/bin/python bench/render_time.py --runs 10
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml
from common import COPIER, REPO, run, save, shown, summary, timed

TEMPLATE_PATHS = ("copier.yml", "extensions", "template")
TRIVIAL_COPIER_YML = """\
_subdirectory: template
project_name:
  type: str
  default: Bench Project
"""
TRIVIAL_FILE = "# {{ project_name }}\n"


def levels() -> list[int]:
    """Every level copier.yml offers as a choice, implemented or not."""
    spec = yaml.safe_load((REPO / "copier.yml").read_text())["maturity_level"]
    choices = spec["choices"].values()
    return [value["value"] if isinstance(value, dict) else value for value in choices]


def golden_path_folder(dst: Path) -> Path:
    """The template as it is in the working tree now, without git."""
    dst.mkdir(parents=True)
    for name in TEMPLATE_PATHS:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dst / name)
    return dst


def trivial_folder(dst: Path) -> Path:
    """The smallest useful copier template: one question, one templated file."""
    (dst / "template").mkdir(parents=True)
    (dst / "copier.yml").write_text(TRIVIAL_COPIER_YML)
    (dst / "template" / "README.md.jinja").write_text(TRIVIAL_FILE)
    return dst


def tagged_repo(folder: Path, dst: Path) -> Path:
    """A copy of `folder` committed and tagged, as copier sees a released template."""
    shutil.copytree(folder, dst)
    git = ["git", "-C", str(dst), "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    run([*git, "init", "-q"])
    run([*git, "add", "-A"])
    run([*git, "commit", "-q", "-m", "snapshot"])
    run([*git, "tag", "1.0.0"])
    return dst


def copy_command(src: Path, dst: Path, data: dict[str, Any]) -> list[str]:
    answers = [arg for key, value in data.items() for arg in ("-d", f"{key}={value}")]
    return [COPIER, "copy", "--trust", "--defaults", "--quiet", *answers, str(src), str(dst)]


def measure(src: Path, data: dict[str, Any], runs: int, scratch: Path) -> dict[str, Any]:
    samples = []
    for index in range(runs):
        dst = scratch / f"out-{index}"
        cmd = copy_command(src, dst, data)
        try:
            samples.append(timed(cmd))
        except RuntimeError as error:
            return {"command": shown_command(src, data, scratch), "refused": refusal(str(error))}
        finally:
            shutil.rmtree(dst, ignore_errors=True)
    return {"command": shown_command(src, data, scratch), **summary(samples)}


def shown_command(src: Path, data: dict[str, Any], scratch: Path) -> str:
    """The command as run from the repository root, with $TMP for this run's scratch folder."""
    return shown(shlex.join(copy_command(src, scratch / "out", data)), scratch)


def refusal(output: str) -> str:
    """The line of copier's error output that says why an answer was rejected."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    reasons = [line for line in lines if "not available" in line or "Validation error" in line]
    return (reasons or lines)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per case (median)")
    args = parser.parse_args()

    results: dict[str, Any] = {"runs_per_case": args.runs, "cases": []}
    with tempfile.TemporaryDirectory(prefix="bench-render-") as tmp:
        scratch = Path(tmp)
        sources = {
            "golden-path": golden_path_folder(scratch / "golden-path-folder"),
            "trivial": trivial_folder(scratch / "trivial-folder"),
        }
        for name, folder in sources.items():
            repo = tagged_repo(folder, scratch / f"{name}-repo")
            for kind, src in (("git tag", repo), ("folder", folder)):
                cases = [{"project_name": "Bench Project"}]
                if name == "golden-path":
                    cases = [{**cases[0], "maturity_level": level} for level in levels()]
                for data in cases:
                    result = measure(src, data, args.runs, scratch)
                    level = data.get("maturity_level")
                    results["cases"].append(
                        {"template": name, "source": kind, "level": level, **result}
                    )
                    outcome = result.get("median_s", result.get("refused"))
                    print(f"{name:12} {kind:8} level={level}: {outcome}")
    save("render_time", results)


if __name__ == "__main__":
    main()
