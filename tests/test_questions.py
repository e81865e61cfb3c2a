"""Questions: every validator accepts good answers and refuses bad ones with a clear message,
a refused answer leaves nothing behind, and the context extension derives the right flags."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import BASE_ANSWERS, ROOT, load_extension, render, run, tool
from jinja2 import Environment


def assert_refused(template: Path, dst: Path, message: str, **answers: Any) -> None:
    """Copying with `answers` fails with `message`, and no project is left at `dst`."""
    with pytest.raises(ValueError, match=message):
        render(template, dst, **answers)
    assert not dst.exists() or not any(dst.iterdir()), (
        f"a refused answer left files behind: {sorted(p.name for p in dst.iterdir())}"
    )


def rendered_answers(template: Path, dst: Path, **answers: Any) -> dict[str, Any]:
    render(template, dst, **answers)
    return yaml.safe_load((dst / ".copier-answers.yml").read_text())


# --- project_name -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "   ", "\t"])
def test_empty_project_name_is_refused(copier_template: Path, tmp_path: Path, name: str) -> None:
    assert_refused(
        copier_template,
        tmp_path / "p",
        r"project_name.*The project name cannot be empty\.",
        project_name=name,
        project_slug="x",  # so that only the name itself is wrong
    )


@pytest.mark.parametrize(
    ("name", "slug", "package"),
    [
        ("Churn Prediction", "churn-prediction", "churn_prediction"),
        ("Churn Prediction!", "churn-prediction", "churn_prediction"),
        ("  Fraud   Detection 2 ", "fraud-detection-2", "fraud_detection_2"),
        ("ACME: Demand-Forecast (EU)", "acme-demand-forecast-eu", "acme_demand_forecast_eu"),
    ],
)
def test_slug_and_package_default_from_project_name(
    copier_template: Path, tmp_path: Path, name: str, slug: str, package: str
) -> None:
    answers = rendered_answers(copier_template, tmp_path / "p", project_name=name)
    assert answers["project_name"] == name
    assert answers["project_slug"] == slug
    assert answers["package_name"] == package
    assert (tmp_path / "p" / "src" / package / "__init__.py").is_file()


# --- project_slug -----------------------------------------------------------------------------


@pytest.mark.parametrize("slug", ["churn-prediction", "a", "fraud2-detection-v3", "x9"])
def test_good_project_slug_is_accepted(copier_template: Path, tmp_path: Path, slug: str) -> None:
    answers = rendered_answers(
        copier_template, tmp_path / "p", project_slug=slug, package_name="churn_model"
    )
    assert answers["project_slug"] == slug
    assert f'name = "{slug}"' in (tmp_path / "p" / "pyproject.toml").read_text()


@pytest.mark.parametrize(
    "slug",
    [
        "Churn-Prediction",
        "churn_prediction",
        "churn--prediction",
        "-churn",
        "churn-",
        "1churn",
        "churn prediction",
        "churn.prediction",
        "",
    ],
)
def test_bad_project_slug_is_refused(copier_template: Path, tmp_path: Path, slug: str) -> None:
    assert_refused(
        copier_template,
        tmp_path / "p",
        rf"project_slug.*'{re.escape(slug)}' is not a valid project slug: use lowercase letters, "
        r"digits and single hyphens",
        project_slug=slug,
        package_name="churn_model",
    )


# --- package_name -----------------------------------------------------------------------------


@pytest.mark.parametrize("package", ["churn_prediction", "churn2", "fraud_model_v2", "m"])
def test_good_package_name_is_accepted(copier_template: Path, tmp_path: Path, package: str) -> None:
    answers = rendered_answers(copier_template, tmp_path / "p", package_name=package)
    assert answers["package_name"] == package
    assert (tmp_path / "p" / "src" / package / "__init__.py").is_file()


@pytest.mark.parametrize(
    ("package", "message"),
    [
        # not an identifier we accept
        ("Churn", "is not a valid package name: use lowercase letters, digits and underscores"),
        ("churn-prediction", "is not a valid package name"),
        ("1churn", "is not a valid package name"),
        ("_churn", "is not a valid package name"),
        ("churn.model", "is not a valid package name"),
        ("churn model", "is not a valid package name"),
        ("", "is not a valid package name"),
        # keywords, soft keywords included
        ("class", "is a Python keyword and cannot be a package name"),
        ("import", "is a Python keyword"),
        ("match", "is a Python keyword"),
        # the standard library
        ("json", "would shadow the standard library module of the same name"),
        ("logging", "would shadow the standard library module"),
        ("typing", "would shadow the standard library module"),
        ("random", "would shadow the standard library module"),
        # shipped by the standard library, though not in sys.stdlib_module_names
        ("test", "would shadow the standard library module"),
        ("xxlimited", "would shadow the standard library module"),
        # what the generated project installs, directly or through its dependencies
        ("torch", "would shadow the 'torch' module the project depends on"),
        ("mlflow", "would shadow the 'mlflow' module the project depends on"),
        ("lightning", "would shadow the 'lightning' module the project depends on"),
        ("hydra", "would shadow the 'hydra' module the project depends on"),
        ("torchmetrics", "would shadow the 'torchmetrics' module"),
        ("sklearn", "would shadow the 'sklearn' module"),
        ("flask", "would shadow the 'flask' module"),  # through mlflow
        ("sqlalchemy", "would shadow the 'sqlalchemy' module"),  # through mlflow, optuna
        ("google", "would shadow the 'google' module"),  # protobuf's namespace
        ("pandera", "would shadow the 'pandera' module"),
        # and the project's own folders
        ("tests", "is a folder of the project itself"),
    ],
)
def test_bad_package_name_is_refused(
    copier_template: Path, tmp_path: Path, package: str, message: str
) -> None:
    assert_refused(
        copier_template,
        tmp_path / "p",
        rf"package_name.*'{re.escape(package)}' {message}",
        package_name=package,
    )


def test_over_long_names_get_a_length_message(copier_template: Path, tmp_path: Path) -> None:
    assert_refused(
        copier_template,
        tmp_path / "p",
        r"package_name.*The package name is 300 characters long; keep it to 64 at most\.",
        package_name="a" * 300,
    )
    assert_refused(
        copier_template,
        tmp_path / "q",
        r"project_slug.*The project slug is 65 characters long; keep it to 64 at most\.",
        project_slug="a" * 65,
        package_name="churn",
    )


def test_default_package_name_that_shadows_a_dependency_is_refused(
    copier_template: Path, tmp_path: Path
) -> None:
    """A project called "Torch" derives the package `torch`: derived defaults are checked too."""
    assert_refused(
        copier_template,
        tmp_path / "p",
        r"package_name.*'torch' would shadow the 'torch' module",
        project_name="Torch",
    )


# --- author_email -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email", ["ml-team@example.com", "first.last+ml@sub.example.org", "a@b.io"]
)
def test_good_email_is_accepted(copier_template: Path, tmp_path: Path, email: str) -> None:
    answers = rendered_answers(copier_template, tmp_path / "p", author_email=email)
    assert answers["author_email"] == email
    assert email in (tmp_path / "p" / "pyproject.toml").read_text()


@pytest.mark.parametrize(
    "email",
    [
        "team",
        "team@",
        "@example.com",
        "team@example",
        "team @example.com",
        "team@example.c",
        "team@@example.com",
        "",
    ],
)
def test_bad_email_is_refused(copier_template: Path, tmp_path: Path, email: str) -> None:
    assert_refused(
        copier_template,
        tmp_path / "p",
        rf"author_email.*'{re.escape(email)}' is not an email address \(expected something like",
        author_email=email,
    )


# --- choices: level, family, python, torch backend --------------------------------------------


@pytest.mark.parametrize("level", [4, "4"])
def test_level_not_implemented_yet_is_refused(
    copier_template: Path, tmp_path: Path, level: int | str
) -> None:
    """Level 4 exists as a choice but is refused until implemented; CLI strings are cast."""
    assert_refused(
        copier_template,
        tmp_path / "p",
        rf"maturity_level.*Level {level} is not available in this template version yet "
        r"\(available: 1, 2, 3\)",
        maturity_level=level,
    )


@pytest.mark.parametrize("level", [0, 5, 7, -1])
def test_level_out_of_range_is_refused(copier_template: Path, tmp_path: Path, level: int) -> None:
    assert_refused(
        copier_template,
        tmp_path / "p",
        rf"Invalid choice for 'maturity_level': {level} is not in",
        maturity_level=level,
    )


@pytest.mark.parametrize("level", [1.0, True])
def test_level_that_is_not_a_whole_number_is_refused(
    copier_template: Path, tmp_path: Path, level: Any
) -> None:
    """`maturity_level: yaml` parses `-d maturity_level=1.0` to 1.0, which equals the choice 1."""
    assert_refused(
        copier_template,
        tmp_path / "p",
        rf"maturity_level.*{re.escape(repr(level))} is not a level: answer one of 1, 2, 3\.",
        maturity_level=level,
    )


def test_level_that_is_not_a_number_is_refused(copier_template: Path, tmp_path: Path) -> None:
    # copier's own choice check: it names the question and the levels on offer
    assert_refused(
        copier_template,
        tmp_path / "p",
        r"Invalid choice for 'maturity_level': 'three' is not in \[1, 2, 3\]",
        maturity_level="three",
    )


@pytest.mark.parametrize(
    ("question", "value"),
    [
        ("model_family", "llm"),  # designed for, but not offered before it works
        ("model_family", "vision"),
        ("python_version", "3.10"),
        ("torch_backend", "cuda"),
    ],
)
def test_value_outside_the_choices_is_refused(
    copier_template: Path, tmp_path: Path, question: str, value: str
) -> None:
    assert_refused(
        copier_template,
        tmp_path / "p",
        rf"Invalid choice for '{question}': '{re.escape(value)}' is not in",
        **{question: value},
    )


def test_refused_answer_leaves_an_existing_destination_empty(
    copier_template: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "existing"
    dst.mkdir()
    with pytest.raises(ValueError, match="Level 4 is not available"):
        render(copier_template, dst, maturity_level=4)
    assert list(dst.iterdir()) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (["maturity_level=4"], "Level 4 is not available in this template version yet"),
        (["maturity_level=x"], "Invalid choice for 'maturity_level': 'x' is not in [1, 2, 3]"),
        (["package_name=mlflow"], "would shadow the 'mlflow' module the project depends on"),
        (["model_family=llm"], "Invalid choice for 'model_family'"),
    ],
)
def test_cli_refuses_with_the_message_and_writes_nothing(
    copier_template: Path, tmp_path: Path, data: list[str], message: str
) -> None:
    """What a person sees: `copier copy -d ...` exits non-zero, says why, writes nothing."""
    dst = tmp_path / "p"
    args = [f"--data={key}={value}" for key, value in BASE_ANSWERS.items()]
    args += [f"--data={item}" for item in data]
    proc = run(
        [tool("copier"), "copy", "--trust", "--defaults", *args, copier_template, dst],
        tmp_path,
        check=False,
    )
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not dst.exists() or not any(dst.iterdir())


def test_cli_level_string_is_accepted_for_an_implemented_level(
    copier_template: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "p"
    args = [f"--data={key}={value}" for key, value in BASE_ANSWERS.items()]
    run(
        [
            tool("copier"),
            "copy",
            "--trust",
            "--defaults",
            "--quiet",
            *args,
            "--data=maturity_level=1",
            copier_template,
            dst,
        ],
        tmp_path,
    )
    assert yaml.safe_load((dst / ".copier-answers.yml").read_text())["maturity_level"] == 1


# --- the context extension (extensions/context.py) and name filters (extensions/names.py) ------


@pytest.fixture(scope="module")
def context_ext():
    return load_extension("context")


@pytest.fixture(scope="module")
def names_ext():
    return load_extension("names")


@pytest.mark.parametrize(
    ("raw", "level"), [(1, 1), ("1", 1), ("3", 3), (4, 4), (" 2 ", 2), ("x", 1), (None, 1)]
)
def test_as_level_casts_cli_strings(context_ext, raw: Any, level: int) -> None:
    assert context_ext.as_level(raw) == level
    assert type(context_ext.as_level(raw)) is int


@pytest.mark.parametrize(
    ("level", "on"),
    [
        (1, {"tracking"}),
        (2, {"tracking", "pipeline"}),
        (3, {"tracking", "pipeline", "serving", "monitoring"}),
        (4, {"tracking", "pipeline", "serving", "monitoring", "features", "distributed"}),
    ],
)
def test_each_level_turns_on_its_components_and_those_below(
    context_ext, level: int, on: set[str]
) -> None:
    flags = context_ext.derive_flags(level, "tabular", "local")
    components = set(context_ext.COMPONENT_LEVELS)
    assert {name for name in components if flags[name]} == on
    assert flags["tabular"] is True
    assert flags["llm"] is False


def test_model_family_flags_are_exclusive(context_ext) -> None:
    llm = context_ext.derive_flags(1, "llm", "local")
    assert (llm["llm"], llm["tabular"]) == (True, False)
    tabular = context_ext.derive_flags(1, "tabular", "local")
    assert (tabular["llm"], tabular["tabular"]) == (False, True)


@pytest.mark.parametrize("orchestrator", ["kubeflow", "airflow"])
def test_an_orchestrator_counts_only_from_level_two(context_ext, orchestrator: str) -> None:
    """`-d orchestrator=...` on level 1 must not sneak pipeline files in."""
    assert context_ext.derive_flags(1, "tabular", orchestrator)[orchestrator] is False
    assert context_ext.derive_flags(2, "tabular", orchestrator)[orchestrator] is True
    assert context_ext.derive_flags(2, "tabular", "local")[orchestrator] is False
    level_one = context_ext.excluded_paths(
        context_ext.derive_flags(1, "tabular", orchestrator), "p"
    )
    assert "src/p/pipeline" in level_one


@pytest.mark.parametrize("target", ["kubernetes", "kserve"])
def test_a_deploy_target_counts_only_from_level_three(context_ext, target: str) -> None:
    assert context_ext.derive_flags(2, "tabular", "local", target)[target] is False
    assert context_ext.derive_flags(3, "tabular", "local", target)[target] is True
    assert context_ext.derive_flags(3, "tabular", "local", "none")[target] is False


def test_a_deploy_target_answer_below_level_three_renders_nothing_of_level_three(
    copier_template: Path, tmp_path: Path
) -> None:
    """`-d deploy_target=kserve` on level 2: no manifests, image, workflows or serving code."""
    project = render(copier_template, tmp_path / "p", maturity_level=2, deploy_target="kserve")
    leaked = [
        path
        for path in ("deploy", ".dockerignore", "docs/serving.md", "src/churn_prediction/serving")
        if (project / path).exists()
    ]
    assert leaked == []
    assert sorted(p.name for p in (project / ".github" / "workflows").iterdir()) == [
        "ci.yml",
        "train.yml",
    ]
    assert "deploy_target" not in yaml.safe_load((project / ".copier-answers.yml").read_text())


def test_preview_levels_need_the_developer_switch(context_ext, monkeypatch) -> None:
    monkeypatch.setattr(context_ext, "PREVIEW_LEVELS", frozenset({4}))
    monkeypatch.delenv(context_ext.PREVIEW_ENV, raising=False)
    assert "not available" in context_ext.level_unavailable(4)
    monkeypatch.setenv(context_ext.PREVIEW_ENV, "1")
    assert context_ext.level_unavailable(4) == ""


def test_excluded_paths_follow_the_flags(context_ext) -> None:
    tabular = context_ext.excluded_paths(context_ext.derive_flags(1, "tabular", "local"), "pkg")
    llm = context_ext.excluded_paths(context_ext.derive_flags(1, "llm", "local"), "pkg")
    assert "src/pkg/models" not in tabular
    assert "src/pkg/models" in llm
    assert "src/pkg/data" in llm
    assert all("{package}" not in path for path in llm)


def test_only_answers_that_turn_a_component_off_remove_paths(context_ext) -> None:
    """What an update deletes (extensions/destination.py refuses it unless asked to)."""

    def flags(level: int, orchestrator: str = "local", target: str = "kubernetes") -> dict:
        return context_ext.derive_flags(level, "tabular", orchestrator, target)

    removed = context_ext.removed_paths
    for low in (1, 2, 3):
        for high in range(low, 5):
            assert removed(flags(low, "kubeflow"), flags(high, "kubeflow"), "p") == {}
    down = removed(flags(3), flags(2), "p")
    assert {path.format(package="p") for path in context_ext.OWNED_PATHS["serving"]} <= set(down)
    assert {owner for owners in down.values() for owner in owners} == {
        "serving",
        "monitoring",
        "kubernetes",
    }
    # the training image still needs deploy/ and .dockerignore when Kubeflow stays
    kept = removed(flags(3, "kubeflow"), flags(2, "kubeflow"), "p")
    assert "deploy" not in kept
    assert ".dockerignore" not in kept
    assert "deploy/docker/serve.Dockerfile" in kept
    assert removed(flags(3), flags(3, target="none"), "p") == {
        path: ["kubernetes"] for path in context_ext.OWNED_PATHS["kubernetes"]
    }
    # kserve shares deploy/k8s/: only the Kubernetes-only manifests go
    assert "deploy/k8s" not in removed(flags(3), flags(3, target="kserve"), "p")


def render_with_hook(context_ext, names_ext, source: str, **context: Any) -> str:
    """Render `source` in a Jinja environment that carries the template's own extensions."""
    env = Environment(extensions=[names_ext.NameFilters, context_ext.GoldenPathContext])
    conf = {"src_path": str(ROOT), "dst_path": "."}
    return env.from_string(source).render(_copier_conf=conf, **context)


