"""Render matrix: every implemented level x model family, the other options cycled.

Each render must produce exactly its level's files, no leftover Jinja, parseable YAML/TOML/JSON,
ruff-clean code (with the generated project's own ruff config), workflows that pass the GitHub
workflow schema and zizmor, and a `.copier-answers.yml` that records the answers.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import (
    BASE_ANSWERS,
    copier_config,
    load_extension,
    project_files,
    question_choices,
    render,
    run,
    tool,
)

# The exact files each level adds to the level below ({package} is the package name). A file that
# appears at a level it does not belong to, or goes missing, fails test_manifest.
LEVEL_FILES: dict[int, list[str]] = {
    1: [
        ".copier-answers.yml",
        ".github/dependabot.yml",
        ".github/workflows/ci.yml",
        ".gitignore",
        ".pre-commit-config.yaml",
        "Makefile",
        "README.md",
        "configs/callbacks/default.yaml",
        "configs/data/churn.yaml",
        "configs/experiment/wide_mlp.yaml",
        "configs/hydra/default.yaml",
        "configs/local/README.md",
        "configs/logger/mlflow.yaml",
        "configs/model/mlp.yaml",
        "configs/paths/default.yaml",
        "configs/train.yaml",
        "configs/trainer/cpu.yaml",
        "configs/trainer/default.yaml",
        "configs/trainer/gpu.yaml",
        "docs/golden-path.md",
        "docs/index.md",
        "docs/ownership.md",
        "notebooks/01_explore.ipynb",
        "pyproject.toml",
        "src/{package}/__init__.py",
        "src/{package}/config_schema.py",
        "src/{package}/errors.py",
        "src/{package}/families/__init__.py",
        "src/{package}/families/tabular.py",
        "src/{package}/data/__init__.py",
        "src/{package}/data/contract.py",
        "src/{package}/data/datamodule.py",
        "src/{package}/data/dataset.py",
        "src/{package}/data/preprocessing.py",
        "src/{package}/data/ranges.py",
        "src/{package}/data/raw.py",
        "src/{package}/data/schema.py",
        "src/{package}/models/__init__.py",
        "src/{package}/models/baseline.py",
        "src/{package}/models/classifier.py",
        "src/{package}/models/export.py",
        "src/{package}/models/network.py",
        "src/{package}/models/plots.py",
        "src/{package}/models/pyfunc_model.py",
        "src/{package}/py.typed",
        "src/{package}/tracking/__init__.py",
        "src/{package}/tracking/environment.py",
        "src/{package}/tracking/git.py",
        "src/{package}/tracking/history.py",
        "src/{package}/tracking/runs.py",
        "src/{package}/tracking/server.py",
        "src/{package}/tracking/store.py",
        "src/{package}/training/__init__.py",
        "src/{package}/training/config.py",
        "src/{package}/training/settings.py",
        "src/{package}/training/train.py",
        "tests/conftest.py",
        "tests/test_config.py",
        "tests/test_data.py",
        "tests/test_errors.py",
        "tests/test_model.py",
        "tests/test_notebook.py",
        "tests/test_tracking.py",
        "tests/test_train.py",
    ],
    2: [
        ".github/workflows/train.yml",
        "configs/hparams_search/mlp_optuna.yaml",
        "configs/pipeline.yaml",
        "docs/pipeline.md",
        "src/{package}/pipeline/__init__.py",
        "src/{package}/pipeline/__main__.py",
        "src/{package}/pipeline/cache.py",
        "src/{package}/pipeline/context.py",
        "src/{package}/pipeline/definition.py",
        "src/{package}/pipeline/diagram.py",
        "src/{package}/pipeline/execute.py",
        "src/{package}/pipeline/local.py",
        "src/{package}/pipeline/orchestrated.py",
        "src/{package}/pipeline/report.py",
        "src/{package}/pipeline/settings.py",
        "src/{package}/pipeline/steps/__init__.py",
        "src/{package}/pipeline/steps/evaluate.py",
        "src/{package}/pipeline/steps/ingest.py",
        "src/{package}/pipeline/steps/register.py",
        "src/{package}/pipeline/steps/train.py",
        "src/{package}/pipeline/steps/validate.py",
        "src/{package}/registry/__init__.py",
        "src/{package}/registry/gate.py",
        "src/{package}/registry/settings.py",
        "src/{package}/tuning/__init__.py",
        "src/{package}/tuning/callbacks.py",
        "src/{package}/tuning/search.py",
        "src/{package}/tuning/settings.py",
        "src/{package}/tuning/space.py",
        "src/{package}/tuning/tracking.py",
        "tests/test_diagram.py",
        "tests/test_pipeline.py",
        "tests/test_registry.py",
        "tests/test_tuning.py",
        "tests/test_validation.py",
    ],
    3: [
        ".dockerignore",
        ".github/workflows/deploy.yml",
        ".github/workflows/monitor.yml",
        ".github/workflows/promote.yml",
        "bench/serving.py",
        "bench/traffic.py",
        "configs/monitor.yaml",
        "data/sample/rows.csv",
        "deploy/docker/serve.Dockerfile",
        "deploy/monitoring/alerts.test.yml",
        "deploy/monitoring/alerts.yml",
        "deploy/monitoring/grafana/dashboards/model.json",
        "deploy/monitoring/grafana/dashboards/service.json",
        "deploy/monitoring/grafana/provisioning/dashboards/dashboards.yml",
        "deploy/monitoring/grafana/provisioning/datasources/prometheus.yml",
        "deploy/monitoring/prometheus.yml",
        "deploy/monitoring/targets/pushgateway.yml",
        "deploy/monitoring/targets/serving.yml",
        "deploy/platform/compose.yaml",
        "deploy/platform/mlflow-requirements.txt",
        "deploy/platform/mlflow.Dockerfile",
        "deploy/platform/seaweedfs-s3.json",
        "deploy/platform/targets/pushgateway.yml",
        "deploy/platform/targets/serving.yml",
        "docs/images/drift-report.png",
        "docs/monitoring.md",
        "docs/serving.md",
        "src/{package}/monitoring/__init__.py",
        "src/{package}/monitoring/__main__.py",
        "src/{package}/monitoring/dashboards.py",
        "src/{package}/monitoring/drift.py",
        "src/{package}/monitoring/gauges.py",
        "src/{package}/monitoring/quality.py",
        "src/{package}/monitoring/record.py",
        "src/{package}/monitoring/settings.py",
        "src/{package}/monitoring/window.py",
        "src/{package}/registry/promotion.py",
        "src/{package}/serving/__init__.py",
        "src/{package}/serving/__main__.py",
        "src/{package}/serving/app.py",
        "src/{package}/serving/batching.py",
        "src/{package}/serving/batch.py",
        "src/{package}/serving/metrics.py",
        "src/{package}/serving/model.py",
        "src/{package}/serving/observability.py",
        "src/{package}/serving/prediction_log.py",
        "src/{package}/serving/schema.py",
        "src/{package}/serving/settings.py",
        "tests/test_api_schema.py",
        "tests/test_batch.py",
        "tests/test_monitoring.py",
        "tests/test_monitoring_stack.py",
        "tests/test_promotion.py",
        "tests/test_serving.py",
    ],
}

# What each deploy target adds from level 3 on (the image and its workflow are level 3 itself).
K8S_OVERLAYS = [
    "deploy/k8s/base/configmap.yaml",
    "deploy/k8s/base/kustomization.yaml",
    "deploy/k8s/overlays/prod/kustomization.yaml",
    "deploy/k8s/overlays/staging/kustomization.yaml",
]
DEPLOY_TARGET_FILES: dict[str, list[str]] = {
    "kubernetes": [
        *K8S_OVERLAYS,
        "deploy/k8s/base/deployment.yaml",
        "deploy/k8s/base/hpa.yaml",
        "deploy/k8s/base/pdb.yaml",
        "deploy/k8s/base/service.yaml",
    ],
    "kserve": [
        *K8S_OVERLAYS,
        "deploy/k8s/base/inferenceservice.yaml",
        "deploy/k8s/base/kustomizeconfig.yaml",
    ],
    "none": [],
}

# What each orchestrator adds from level 2 on (the local runner is part of level 2 itself).
ORCHESTRATOR_FILES: dict[str, list[str]] = {
    "local": [],
    "kubeflow": [
        ".dockerignore",
        "deploy/docker/train.Dockerfile",
        "src/{package}/pipeline/kubeflow.py",
        "tests/test_kubeflow.py",
    ],
    "airflow": [
        "dags/{package}_training.py",
        "tests/test_airflow.py",
    ],
}

# Levels still under construction render only with the developer switch (extensions/context.py).
CONTEXT = load_extension("context")


def manifest(level: int, orchestrator: str, deploy_target: str) -> list[str]:
    files = [path for lower in range(1, level + 1) for path in LEVEL_FILES[lower]]
    if level >= 2:
        files += ORCHESTRATOR_FILES[orchestrator]
    if level >= 3:
        files += DEPLOY_TARGET_FILES[deploy_target]
    return sorted(set(files))  # .dockerignore serves the training and the serving image


# Model families the template offers now (llm arrives with its own issue).
FAMILIES = ["tabular"]

# Names cycled with the options: the last one has a package name unrelated to its slug, so a
# template that derives paths from the slug instead of package_name fails.
NAMES: list[dict[str, str]] = [
    {},
    {"project_name": "Fraud Detection 2", "author_email": "fraud@example.com"},
    {
        "project_name": "Demand Forecast",
        "project_slug": "demand-forecast-eu",
        "package_name": "forecasting",
        "description": "Forecast weekly demand per store.",
    },
]

CYCLED_QUESTIONS = ("python_version", "torch_backend")


def option_sets() -> list[dict[str, Any]]:
    """Cycle every choice of the other questions so that each value is rendered at least once."""
    choices = {name: question_choices(name) for name in CYCLED_QUESTIONS}
    count = max(len(NAMES), *(len(values) for values in choices.values()))
    return [
        {
            **NAMES[i % len(NAMES)],
            **{name: values[i % len(values)] for name, values in choices.items()},
        }
        for i in range(count)
    ]


ORCHESTRATORS = question_choices("orchestrator")
DEPLOY_TARGETS = question_choices("deploy_target")

# Level 1 with every option set; from level 2 on, each orchestrator with one option set, and
# from level 3 on each deploy target beside one of them.
MATRIX = [
    {"maturity_level": 1, "model_family": family, **options}
    for family, options in product(FAMILIES, option_sets())
] + [
    {
        "maturity_level": level,
        "model_family": family,
        "orchestrator": orchestrator,
        **({"deploy_target": target} if level >= 3 else {}),
        **options,
    }
    for level in sorted(LEVEL_FILES)
    if level >= 2
    for family in FAMILIES
    for orchestrator, target, options in zip(
        ORCHESTRATORS, DEPLOY_TARGETS, option_sets(), strict=False
    )
]


def matrix_id(answers: dict[str, Any]) -> str:
    optional = [answers.get("orchestrator"), answers.get("deploy_target")]
    return (
        f"L{answers['maturity_level']}-{answers['model_family']}"
        + "".join(f"-{value}" for value in optional if value)
        + f"-py{answers['python_version']}-{answers['torch_backend']}"
    )


@dataclass(frozen=True)
class Rendered:
    path: Path
    answers: dict[str, Any]  # what the test passed, BASE_ANSWERS included
    template: Path

    @property
    def package(self) -> str:
        return yaml.safe_load((self.path / ".copier-answers.yml").read_text())["package_name"]

    @property
    def level(self) -> int:
        return int(self.answers["maturity_level"])

    def files(self) -> list[str]:
        return project_files(self.path)

    def workflows(self) -> list[Path]:
        return sorted((self.path / ".github" / "workflows").glob("*.y*ml"))

    @property
    def dependabot(self) -> Path:
        return self.path / ".github" / "dependabot.yml"


@pytest.fixture(scope="session", params=MATRIX, ids=matrix_id)
def rendered(
    request: pytest.FixtureRequest,
    copier_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Rendered:
    answers: dict[str, Any] = request.param
    dst = tmp_path_factory.mktemp(matrix_id(answers)) / "project"
    with pytest.MonkeyPatch.context() as patch:
        if answers["maturity_level"] in CONTEXT.PREVIEW_LEVELS:
            patch.setenv(CONTEXT.PREVIEW_ENV, "1")
        render(copier_template, dst, **answers)
    return Rendered(dst, {**BASE_ANSWERS, **answers}, copier_template)


# --- the matrix covers what the template offers -----------------------------------------------


def accepted(template: Path, tmp_path: Path, **answers: Any) -> bool:
    try:
        render(template, tmp_path / "pretend", pretend=True, **answers)
    except ValueError:
        return False
    return True


def test_every_available_level_has_a_manifest(copier_template: Path, tmp_path: Path) -> None:
    """A level that becomes available must get its manifest (and so its render tests) here."""
    levels = question_choices("maturity_level")
    assert levels == [1, 2, 3, 4]
    available = [
        level for level in levels if accepted(copier_template, tmp_path, maturity_level=level)
    ]
    assert available == sorted(set(LEVEL_FILES) - CONTEXT.PREVIEW_LEVELS)
    assert set(LEVEL_FILES) >= CONTEXT.PREVIEW_LEVELS, "a preview level needs its manifest too"


def test_every_offered_model_family_is_rendered(copier_template: Path, tmp_path: Path) -> None:
    families = question_choices("model_family")
    assert [f for f in families if accepted(copier_template, tmp_path, model_family=f)] == FAMILIES


# --- per render -------------------------------------------------------------------------------


def test_manifest(rendered: Rendered) -> None:
    answers = rendered.answers
    files = manifest(
        rendered.level,
        answers.get("orchestrator", "local"),
        answers.get("deploy_target", "kubernetes"),
    )
    expected = sorted(path.format(package=rendered.package) for path in files)
    actual = rendered.files()
    missing = sorted(set(expected) - set(actual))
    unexpected = sorted(set(actual) - set(expected))
    assert (missing, unexpected) == ([], []), f"missing: {missing}\nnot expected: {unexpected}"


# Jinja's opening delimiters must never survive rendering (closing ones are ordinary code, as in
# nested dicts). `{#` is not matched after `$` (shell `${#var}`).
JINJA = re.compile(r"\{\{|\{%|(?<!\$)\{#")
# GitHub Actions expressions are legitimate in workflow files (and only there).
GITHUB_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
# Airflow renders its own template fields at run time: run context variables are legitimate in DAG
# files (and only there), while a leftover copier variable such as `{{ package_name }}` is not.
AIRFLOW_EXPRESSION = re.compile(r"\{\{ (?:run_id|ds|ts|params\.\w+|dag_run\.\w+) \}\}")
# Prometheus renders alert annotations at run time (`{{ $labels.feature }}`, `{{ $value }}`), and
# Grafana a legend's label names (`{{feature}}`): in the alert rules and the dashboards only.
PROMETHEUS_TEMPLATE = re.compile(r"\{\{ [^{}]*\$(?:labels|value)\b[^{}]* \}\}")
GRAFANA_LEGEND = re.compile(r"\{\{\w+\}\}")


def text_files(root: Path) -> list[tuple[str, str]]:
    out = []
    for rel in project_files(root):
        try:
            out.append((rel, (root / rel).read_text(encoding="utf-8")))
        except UnicodeDecodeError:
            continue  # binary: nothing to render
    return out


def test_no_leftover_jinja(rendered: Rendered) -> None:
    problems = []
    for rel in rendered.files():
        if rel.endswith(".jinja") or JINJA.search(rel):
            problems.append(f"{rel}: unrendered file name")
    for rel, text in text_files(rendered.path):
        allowed = None
        if rel.startswith(".github/") and rel.endswith((".yml", ".yaml")):
            allowed = GITHUB_EXPRESSION
        elif rel.startswith("dags/"):
            allowed = AIRFLOW_EXPRESSION
        elif rel == "deploy/monitoring/alerts.yml":
            allowed = PROMETHEUS_TEMPLATE
        elif rel.startswith("deploy/monitoring/grafana/dashboards/") or rel.endswith(
            "/monitoring/dashboards.py"
        ):
            allowed = GRAFANA_LEGEND
        for number, line in enumerate(text.splitlines(), start=1):
            checked = allowed.sub("", line) if allowed else line
            if JINJA.search(checked):
                problems.append(f"{rel}:{number}: {line.strip()}")
    assert problems == []


def test_github_expressions_survive_rendering(rendered: Rendered) -> None:
    """Workflows keep their `${{ ... }}` expressions intact (not rendered away by Jinja)."""
    expressions = [
        expr
        for workflow in rendered.workflows()
        for expr in GITHUB_EXPRESSION.findall(workflow.read_text())
    ]
    assert expressions, "no GitHub expression in any workflow: the concurrency group needs them"
    assert all(re.fullmatch(r"\$\{\{ [^{}]+ \}\}", expr) for expr in expressions), expressions


def test_structured_files_parse(rendered: Rendered) -> None:
    parsed = []
    for rel, text in text_files(rendered.path):
        name = Path(rel).name
        if rel.endswith((".yml", ".yaml")):
            list(yaml.safe_load_all(text))
        elif rel.endswith(".toml"):
            tomllib.loads(text)
        elif rel.endswith((".json", ".ipynb")):
            json.loads(text)
        else:
            continue
        parsed.append(name)
    assert {"pyproject.toml", ".copier-answers.yml", "ci.yml"} <= set(parsed)


def test_ruff_check_and_format_clean(rendered: Rendered) -> None:
    config = tomllib.loads((rendered.path / "pyproject.toml").read_text())
    assert "ruff" in config["tool"], "the generated project configures its own ruff"
    # Run from the project root, so ruff takes the generated pyproject.toml's configuration.
    run([tool("ruff"), "check", "--no-cache", "."], rendered.path)
    run([tool("ruff"), "format", "--no-cache", "--check", "."], rendered.path)


def test_workflows_pass_the_github_schema(rendered: Rendered) -> None:
    workflows = rendered.workflows()
    assert workflows
    run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *workflows],
        rendered.path,
    )
    run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.dependabot", rendered.dependabot],
        rendered.path,
    )


def test_workflows_pass_zizmor(rendered: Rendered) -> None:
    workflows = rendered.workflows()
    assert workflows
    files = [*workflows, rendered.dependabot]  # zizmor audits Dependabot's config too
    proc = run(
        [tool("zizmor"), "--offline", "--no-progress", "--format", "plain", *files],
        rendered.path,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_answers_are_recorded(rendered: Rendered) -> None:
    recorded = yaml.safe_load((rendered.path / ".copier-answers.yml").read_text())
    for name, value in rendered.answers.items():
        assert recorded[name] == value, name
    assert recorded["_commit"] == "99.99.99"
    assert recorded["_src_path"] == str(rendered.template)
    # derived defaults are recorded too, so an update re-renders the same names
    assert {"project_slug", "package_name"} <= set(recorded)


def test_options_take_effect(rendered: Rendered) -> None:
    answers = rendered.answers
    python = answers["python_version"]
    pyproject = tomllib.loads((rendered.path / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == f">={python}"
    assert pyproject["tool"]["ruff"]["target-version"] == "py" + python.replace(".", "")
    assert pyproject["tool"]["mypy"]["python_version"] == python
    ci = yaml.safe_load((rendered.path / ".github" / "workflows" / "ci.yml").read_text())
    with_python = [
        step["with"]["python-version"]
        for job in ci["jobs"].values()
        for step in job["steps"]
        if "python-version" in step.get("with", {})
    ]
    assert with_python
    assert set(with_python) == {python}

    # Both torch builds, one group each, whatever the answer; the answer picks the default group.
    uv = pyproject["tool"]["uv"]
    groups = pyproject["dependency-groups"]
    assert groups["cpu"] == groups["cuda"] == uv["constraint-dependencies"] == ["torch==2.13.0"]
    assert uv["conflicts"] == [[{"group": "cpu"}, {"group": "cuda"}]]
    default = "cpu" if answers["torch_backend"] == "cpu" else "cuda"
    assert {"cpu", "cuda"} & set(uv["default-groups"]) == {default}
    indexes = {index["name"]: index for index in uv["index"]}
    assert indexes["pytorch-cpu"]["url"] == "https://download.pytorch.org/whl/cpu"
    assert indexes["pypi"]["url"] == "https://pypi.org/simple"
    assert all(index["explicit"] for index in indexes.values())
    assert {(s["index"], s["group"]) for s in uv["sources"]["torch"]} == {
        ("pytorch-cpu", "cpu"),
        ("pypi", "cpu"),  # macOS: PyPI's wheels are CPU builds
        ("pypi", "cuda"),
    }


def test_names_take_effect(rendered: Rendered) -> None:
    recorded = yaml.safe_load((rendered.path / ".copier-answers.yml").read_text())
    pyproject = tomllib.loads((rendered.path / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == recorded["project_slug"]
    assert pyproject["project"]["description"] == rendered.answers["description"]
    assert pyproject["project"]["authors"] == [
        {"name": rendered.answers["author_name"], "email": rendered.answers["author_email"]}
    ]
    assert (rendered.path / "src" / recorded["package_name"] / "__init__.py").is_file()
    readme = (rendered.path / "README.md").read_text()
    assert readme.startswith(f"# {rendered.answers['project_name']}\n")


def test_ownership_doc_lists_every_team_owned_file(rendered: Rendered) -> None:
    """docs/ownership.md tells the team which files are theirs: copier.yml's _skip_if_exists."""
    patterns = [
        pattern.replace("{{ package_name }}", rendered.package)
        for pattern in copier_config()["_skip_if_exists"]
    ]
    doc = (rendered.path / "docs" / "ownership.md").read_text()
    listed = re.findall(r"^- `([^`]+)`$", doc, flags=re.MULTILINE)
    assert listed == patterns
    files = set(rendered.files())
    for pattern in patterns:
        if "*" not in pattern:
            assert pattern in files, (
                f"ownership.md lists {pattern}, which the template never writes"
            )


