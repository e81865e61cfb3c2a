"""Updates: a project generated at template 1.0.0, edited by its team, updated to 2.0.0.

pytest-copier's update() cannot pass vcs_ref or conflict, so these tests build their own template
repositories (a copy of the template's paths, committed and tagged) and call copier directly.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable
from pathlib import Path

import copier
import pytest
import yaml
from helpers import (
    PACKAGE,
    TOOLS_BIN,
    copier_config,
    git,
    git_commit_all,
    init_repo,
    make_template_repo,
    project_files,
    render,
    run,
    tool,
)

pytestmark = pytest.mark.slow

NETWORK = f"src/{PACKAGE}/models/network.py"  # team-owned model code
CONFIG = "configs/trainer/default.yaml"  # platform-owned default config

# --- what the team does to its project --------------------------------------------------------

USER_MODEL_CODE = '''

def team_residual_block(width: int) -> int:
    """Our own addition to the model code."""
    return width * 2
'''
USER_FILE = f"src/{PACKAGE}/models/team_head.py"
USER_FILE_TEXT = '"""A module the team added; the template knows nothing about it."""\n\nTEAM = 1\n'


def set_line(path: Path, key: str, line: str) -> None:
    """Replace the one top-level `key: ...` line of a YAML file with `line`."""
    text = path.read_text()
    pattern = re.compile(rf"^{re.escape(key)}:.*$", flags=re.MULTILINE)
    assert len(pattern.findall(text)) == 1, f"{path}: expected one {key!r} line"
    path.write_text(pattern.sub(line, text))


def answers_of(project: Path) -> dict:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


def update(project: Path, vcs_ref: str, conflict: str = "inline", **data: object) -> None:
    copier.run_update(
        project,
        data=data or None,
        vcs_ref=vcs_ref,
        defaults=True,
        overwrite=True,
        unsafe=True,
        quiet=True,
        conflict=conflict,  # type: ignore[arg-type]
    )


@pytest.fixture
def template_repo(tmp_path: Path) -> Path:
    return make_template_repo(tmp_path / "template", tag="1.0.0")


@pytest.fixture
def project(template_repo: Path, tmp_path: Path) -> Path:
    """A project copied from template 1.0.0, committed as the team would."""
    dst = render(template_repo, tmp_path / "project")
    assert answers_of(dst)["_commit"] == "1.0.0"
    assert answers_of(dst)["_src_path"] == str(template_repo)
    return init_repo(dst, "Generate from mlops-golden-path 1.0.0")


def release(template_repo: Path, tag: str, change: Callable[[Path], None]) -> None:
    """Change the template's source files, commit and tag a new version."""
    change(template_repo / "template")
    git_commit_all(template_repo, f"Template {tag}")
    git(template_repo, "tag", tag)


def conflicted_files(project: Path) -> list[str]:
    return git(project, "diff", "--name-only", "--diff-filter=U").splitlines()


# --- the team's edits and the template's next release -----------------------------------------

USER_MAX_EPOCHS = "max_epochs: 40  # our data needs longer training"
TEMPLATE_MAKE_TARGET = "\ncheck: lint test ## Lint and test (added in template 2.0.0)\n"
TEMPLATE_TRAINER_ADDITION = "gradient_clip_val: 0.5  # added in template 2.0.0\n"
TEMPLATE_NETWORK_ADDITION = "\n\n# Template 2.0.0 changed the starter network.\n"


def team_edits(project: Path) -> dict[str, str]:
    """Edit the model code (team-owned) and a default config (platform-owned), add a file, commit.

    Returns the text of each touched file as the team committed it."""
    network = project / NETWORK
    network.write_text(network.read_text() + USER_MODEL_CODE)
    set_line(project / CONFIG, "max_epochs", USER_MAX_EPOCHS)
    (project / USER_FILE).write_text(USER_FILE_TEXT)
    git_commit_all(project, "Team: own model block, longer training, a new head")
    return {path: (project / path).read_text() for path in (NETWORK, CONFIG, USER_FILE)}


