"""Jinja filters that derive and check the names a person types into copier.

Each `*_problem` filter returns an empty string for a good value and a sentence
a person understands for a bad one, which is what copier validators expect.
"""

from __future__ import annotations

import keyword
import re
import sys

from jinja2 import Environment
from jinja2.ext import Extension

SLUG = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
PACKAGE = re.compile(r"^[a-z][a-z0-9_]*$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")

# Import names of what a generated project installs (all levels): a package with
# one of these names would shadow the real one on sys.path.
DEPENDENCY_MODULES = frozenset(
    {
        "lightning",
        "pytorch_lightning",
        "torch",
        "torchmetrics",
        "hydra",
        "omegaconf",
        "mlflow",
        "numpy",
        "pandas",
        "sklearn",
        "scipy",
        "matplotlib",
        "rich",
        "yaml",
        "pytest",
        "mypy",
        "ipykernel",
        "nbclient",
        "nbformat",
        "pre_commit",
        "ruff",
        "pandera",
        "optuna",
        "kfp",
        "airflow",
        "fastapi",
        "uvicorn",
        "pydantic",
        "prometheus_client",
        "feast",
        "vllm",
        "transformers",
        "evidently",
        "requests",
        "src",
        "tests",
        "configs",
    }
)


def slugify(value: str) -> str:
    """Turn a free-text project name into a slug: 'Churn Prediction!' -> 'churn-prediction'."""
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")


def slug_problem(value: str) -> str:
    if SLUG.match(value):
        return ""
    return (
        f"'{value}' is not a valid project slug: use lowercase letters, digits and single "
        "hyphens, starting with a letter (for example 'churn-prediction')."
    )


def package_name_problem(value: str) -> str:
    if not PACKAGE.match(value):
        return (
            f"'{value}' is not a valid package name: use lowercase letters, digits and "
            "underscores, starting with a letter (for example 'churn_prediction')."
        )
    if keyword.iskeyword(value) or keyword.issoftkeyword(value):
        return f"'{value}' is a Python keyword and cannot be a package name."
    if value in sys.stdlib_module_names:
        return (
            f"'{value}' would shadow the standard library module of the same name; "
            "pick a more specific name."
        )
    if value in DEPENDENCY_MODULES:
        return (
            f"'{value}' would shadow the '{value}' module the project depends on; "
            "pick a more specific name."
        )
    return ""


def email_problem(value: str) -> str:
    if EMAIL.match(value):
        return ""
    return f"'{value}' is not an email address (expected something like team@example.com)."


class NameFilters(Extension):
    """Registers the name filters with copier's Jinja environment."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters.update(
            slugify=slugify,
            slug_problem=slug_problem,
            package_name_problem=package_name_problem,
            email_problem=email_problem,
        )
