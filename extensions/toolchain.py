"""Versions that several generated files must agree on, and the pins Dependabot leaves alone.

`gp_uv_version` is the one uv a generated project requires: `[tool.uv] required-version`,
setup-uv in the workflows and the uv image in the Dockerfiles all render it, so a bump is one
edit here. The template's own Makefile, .ci/run and pyproject.toml are not rendered and repeat
it; tests/test_environments.py fails when any of them disagree.

`pinned_names` reads the distributions a rendered pyproject.toml pins. `.github/dependabot.yml`
renders pyproject.toml.jinja and passes it through this filter, so its ignore list is the pins
themselves and cannot drift from them.
"""

from __future__ import annotations

import re
import tomllib

from jinja2 import Environment
from jinja2.ext import Extension

UV_VERSION = "0.13.9"

# A PEP 508 requirement starts with the distribution's name.
REQUIREMENT_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical_name(name: str) -> str:
    """PEP 503 normalisation, which Dependabot applies to Python names before matching."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_names(pyproject: str) -> list[str]:
    """Names in the dependencies, optional dependencies, dependency groups, build requirements."""
    data = tomllib.loads(pyproject)
    project = data.get("project", {})
    lists = [
        project.get("dependencies", []),
        *project.get("optional-dependencies", {}).values(),
        *data.get("dependency-groups", {}).values(),
        data.get("build-system", {}).get("requires", []),
    ]
    names = {
        canonical_name(match.group(1))
        for requirements in lists
        for requirement in requirements
        # `{include-group = ...}` entries of a group name no distribution.
        if isinstance(requirement, str) and (match := REQUIREMENT_NAME.match(requirement))
    }
    return sorted(names)


class Toolchain(Extension):
    """Registers `gp_uv_version` and the `pinned_names` filter with copier's Jinja environment."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.globals["gp_uv_version"] = UV_VERSION
        environment.filters["pinned_names"] = pinned_names