def platform_release(template: Path) -> None:
    """Template 2.0.0: a new Makefile target, a new trainer default, a changed starter network."""
    makefile = template / "Makefile.jinja"
    makefile.write_text(makefile.read_text() + TEMPLATE_MAKE_TARGET)
    trainer = template / CONFIG
    trainer.write_text(trainer.read_text() + TEMPLATE_TRAINER_ADDITION)
    network = template / "src" / "{{package_name}}" / "models" / "network.py"
    network.write_text(network.read_text() + TEMPLATE_NETWORK_ADDITION)


def changed_files(project: Path) -> list[str]:
    """Files the update changed or added (against the last commit)."""
    changed = git(project, "diff", "--name-only", "HEAD").splitlines()
    added = git(project, "ls-files", "--others", "--exclude-standard").splitlines()
    return sorted(set(changed + added))


def assert_no_conflict_left(project: Path) -> None:
    assert conflicted_files(project) == []
    assert list(project.rglob("*.rej")) == []
    # (docs/ownership.md shows what a conflict looks like: only files the update touched count)
    marked = [
        path
        for path in changed_files(project)
        if re.search(r"^<<<<<<< |^>>>>>>> ", (project / path).read_text(), flags=re.MULTILINE)
    ]
    assert marked == []


def test_update_keeps_team_edits_and_brings_template_changes(
    template_repo: Path, project: Path
) -> None:
    edited = team_edits(project)
    release(template_repo, "2.0.0", platform_release)

    update(project, "2.0.0")

    assert answers_of(project)["_commit"] == "2.0.0"
    # team-owned model code: exactly as the team left it; the template's new starter stays out
    assert (project / NETWORK).read_text() == edited[NETWORK]
    # the team's own file is untouched
    assert (project / USER_FILE).read_text() == USER_FILE_TEXT
    # platform config: the team's edit and the template's addition, merged
    trainer = (project / CONFIG).read_text()
    assert USER_MAX_EPOCHS in trainer
    assert TEMPLATE_TRAINER_ADDITION in trainer
    assert yaml.safe_load(trainer)["max_epochs"] == 40
    assert yaml.safe_load(trainer)["gradient_clip_val"] == 0.5
    # platform file the team did not touch: the template change arrives
    assert TEMPLATE_MAKE_TARGET in (project / "Makefile").read_text()
    assert_no_conflict_left(project)


@pytest.mark.parametrize("conflict", ["inline", "rej"])
def test_update_reports_a_real_conflict(template_repo: Path, project: Path, conflict: str) -> None:
    """The template changes the very line the team changed: a conflict, nothing silently lost."""
    edited = team_edits(project)

    def release_changing_the_same_line(template: Path) -> None:
        platform_release(template)
        set_line(template / CONFIG, "max_epochs", "max_epochs: 20")

    release(template_repo, "2.0.0", release_changing_the_same_line)

    update(project, "2.0.0", conflict=conflict)

    assert answers_of(project)["_commit"] == "2.0.0"
    assert (project / NETWORK).read_text() == edited[NETWORK]
    assert (project / USER_FILE).read_text() == USER_FILE_TEXT
    assert TEMPLATE_MAKE_TARGET in (project / "Makefile").read_text()
    trainer = (project / CONFIG).read_text()
    assert TEMPLATE_TRAINER_ADDITION in trainer  # the non-conflicting part still merged
    if conflict == "inline":
        # both sides in the file, between markers, and git knows the file is unmerged
        ours = re.search(
            r"^<<<<<<< [^\n]*\n(.*)^=======\n(.*)^>>>>>>> [^\n]*$",
            trainer,
            flags=re.MULTILINE | re.DOTALL,
        )
        assert ours, trainer
        assert USER_MAX_EPOCHS in ours.group(1)
        assert "max_epochs: 20" in ours.group(2)
        assert conflicted_files(project) == [CONFIG]
        assert list(project.rglob("*.rej")) == []
    else:
        # the file takes the template's line; the team's rejected hunk waits in a .rej file
        assert "<<<<<<<" not in trainer
        assert "max_epochs: 20" in trainer
        rejected = project / f"{CONFIG}.rej"
        assert rejected.is_file()
        assert f"+{USER_MAX_EPOCHS}" in rejected.read_text()
        assert [p.relative_to(project).as_posix() for p in project.rglob("*.rej")] == [
            f"{CONFIG}.rej"
        ]