# Make variables a target refuses to run without.
REQUIRED_VARIABLES = {"batch-predict": ["INPUT=rows.csv", "OUTPUT=scored.parquet"]}


def test_makefile_targets_run_their_tools_through_run(rendered: Rendered) -> None:
    """`make X RUN=` must work in a prepared environment: every tool goes through $(RUN)."""
    listed = run(["make", "--no-print-directory", "help"], rendered.path).stdout
    targets = re.findall(r"^\s*(?:\x1b\[[0-9;]*m)?([a-zA-Z_-]+)", listed, flags=re.MULTILINE)
    assert {"help", "setup", "lint", "test", "train"} <= set(targets), listed
    marker = "RUN_MARKER"
    # help, setup and clean run no project tool; image runs the container engine.
    for target in set(targets) - {"help", "setup", "clean", "image"}:
        required = REQUIRED_VARIABLES.get(target, [])
        dry = run(
            ["make", "--no-print-directory", "-n", target, f"RUN={marker}", *required],
            rendered.path,
        )
        commands = [line for line in dry.stdout.splitlines() if line.strip()]
        assert commands, target
        assert all(line.startswith(f"{marker} ") for line in commands), (target, commands)
    lint = run(["make", "--no-print-directory", "-n", "lint", "RUN="], rendered.path).stdout
    tools = [line.split() for line in lint.splitlines()]
    assert ["ruff", "check", "."] in tools
    assert ["ruff", "format", "--check", "."] in tools
    assert any(words[0] == "mypy" for words in tools), lint


def test_notebooks_are_committed_clean_and_use_the_package(rendered: Rendered) -> None:
    notebooks = sorted((rendered.path / "notebooks").glob("*.ipynb"))
    assert notebooks
    for notebook in notebooks:
        cells = json.loads(notebook.read_text())["cells"]
        code = [cell for cell in cells if cell["cell_type"] == "code"]
        assert code, notebook.name
        assert all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)
        source = "\n".join("".join(cell["source"]) for cell in code)
        assert re.search(rf"^from {rendered.package}\.", source, flags=re.MULTILINE), source
