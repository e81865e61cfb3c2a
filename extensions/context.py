"""The one place that decides which components a generated project gets.

Every file name, `_exclude` entry and template condition reads the flags that
this hook derives from the answers; none of them repeats a level comparison.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from copier_template_extensions import ContextHook
from jinja2 import Environment

# libyaml's loader when PyYAML has it: copier.yml parses in a tenth of the time.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Levels whose components this template version generates and tests.
IMPLEMENTED_LEVELS = frozenset({1, 2, 3})
# Levels under construction: offered only to template developers who set PREVIEW_ENV=1.
PREVIEW_LEVELS: frozenset[int] = frozenset()
PREVIEW_ENV = "MLOPS_GOLDEN_PATH_PREVIEW"

# What each level is about, as the generated docs name it.
LEVEL_TITLES = {
    1: "experiment tracking",
    2: "pipeline automation",
    3: "serving and monitoring",
    4: "automated lifecycle",
}

# The lowest maturity level at which each component is generated.
COMPONENT_LEVELS = {
    "tracking": 1,  # Hydra configs, Lightning training, MLflow tracking, CI
    "pipeline": 2,
    "serving": 3,
    "monitoring": 3,
    "features": 4,
    "distributed": 4,
}

# Generated paths (relative to the project root) that belong to components or model families.
# A path is excluded when every flag that owns it is off (.dockerignore serves two images).
# `{package}` is replaced by the package name.
OWNED_PATHS: dict[str, tuple[str, ...]] = {
    "pipeline": (
        "src/{package}/pipeline",
        "src/{package}/registry",
        "src/{package}/tuning",
        "configs/pipeline.yaml",
        "configs/hparams_search",
        ".github/workflows/train.yml",
        "docs/pipeline.md",
        "tests/test_pipeline.py",
        "tests/test_registry.py",
        "tests/test_tuning.py",
        "tests/test_validation.py",
        "tests/test_diagram.py",
    ),
    "kubeflow": (
        "src/{package}/pipeline/kubeflow.py",
        "deploy",
        "deploy/docker/train.Dockerfile",
        ".dockerignore",
        "tests/test_kubeflow.py",
    ),
    "airflow": (
        "dags",
        "tests/test_airflow.py",
    ),
    "serving": (
        "src/{package}/serving",
        "src/{package}/registry/promotion.py",
        "deploy",
        "deploy/docker/serve.Dockerfile",
        ".dockerignore",
        ".github/workflows/promote.yml",
        ".github/workflows/deploy.yml",
        "bench",
        "docs/serving.md",
        "data/sample",  # rows.csv: sample input that docs/serving.md scores with batch-predict
        "tests/test_serving.py",
        "tests/test_api_schema.py",
        "tests/test_promotion.py",
        "tests/test_batch.py",
    ),
    "monitoring": (
        "src/{package}/monitoring",
        "configs/monitor.yaml",
        "docs/monitoring.md",
        "docs/images/drift-report.png",
        "tests/test_monitoring.py",
        "tests/test_monitoring_stack.py",
        "deploy/monitoring",
        "deploy/platform",
        ".github/workflows/monitor.yml",
    ),
    # deploy/k8s/: a kustomize base and the staging and prod overlays, for either target.
    "kubernetes": (
        "deploy/k8s",
        "deploy/k8s/base/deployment.yaml",
        "deploy/k8s/base/service.yaml",
        "deploy/k8s/base/hpa.yaml",
        "deploy/k8s/base/pdb.yaml",
    ),
    "kserve": (
        "deploy/k8s",
        "deploy/k8s/base/inferenceservice.yaml",
        "deploy/k8s/base/kustomizeconfig.yaml",
    ),
    "tabular": (
        "src/{package}/data",
        "src/{package}/models",
        "src/{package}/families/tabular.py",
        "configs/data/churn.yaml",
        "configs/model/mlp.yaml",
        "tests/test_data.py",
        "tests/test_model.py",
    ),
}


def as_level(value: Any) -> int:
    """Answers arrive as raw CLI strings while prompting ('3'); a bad one means level 1."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 1