def update_cli(project: Path, *args: str) -> str:
    """`copier update` as a person runs it; returns what it printed on stderr."""
    command = [tool("copier"), "update", "--trust", "--defaults", *args]
    return run(command, project).stderr


@pytest.mark.parametrize("conflict", ["inline", "rej"])
def test_update_says_where_it_left_conflicts(
    template_repo: Path, project: Path, conflict: str
) -> None:
    """copier exits 0 and names no conflict itself: the template's closing message does."""
    team_edits(project)

    def release_changing_the_same_line(template: Path) -> None:
        platform_release(template)
        set_line(template / CONFIG, "max_epochs", "max_epochs: 20")

    release(template_repo, "2.0.0", release_changing_the_same_line)

    stderr = update_cli(project, "--vcs-ref=2.0.0", f"--conflict={conflict}")

    if conflict == "inline":
        expected = [
            "Update finished with conflicts in 1 file(s):",
            f"  {CONFIG}",
            "Resolve the `<<<<<<< before updating` blocks, `git add` each file, then commit. "
            "List them again with `git diff --name-only --diff-filter=U`.",
        ]
    else:
        expected = [
            "Update left 1 rejected change(s) to apply by hand:",
            f"  {CONFIG}.rej",
            "Apply what you want of each .rej file, delete it, then commit.",
        ]
    assert stderr.strip().splitlines()[-3:] == expected


def test_update_without_conflicts_says_so(template_repo: Path, project: Path) -> None:
    team_edits(project)
    release(template_repo, "2.0.0", platform_release)
    stderr = update_cli(project, "--vcs-ref=2.0.0")
    assert stderr.strip().splitlines()[-1] == (
        "Update finished without conflicts. Review it with `git diff`, then commit."
    )
    assert_no_conflict_left(project)


def test_reanswering_a_question_at_the_same_version(template_repo: Path, project: Path) -> None:
    edited = team_edits(project)

    update(project, "1.0.0", description="Churn prediction, now with a better description.")

    answers = answers_of(project)
    assert answers["_commit"] == "1.0.0"
    assert answers["description"] == "Churn prediction, now with a better description."
    pyproject = (project / "pyproject.toml").read_text()
    assert 'description = "Churn prediction, now with a better description."' in pyproject
    for path, text in edited.items():
        assert (project / path).read_text() == text, path
    assert_no_conflict_left(project)


def test_update_to_the_same_version_changes_nothing(template_repo: Path, project: Path) -> None:
    """Rendering is reproducible: an update without changes leaves a clean working tree."""
    team_edits(project)
    update(project, "1.0.0")
    assert git(project, "status", "--porcelain") == ""


def generated_team_files(project: Path) -> dict[str, list[str]]:
    """Each team-owned pattern of copier.yml with the generated files it matches."""
    files = project_files(project)
    return {
        pattern: [path for path in files if fnmatch.fnmatchcase(path, pattern)]
        for pattern in (
            raw.replace("{{ package_name }}", PACKAGE) for raw in copier_config()["_skip_if_exists"]
        )
    }


NEW_STARTER = "configs/experiment/added_in_2.yaml"  # a team-owned starter new in template 2.0.0


def test_deleted_team_files_stay_deleted_on_every_update(
    template_repo: Path, project: Path
) -> None:
    """docs/ownership.md promises: a team-owned file the team deleted is not brought back, by
    this update or the next; a team-owned starter that is new in the template still arrives."""
    owned = generated_team_files(project)
    # configs/local/ holds personal, git-ignored files: the template generates none there;
    # data/sample/ (sample inputs for batch scoring) comes with Level 3
    empty = [pattern for pattern, files in owned.items() if not files]
    assert empty == ["configs/local/*.yaml", "data/sample/*.csv"]
    deleted = sorted(path for files in owned.values() for path in files)
    for path in deleted:
        (project / path).unlink()
    git_commit_all(project, "Team: drop every team-owned starter")

    def release_with_a_new_starter(template: Path) -> None:
        platform_release(template)
        (template / NEW_STARTER).write_text("# @package _global_\ntrainer:\n  max_epochs: 3\n")

    release(template_repo, "2.0.0", release_with_a_new_starter)
    update(project, "2.0.0")

    assert [path for path in deleted if (project / path).exists()] == []
    assert (project / NEW_STARTER).is_file()
    assert TEMPLATE_MAKE_TARGET in (project / "Makefile").read_text()
    assert_no_conflict_left(project)
    git_commit_all(project, "Update to 2.0.0")

    release(
        template_repo,
        "3.0.0",
        lambda t: (t / "Makefile.jinja").write_text(
            (t / "Makefile.jinja").read_text() + "\n# template 3.0.0\n"
        ),
    )
    update(project, "3.0.0")

    assert [path for path in deleted if (project / path).exists()] == []
    assert "# template 3.0.0" in (project / "Makefile").read_text()
    assert answers_of(project)["_commit"] == "3.0.0"


