"""What the destination folder already holds, and the rules that protect it.

- `copier copy` into a folder that already has files the template writes is refused before
  anything is written; a folder with only unrelated files gets a warning.
- An answer that names a path (`package_name`) cannot change over an existing project: the
  template would write the new folder and leave the old one, with the team's code, behind.
- An update whose answers turn generated components off (a lower `maturity_level`, another
  `orchestrator` or `deploy_target`) is refused while the project still has their files, unless
  `-d remove_components=true` asks for the deletion.
- Team-owned files the team deleted stay deleted in an update. Copier re-creates missing
  `_skip_if_exists` files on purpose; `deleted_team_files` feeds `_exclude` instead.
- After an update, the conflicts copier left (it exits 0 and names none).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from copier_template_extensions import ContextHook

# libyaml's loader when PyYAML has it: copier.yml parses in a tenth of the time.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Answers that name folders or files of the generated project.
PATH_ANSWERS = ("package_name",)
RENAME_GUIDE = "docs/ownership.md, 'Renaming the package'"
CONFLICT_MARKER = "<<<<<<< before updating"
# The data answer (a copier.yml question that is never asked) that lets an update delete
# components, and how many of their paths a refusal names.
REMOVE_ANSWER = "remove_components"
REMOVAL_GUIDE = "docs/ownership.md, 'Removing components'"
SHOWN_PATHS = 3

_warned: set[Path] = set()


class Refusal(SystemExit):
    """Stops copier with one line and exit status 1, before anything is written.

    Not copier's UserMessageError: the hook also runs while copier re-validates recorded answers,
    where copier catches every Exception and silently drops the answer instead. SystemExit
    passes through, and Python prints its message alone.
    """


def _sibling(name: str) -> ModuleType:
    """Another module of extensions/, loaded by path as copier's extension loader does (the
    folder is not importable): level gating then stays in context.py alone."""
    spec = importlib.util.spec_from_file_location(
        f"{__name__}_{name}", Path(__file__).with_name(f"{name}.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gating = _sibling("context")


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


def project_answers(conf: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The answers the destination project recorded; None when it is no project yet."""
    answers_path = Path(conf["dst_path"]) / answers_file(conf)
    if not answers_path.is_file():
        return None
    return recorded_answers(answers_path.resolve(), answers_path.stat().st_mtime)


def check_path_answers(context: Mapping[str, Any]) -> None:
    """Refuse to change an answer that names a path of an existing project."""
    recorded = project_answers(context["_copier_conf"])
    if recorded is None:
        return
    for name in PATH_ANSWERS:
        old, new = recorded.get(name), context.get(name)
        if old and new and str(old) != str(new):
            raise Refusal(
                f"{name} cannot change from {old!r} to {new!r} in an update: the template would "
                f"write src/{new}/ and leave src/{old}/, with your code, behind. Rename the "
                f"package in the project first, then update (see {RENAME_GUIDE})."
            )


def copier_operation() -> str:
    """'copy' or 'update'. Copier puts `_copier_operation` in the context of `_exclude` and
    tasks only, not while prompting, so read its own context variable ('' if that moved)."""
    variable = getattr(sys.modules.get("copier._main"), "_operation", None)
    return str(variable.get("")) if variable is not None else ""


def as_flag(value: Any) -> bool:
    """A bool answer: while prompting, a `-d` answer is still the raw CLI string ('true')."""
    return str(value).strip().lower() in {"true", "yes", "y", "on", "1"}


def outermost(paths: Iterable[str]) -> list[str]:
    """The paths that no other of them contains (`deploy` covers `deploy/k8s`), in order."""
    paths = list(paths)
    return [p for p in paths if not any(p.startswith(f"{other}/") for other in paths)]


def answer_text(name: str, value: Any) -> str:
    """An answer as the user typed it: a recorded level is 3, a `-d` level still '3'."""
    return str(gating.as_level(value)) if name == "maturity_level" else str(value)


def changed_answers(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """`name old -> new` for each gating answer that differs."""
    pairs = [
        (name, answer_text(name, old[name]), answer_text(name, new[name]))
        for name in gating.GATING_ANSWERS
        if name in old and name in new
    ]
    return [f"{name} {before} -> {after}" for name, before, after in pairs if before != after]


def check_removed_components(context: Mapping[str, Any]) -> None:
    """Refuse an update whose answers turn off components the project still has files of,
    unless `-d remove_components=true` asks for it: copier would delete them silently.

    Copy never deletes, so only updates are checked. Without files left (the team deleted
    them), nothing would be lost and the update goes on.
    """
    conf = context["_copier_conf"]
    recorded = project_answers(conf)
    if recorded is None or copier_operation() == "copy":
        return
    new = {name: context[name] for name in gating.GATING_ANSWERS if name in context}
    # An answer the project did not record (a question its level never asked) counts as unchanged.
    old = {**new, **{name: recorded[name] for name in gating.GATING_ANSWERS if name in recorded}}
    package = str(recorded.get("package_name") or context.get("package_name", ""))
    removed = gating.removed_paths(gating.flags_of(old), gating.flags_of(new), package)
    if not removed or as_flag(context.get(REMOVE_ANSWER, False)):
        return
    dst = Path(conf["dst_path"])
    present = [path for path in removed if (dst / path).exists()]
    paths = outermost(present)
    # Only tracked files can be template files: caches left in a deleted folder do not count.
    listed = _git(dst, "ls-files", "-z", "--", *paths) if paths else ""
    files = paths if listed is None else [name for name in listed.split("\0") if name]
    if files:
        components = dict.fromkeys(flag for path in present for flag in removed[path])
        raise Refusal(
            removal_refusal(changed_answers(old, new), list(components), files, paths, dst)
        )


def removal_refusal(
    changes: list[str], components: list[str], files: list[str], paths: list[str], dst: Path
) -> str:
    """The one paragraph that refuses a deletion: what changed, what would go, how to do it."""
    shown = [f"{path}/" if (dst / path).is_dir() else path for path in paths[:SHOWN_PATHS]]
    hidden = len(paths) - len(shown)
    more = f" and {hidden} more path{'s' if hidden > 1 else ''}" if hidden else ""
    return (
        f"This update ({', '.join(changes)}) would delete {', '.join(components)}: "
        f"{len(files)} tracked file{'s' if len(files) > 1 else ''} in {', '.join(shown)}{more}. "
        f"Nothing has changed. To delete them on purpose, update again with "
        f"`-d {REMOVE_ANSWER}=true` and review `git status` before you commit (see "
        f"{REMOVAL_GUIDE})."
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
        check_removed_components(context)