def derive_flags(
    level: int, model_family: str, orchestrator: str, deploy_target: str = "none"
) -> dict[str, bool]:
    """Component flags; an option counts only at the level that offers it, so a
    `-d orchestrator=kubeflow` answer on level 1 turns nothing on."""
    flags = {name: level >= minimum for name, minimum in COMPONENT_LEVELS.items()}
    flags["kubeflow"] = flags["pipeline"] and orchestrator == "kubeflow"
    flags["airflow"] = flags["pipeline"] and orchestrator == "airflow"
    flags["kubernetes"] = flags["serving"] and deploy_target == "kubernetes"
    flags["kserve"] = flags["serving"] and deploy_target == "kserve"
    flags["images"] = flags["kubeflow"] or flags["serving"]  # deploy/docker/ has a Dockerfile
    flags["tabular"] = model_family == "tabular"
    flags["llm"] = model_family == "llm"
    return flags


# The answers that derive_flags reads: changing one of them in an update can turn a component off.
GATING_ANSWERS = ("maturity_level", "model_family", "orchestrator", "deploy_target")


def flags_of(answers: Mapping[str, Any]) -> dict[str, bool]:
    """The component flags of a set of answers (copier's context, or a project's recorded ones)."""
    return derive_flags(
        as_level(answers.get("maturity_level", 1)),
        str(answers.get("model_family", "tabular")),
        str(answers.get("orchestrator", "local")),
        str(answers.get("deploy_target", "none")),
    )


def path_owners() -> dict[str, list[str]]:
    """Each owned path (with `{package}`) and the flags that own it, in OWNED_PATHS order."""
    owners: dict[str, list[str]] = {}
    for flag, paths in OWNED_PATHS.items():
        for path in paths:
            owners.setdefault(path, []).append(flag)
    return owners


def excluded_paths(flags: dict[str, bool], package: str) -> list[str]:
    """The owned paths none of whose owners is on, in OWNED_PATHS order."""
    return [
        path.format(package=package)
        for path, owners in path_owners().items()
        if not any(flags.get(flag, False) for flag in owners)
    ]


def removed_paths(
    before: dict[str, bool], after: dict[str, bool], package: str
) -> dict[str, list[str]]:
    """The paths `after` excludes and `before` did not, each with its owners that `after` turns
    off: what an update from `before` to `after` deletes, component by component."""
    gone = set(excluded_paths(after, package)) - set(excluded_paths(before, package))
    removed: dict[str, list[str]] = {}
    for flag, paths in OWNED_PATHS.items():
        if before.get(flag, False) and not after.get(flag, False):
            for path in (path.format(package=package) for path in paths):
                if path in gone:
                    removed.setdefault(path, []).append(flag)
    return removed


@cache
def team_owned_patterns(template_root: str) -> tuple[str, ...]:
    """The `_skip_if_exists` patterns of copier.yml: the files a team owns after the first copy."""
    config = yaml.load((Path(template_root) / "copier.yml").read_text(), Loader=SAFE_LOADER)
    return tuple(config.get("_skip_if_exists", ()))


def available_levels() -> frozenset[int]:
    if os.environ.get(PREVIEW_ENV) == "1":
        return IMPLEMENTED_LEVELS | PREVIEW_LEVELS
    return IMPLEMENTED_LEVELS


def level_problem(value: Any) -> str:
    """A level answer must be a whole number (`2.0` or `true` pass copier's choice check)."""
    if type(value) is int:
        return ""
    offered = ", ".join(map(str, sorted(available_levels())))
    return f"{value!r} is not a level: answer one of {offered}."


def level_unavailable(level: int) -> str:
    available = available_levels()
    if level in available:
        return ""
    return (
        f"Level {level} is not available in this template version yet "
        f"(available: {', '.join(map(str, sorted(available)))})."
    )


class GoldenPathContext(ContextHook):
    """Adds `gp` (level and component flags), `gp_excluded` and `gp_team_owned` to the context."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters.update(level_unavailable=level_unavailable, level_problem=level_problem)

    def hook(self, context: dict[str, Any]) -> None:
        level = as_level(context.get("maturity_level", 1))
        package = str(context.get("package_name", ""))
        flags = flags_of(context)
        context["gp"] = {"level": level, "level_title": LEVEL_TITLES.get(level, ""), **flags}
        context["gp_excluded"] = "\n".join(excluded_paths(flags, package))
        root = context["_copier_conf"]["src_path"]
        context["gp_team_owned"] = [
            pattern.replace("{{ package_name }}", package)
            for pattern in team_owned_patterns(str(root))
        ]
