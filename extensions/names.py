"""Jinja filters that derive and check the names a person types into copier.

Each `*_problem` filter returns an empty string for a good value and a sentence
a person understands for a bad one, which is what copier validators expect.
"""

from __future__ import annotations

import keyword
import pkgutil
import re
import sys
import sysconfig
from functools import cache
from pathlib import Path

from jinja2 import Environment
from jinja2.ext import Extension

SLUG = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
PACKAGE = re.compile(r"^[a-z][a-z0-9_]*$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")

MAX_NAME_LENGTH = 64  # a readable import name; longer ones end in the OS's file name limit

# Import names a package must not take: everything the generated project installs (the file
# beside this one), what later levels add, and the project's own top-level folders.
INSTALLED_MODULES = frozenset(
    line.strip()
    for line in Path(__file__).with_name("installed_modules.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
)
LATER_LEVEL_MODULES = frozenset(
    {"airflow", "evidently", "feast", "prometheus_client", "transformers", "vllm"}
)
PROJECT_FOLDERS = frozenset({"src", "tests", "configs", "notebooks", "docs"})


@cache
def stdlib_modules() -> frozenset[str]:
    """`sys.stdlib_module_names` misses modules the standard library ships (`test`,
    `xxlimited`): add what its folders hold."""
    stdlib = Path(sysconfig.get_path("stdlib"))  # the base interpreter's, also in a venv
    folders = [str(stdlib), str(stdlib / "lib-dynload")]
    return frozenset(sys.stdlib_module_names) | {m.name for m in pkgutil.iter_modules(folders)}


def slugify(value: str) -> str:
    """Turn a free-text project name into a slug: 'Churn Prediction!' -> 'churn-prediction'."""
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")


def too_long(value: str, what: str) -> str:
    if len(value) <= MAX_NAME_LENGTH:
        return ""
    return f"The {what} is {len(value)} characters long; keep it to {MAX_NAME_LENGTH} at most."


def slug_problem(value: str) -> str:
    if problem := too_long(value, "project slug"):
        return problem
    if SLUG.match(value):
        return ""
    return (
        f"'{value}' is not a valid project slug: use lowercase letters, digits and single "
        "hyphens, starting with a letter (for example 'churn-prediction')."
    )


def package_name_problem(value: str) -> str:
    if problem := too_long(value, "package name"):
        return problem
    if not PACKAGE.match(value):
        return (
            f"'{value}' is not a valid package name: use lowercase letters, digits and "
            "underscores, starting with a letter (for example 'churn_prediction')."
        )
    if keyword.iskeyword(value) or keyword.issoftkeyword(value):
        return f"'{value}' is a Python keyword and cannot be a package name."
    if value in stdlib_modules():
        return (
            f"'{value}' would shadow the standard library module of the same name; "
            "pick a more specific name."
        )
    if value in INSTALLED_MODULES | LATER_LEVEL_MODULES:
        return (
            f"'{value}' would shadow the '{value}' module the project depends on; "
            "pick a more specific name."
        )
    if value in PROJECT_FOLDERS:
        return f"'{value}' is a folder of the project itself; pick a more specific name."
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
