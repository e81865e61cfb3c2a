"""What the destination folder already holds, and the rules that protect it.

- `copier copy` into a folder that already has files the template writes is refused before
  anything is written; a folder with only unrelated files gets a warning.
- An answer that names a path (`package_name`) cannot change over an existing project: the
  template would write the new folder and leave the old one, with the team's code, behind.
- Team-owned files the team deleted stay deleted in an update. Copier re-creates missing
  `_skip_if_exists` files on purpose; `deleted_team_files` feeds `_exclude` instead.
- After an update, the conflicts copier left (it exits 0 and names none).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from copier_template_extensions import ContextHook

# libyaml's loader when PyYAML has it: copier.yml parses in a tenth of the time.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Answers that name folders or files of the generated project.
PATH_ANSWERS = ("package_name",)
RENAME_GUIDE = "docs/ownership.md, 'Renaming the package'"
CONFLICT_MARKER = "<<<<<<< before updating"

_warned: set[Path] = set()


class Refusal(SystemExit):
    """Stops copier with one line and exit status 1, before anything is written.

    Not copier's UserMessageError: the hook also runs while copier re-validates recorded answers,
    where copier catches every Exception and silently drops the answer instead. SystemExit
    passes through, and Python prints its message alone.
    """


@cache
def template_settings(template_root: str) -> Mapping[str, Any]:
    settings: Mapping[str, Any] = yaml.load(
        (Path(template_root) / "copier.yml").read_text(), Loader=SAFE_LOADER
    )
    return settings


def answers_file(conf: Mapping[str, Any]) -> str:
    """The answers file name copier.yml sets. Not `conf["answers_file"]`: rendering that
    would run this hook again from inside itself."""
    return str(template_settings(str(conf["src_path"])).get("_answers_file", ".copier-answers.yml"))


@cache
def template_entries(template_root: str, answers_name: str) -> frozenset[str]:
    """Top-level names the template writes into a project (`.jinja` suffix removed)."""
    folder = Path(template_root) / template_settings(template_root).get("_subdirectory", "")
    names = set()
    for entry in folder.iterdir():
        name = entry.name.removesuffix(".jinja")
        names.add(answers_name if "_copier_conf.answers_file" in name else name)
    return frozenset(names)


def check_empty_destination(conf: Mapping[str, Any]) -> None:
    """Refuse a copy over files the template writes, unless `--overwrite` was given."""
    dst = Path(conf["dst_path"]).resolve()
    if conf.get("overwrite") or not dst.is_dir():
        return
    present = {entry.name for entry in dst.iterdir()} - {".git"}
    if not present:
        return
    clashes = sorted(present & template_entries(str(conf["src_path"]), answers_file(conf)))
    if clashes:
        raise Refusal(
            f"{dst} is not empty: it already holds {', '.join(clashes)}, which the template "
            "writes. Copy into a new or empty folder, or pass --overwrite to write the "
            "template's files over them (team-owned files that exist are kept)."
        )
    if dst not in _warned:
        _warned.add(dst)
        print(
            f"Warning: {dst} already holds {', '.join(sorted(present))}; the template adds its "
            "files beside them.",
            file=sys.stderr,
        )


@cache
def recorded_answers(answers_path: Path, modified: float) -> Mapping[str, Any]:
    """The answers a project recorded (cached per file version: hooks run many times)."""
    return yaml.load(answers_path.read_text(), Loader=SAFE_LOADER) or {}


def check_path_answers(context: Mapping[str, Any]) -> None:
    """Refuse to change an answer that names a path of an existing project."""
    conf = context["_copier_conf"]
    answers_path = Path(conf["dst_path"]) / answers_file(conf)
    if not answers_path.is_file():
        return
    recorded = recorded_answers(answers_path.resolve(), answers_path.stat().st_mtime)
    for name in PATH_ANSWERS:
        old, new = recorded.get(name), context.get(name)
        if old and new and str(old) != str(new):
            raise Refusal(
                f"{name} cannot change from {old!r} to {new!r} in an update: the template would "
                f"write src/{new}/ and leave src/{old}/, with your code, behind. Rename the "
                f"package in the project first, then update (see {RENAME_GUIDE})."
            )


def _git(dst: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=dst, capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout


def deleted_team_files(patterns: Iterable[str], conf: Mapping[str, Any], operation: str) -> str:
    """Team-owned paths that the project's git history holds and its work tree no longer does,
    one per line: what `_exclude` leaves out of an update. Empty outside an update."""
    dst = Path(conf["dst_path"])
    if operation != "update" or not (dst / answers_file(conf)).is_file():
        return ""
    pathspecs = [f":(glob){pattern}" for pattern in patterns]
    history = _git(dst, "log", "--format=", "--name-only", "--relative", "--", *pathspecs)
    if history is None:
        return ""
    return "\n".join(sorted({p for p in history.splitlines() if p and not (dst / p).exists()}))


def update_outcome(conf: Mapping[str, Any]) -> str:
    """What an update left to resolve, as lines for `_message_after_update`."""
    dst = Path(conf["dst_path"])
    unmerged = (_git(dst, "diff", "--name-only", "--diff-filter=U") or "").splitlines()
    untracked = _git(dst, "ls-files", "--others", "--exclude-standard") or ""
    rejected = [path for path in untracked.splitlines() if path.endswith(".rej")]
    if not unmerged and not rejected:
        return "Update finished without conflicts. Review it with `git diff`, then commit."
    lines = []
    if unmerged:
        lines.append(f"Update finished with conflicts in {len(unmerged)} file(s):")
        lines += [f"  {path}" for path in unmerged]
        lines.append(
            f"Resolve the `{CONFLICT_MARKER}` blocks, `git add` each file, then commit. "
            "List them again with `git diff --name-only --diff-filter=U`."
        )
    if rejected:
        lines.append(f"Update left {len(rejected)} rejected change(s) to apply by hand:")
        lines += [f"  {path}" for path in rejected]
        lines.append("Apply what you want of each .rej file, delete it, then commit.")
    return "\n".join(lines)


class DestinationGuard(ContextHook):
    """Runs the destination checks while copier asks its questions (every render then: a
    folder listing and a cached read), so they fire before anything is written."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        environment.filters.update(
            deleted_team_files=deleted_team_files, update_outcome=update_outcome
        )

    def hook(self, context: dict[str, Any]) -> None:
        if str(context.get("_copier_phase")) != "prompt":
            return
        check_empty_destination(context["_copier_conf"])
        check_path_answers(context)