def test_context_hook_casts_a_cli_level_string(context_ext, names_ext) -> None:
    """`-d maturity_level=3` reaches the hook as '3' while prompting: the flags must see 3."""
    out = render_with_hook(
        context_ext,
        names_ext,
        "{{ gp.level + 1 }} {{ gp.pipeline }} {{ gp.serving }} {{ gp.features }}",
        maturity_level="3",
        package_name="pkg",
        model_family="tabular",
    )
    assert out == "4 True True False"


def test_context_hook_excludes_other_family_paths_and_resolves_team_files(
    context_ext, names_ext
) -> None:
    out = render_with_hook(
        context_ext,
        names_ext,
        "{{ gp_excluded }}\n---\n{{ gp_team_owned | join('\n') }}",
        maturity_level=1,
        package_name="pkg",
        model_family="llm",
    )
    excluded, team_owned = out.split("\n---\n")
    assert "src/pkg/models" in excluded.splitlines()
    assert "src/pkg/models/network.py" in team_owned.splitlines()
    assert "{{" not in team_owned


def test_context_in_a_real_copier_run_has_int_level(copier) -> None:
    """pytest-copier renders the real context: the level is an int even when given as a string."""
    ctx = copier.context(**BASE_ANSWERS, maturity_level="1")
    assert ctx["gp"]["level"] == 1
    assert ctx["gp"]["tracking"] is True
    assert ctx["gp"]["pipeline"] is False
    assert ctx["gp"]["tabular"] is True
    excluded = ctx["gp_excluded"].splitlines()
    package = ctx["package_name"]
    assert f"src/{package}/pipeline" in excluded
    assert f"src/{package}/data" not in excluded
    assert f"src/{package}/models" not in excluded


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Churn Prediction", "churn-prediction"),
        ("churn_prediction", "churn-prediction"),
        ("  A  B  ", "a-b"),
        ("Model v2.1", "model-v2-1"),
        ("!!!", ""),
    ],
)
def test_slugify(names_ext, name: str, slug: str) -> None:
    assert names_ext.slugify(name) == slug