NEW_PACKAGE = "churn_model"


def test_changing_the_package_name_in_an_update_is_refused_and_changes_nothing(
    template_repo: Path, project: Path
) -> None:
    team_edits(project)
    release(template_repo, "2.0.0", platform_release)
    rename = f"--data=package_name={NEW_PACKAGE}"
    command = [tool("copier"), "update", "--trust", "--defaults", "--vcs-ref=2.0.0", rename]
    proc = run(command, project, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"package_name cannot change from '{PACKAGE}' to '{NEW_PACKAGE}' in an update: the "
        f"template would write src/{NEW_PACKAGE}/ and leave src/{PACKAGE}/, with your code, "
        "behind. Rename the package in the project first, then update (see docs/ownership.md, "
        "'Renaming the package')."
    )
    assert "Traceback" not in proc.stderr
    assert git(project, "status", "--porcelain", "--untracked-files=all") == ""
    assert answers_of(project)["package_name"] == PACKAGE


def bash_block_after(markdown: str, heading: str) -> str:
    section = markdown.split(f"## {heading}\n", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    assert block, f"no bash block under {heading!r}"
    return block.group(1)


def test_the_documented_package_rename_keeps_the_team_code_through_an_update(
    template_repo: Path, project: Path
) -> None:
    """docs/ownership.md's recipe, run as written: the package moves with the team's edits and
    modules, and the next update merges into the new place without conflicts."""
    edited = team_edits(project)
    release(template_repo, "2.0.0", platform_release)
    recipe = bash_block_after((project / "docs/ownership.md").read_text(), "Renaming the package")
    recipe = recipe.replace("new=your_new_name", f"new={NEW_PACKAGE}")
    env = {**os.environ, "PATH": f"{TOOLS_BIN}{os.pathsep}{os.environ['PATH']}"}

    run(["bash", "-euo", "pipefail", "-c", recipe], project, env=env)

    assert answers_of(project)["package_name"] == NEW_PACKAGE
    assert answers_of(project)["_commit"] == "2.0.0"
    assert not (project / "src" / PACKAGE).exists()
    moved = {path: path.replace(PACKAGE, NEW_PACKAGE) for path in edited}
    assert (project / moved[USER_FILE]).read_text() == USER_FILE_TEXT
    assert (project / moved[NETWORK]).read_text() == edited[NETWORK]
    assert TEMPLATE_MAKE_TARGET in (project / "Makefile").read_text()
    assert f'"{NEW_PACKAGE}.training.train:main"' in (project / "pyproject.toml").read_text()
    assert USER_MAX_EPOCHS in (project / CONFIG).read_text()
    assert_no_conflict_left(project)
    leftovers = run(["git", "grep", "-lF", PACKAGE], project, check=False)
    assert leftovers.stdout == ""


LEVEL_STATEMENT = re.compile(r"\bLevel [1-4]\b")


def files_stating_a_level(project: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in project_files(project):
        try:
            text = (project / path).read_text()
        except UnicodeDecodeError:
            continue
        if levels := set(LEVEL_STATEMENT.findall(text)):
            found[path] = levels
    return found


def test_after_a_level_up_nothing_states_the_old_level(template_repo: Path, project: Path) -> None:
    """Level statements live only in platform-owned files, which the level-up rewrites."""
    team_owned = [path for files in generated_team_files(project).values() for path in files]
    before = files_stating_a_level(project)
    assert before.get("docs/golden-path.md") == {"Level 1"}
    assert not set(before) & set(team_owned), "a team-owned file states the level"

    update(project, "1.0.0", maturity_level=2)

    after = files_stating_a_level(project)
    assert [path for path, levels in after.items() if "Level 1" in levels] == []
    assert "Level 2, pipeline automation" in (project / "docs/golden-path.md").read_text()


def test_level_up_to_an_unavailable_level_is_refused_and_changes_nothing(
    template_repo: Path, project: Path
) -> None:
    team_edits(project)
    release(template_repo, "2.0.0", platform_release)
    with pytest.raises(ValueError, match="Level 4 is not available in this template version yet"):
        update(project, "2.0.0", maturity_level=4)
    assert git(project, "status", "--porcelain") == ""
    assert answers_of(project)["_commit"] == "1.0.0"
    assert answers_of(project)["maturity_level"] == 1


# --- updates that turn components off ---------------------------------------------------------

SERVING_PROJECT = {"maturity_level": 3, "deploy_target": "kubernetes"}
KUBEFLOW_PROJECT = {"maturity_level": 2, "orchestrator": "kubeflow"}
REMOVAL_HINT = (
    "Nothing has changed. To delete them on purpose, update again with "
    "`-d remove_components=true` and review `git status` before you commit (see "
    "docs/ownership.md, 'Removing components')."
)


def committed_project(template_repo: Path, folder: Path, **answers: object) -> Path:
    return init_repo(render(template_repo, folder, **answers), "Generate from mlops-golden-path")


def deleted_files(project: Path) -> list[str]:
    return git(project, "diff", "--name-only", "--diff-filter=D", "HEAD").splitlines()


def assert_unchanged(project: Path, answers: dict[str, object]) -> None:
    assert git(project, "status", "--porcelain", "--untracked-files=all") == ""
    recorded = answers_of(project)
    assert {name: recorded[name] for name in answers} == answers
    assert answers_of(project)["_commit"] == "1.0.0"


def test_a_level_down_is_refused_before_anything_changes(
    template_repo: Path, tmp_path: Path
) -> None:
    """Level 3 -> 2 would silently delete serving, monitoring and the manifests: refused (exit 1,
    one paragraph) with what would go and how to do it on purpose."""
    project = committed_project(template_repo, tmp_path / "project", **SERVING_PROJECT)
    level2 = render(template_repo, tmp_path / "level2", maturity_level=2)
    would_go = set(project_files(project)) - set(project_files(level2))

    command = [tool("copier"), "update", "--trust", "--defaults", "--data=maturity_level=2"]
    proc = run(command, project, check=False)

    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    # the count of paths follows OWNED_PATHS; the count of files is what the update would delete
    assert re.fullmatch(
        re.escape(
            "This update (maturity_level 3 -> 2) would delete serving, monitoring, kubernetes: "
            f"{len(would_go)} tracked files in src/{PACKAGE}/serving/, "
            f"src/{PACKAGE}/registry/promotion.py, deploy/ and "
        )
        + r"\d+ more paths\. "
        + re.escape(REMOVAL_HINT),
        proc.stderr.strip().splitlines()[-1],
    ), proc.stderr
    assert_unchanged(project, SERVING_PROJECT)


@pytest.mark.parametrize(
    ("start", "change", "summary", "paths"),
    [
        (
            SERVING_PROJECT,
            {"deploy_target": "none"},
            "deploy_target kubernetes -> none) would delete kubernetes",
            ["deploy/k8s/"],
        ),
        (
            KUBEFLOW_PROJECT,
            {"orchestrator": "local"},
            "orchestrator kubeflow -> local) would delete kubeflow",
            [f"src/{PACKAGE}/pipeline/kubeflow.py", "deploy/", ".dockerignore"],
        ),
    ],
    ids=["deploy_target", "orchestrator"],
)
def test_an_option_change_that_deletes_a_component_is_refused(
    template_repo: Path,
    tmp_path: Path,
    start: dict[str, object],
    change: dict[str, object],
    summary: str,
    paths: list[str],
) -> None:
    project = committed_project(template_repo, tmp_path / "project", **start)
    changed = render(template_repo, tmp_path / "changed", **{**start, **change})
    would_go = set(project_files(project)) - set(project_files(changed))

    with pytest.raises(SystemExit) as refusal:
        update(project, "1.0.0", **change)

    message = str(refusal.value)
    shown = ", ".join(paths)
    assert message.startswith(f"This update ({summary}: {len(would_go)} tracked files in {shown}")
    assert message.endswith(f". {REMOVAL_HINT}")
    assert_unchanged(project, start)


TEAM_SERVING_FILE = f"src/{PACKAGE}/serving/team_cache.py"


@pytest.mark.parametrize(
    "change", [{"maturity_level": 2}, {"deploy_target": "none"}], ids=["level", "deploy_target"]
)
def test_removing_components_on_purpose_deletes_exactly_them(
    template_repo: Path, tmp_path: Path, change: dict[str, object]
) -> None:
    """`-d remove_components=true`: the project holds what a fresh copy with the new answers
    holds, plus the team's own file in a removed folder; the answer itself is not recorded."""
    project = committed_project(template_repo, tmp_path / "project", **SERVING_PROJECT)
    (project / TEAM_SERVING_FILE).write_text(USER_FILE_TEXT)
    git_commit_all(project, "Team: a module of our own in serving/")
    fresh = render(template_repo, tmp_path / "fresh", **{**SERVING_PROJECT, **change})

    update(project, "1.0.0", remove_components=True, **change)

    assert set(project_files(project)) == set(project_files(fresh)) | {TEAM_SERVING_FILE}
    assert (project / TEAM_SERVING_FILE).read_text() == USER_FILE_TEXT
    assert deleted_files(project)
    recorded = answers_of(project)
    assert {name: recorded[name] for name in change} == change
    assert "remove_components" not in recorded
    assert conflicted_files(project) == []


def test_components_the_team_already_deleted_are_not_refused(
    template_repo: Path, tmp_path: Path
) -> None:
    """Nothing left to lose: files deleted and committed first, the update just goes on."""
    project = committed_project(template_repo, tmp_path / "project", **SERVING_PROJECT)
    git(project, "rm", "-rq", "deploy/k8s")
    git_commit_all(project, "Team: we deploy without Kubernetes manifests")

    update(project, "1.0.0", deploy_target="none")

    assert answers_of(project)["deploy_target"] == "none"
    assert not (project / "deploy/k8s").exists()
    assert deleted_files(project) == []


@pytest.mark.parametrize(
    ("start", "change"),
    [(SERVING_PROJECT, {}), (KUBEFLOW_PROJECT, {"maturity_level": 3})],
    ids=["version-at-level-3", "level-up-2-to-3"],
)
def test_updates_that_turn_nothing_off_are_not_refused(
    template_repo: Path, tmp_path: Path, start: dict[str, object], change: dict[str, object]
) -> None:
    project = committed_project(template_repo, tmp_path / "project", **start)
    release(template_repo, "2.0.0", platform_release)

    update(project, "2.0.0", **change)

    assert answers_of(project)["_commit"] == "2.0.0"
    assert deleted_files(project) == []
    assert TEMPLATE_MAKE_TARGET in (project / "Makefile").read_text()


DELETED_PLATFORM_FILE = "docs/golden-path.md"  # platform-owned, unchanged by platform_release


def test_deleted_platform_files_stay_deleted_even_when_the_template_changed_them(
    template_repo: Path, project: Path
) -> None:
    """docs/ownership.md: an update never brings back a platform file the team deleted, not
    even one the new version changed (the trainer default): deleting it was the team's choice."""
    for path in (DELETED_PLATFORM_FILE, CONFIG):
        (project / path).unlink()
    git_commit_all(project, "Team: drop a doc and the trainer default we replaced")
    release(template_repo, "2.0.0", platform_release)
    update(project, "2.0.0")
    assert not (project / DELETED_PLATFORM_FILE).exists()
    assert not (project / CONFIG).exists()
    assert TEMPLATE_MAKE_TARGET in (project / "Makefile").read_text()  # the rest arrived
    assert changed_files(project) == sorted([".copier-answers.yml", "Makefile"])
    assert answers_of(project)["_commit"] == "2.0.0"