def test_every_level_choice_has_a_help_text_that_says_what_it_adds() -> None:
    config = yaml.safe_load((ROOT / "copier.yml").read_text())
    labels = list(config["maturity_level"]["choices"])
    assert [label.split(" - ")[0] for label in labels] == ["1", "2", "3", "4"]
    assert all(len(label.split(" - ", 1)[1]) > 20 for label in labels)


# --- the destination folder (extensions/destination.py) ----------------------------------------


def copy_cli(template: Path, dst: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = [f"--data={key}={value}" for key, value in BASE_ANSWERS.items()]
    return run(
        [tool("copier"), "copy", "--trust", "--defaults", *args, *extra, template, dst],
        dst.parent,
        check=False,
    )


@pytest.mark.parametrize("clash", ["README.md", "pyproject.toml", "src", ".copier-answers.yml"])
def test_copy_over_files_the_template_writes_is_refused_before_anything_is_written(
    copier_template: Path, tmp_path: Path, clash: str
) -> None:
    dst = tmp_path / "existing"
    (dst / ".git").mkdir(parents=True)  # a `git init`ed folder counts as empty
    target = dst / clash
    if clash == "src":
        (target / "team_code").mkdir(parents=True)
        (target / "team_code" / "model.py").write_text("TEAM = 1\n")
    else:
        target.write_text("team: own file\n")
    before = sorted(p.relative_to(dst) for p in dst.rglob("*"))

    proc = copy_cli(copier_template, dst)

    assert proc.returncode == 1
    message = proc.stderr.strip()
    assert message == (
        f"{dst} is not empty: it already holds {clash}, which the template writes. "
        "Copy into a new or empty folder, or pass --overwrite to write the template's files "
        "over them (team-owned files that exist are kept)."
    )
    assert "Traceback" not in proc.stdout + proc.stderr
    assert sorted(p.relative_to(dst) for p in dst.rglob("*")) == before


def test_copy_with_overwrite_writes_platform_files_and_keeps_team_files(
    copier_template: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "existing"
    dst.mkdir()
    (dst / "README.md").write_text("the team's own file\n")  # team-owned: kept
    (dst / "Makefile").write_text("all:\n")  # platform-owned: the template's
    proc = copy_cli(copier_template, dst, "--overwrite", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert (dst / "README.md").read_text() == "the team's own file\n"
    assert "setup:" in (dst / "Makefile").read_text()


def test_copy_beside_unrelated_files_warns_and_keeps_them(
    copier_template: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "existing"
    dst.mkdir()
    (dst / "LICENSE").write_text("our licence\n")
    (dst / "notes").mkdir()
    proc = copy_cli(copier_template, dst)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("Warning:")]
    assert warnings == [
        f"Warning: {dst} already holds LICENSE, notes; the template adds its files beside them."
    ]
    assert (dst / "LICENSE").read_text() == "our licence\n"
    assert (dst / "Makefile").is_file()


def test_copy_into_a_fresh_git_repository_says_nothing_about_it(
    copier_template: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "fresh"
    dst.mkdir()
    run(["git", "init", "-q"], dst)
    proc = copy_cli(copier_template, dst)
    assert proc.returncode == 0, proc.stderr
    assert "Warning:" not in proc.stderr
    assert (dst / "Makefile").is_file()
