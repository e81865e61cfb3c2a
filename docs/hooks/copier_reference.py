"""MkDocs hook: render reference tables from copier.yml, so the docs never restate it.

A page that contains `<!-- copier:options -->` gets a table of every question, and one that
contains `<!-- copier:levels -->` gets each maturity level with its availability, which comes
from the same validators that copier runs when someone picks a level.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from jinja2 import Environment

OPTIONS_MARKER = "<!-- copier:options -->"
LEVELS_MARKER = "<!-- copier:levels -->"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if OPTIONS_MARKER not in markdown and LEVELS_MARKER not in markdown:
        return markdown
    root = Path(config.config_file_path).parent
    questions = load_questions(root)
    environment = template_environment(root)
    markdown = markdown.replace(OPTIONS_MARKER, options_table(questions, environment))
    return markdown.replace(LEVELS_MARKER, levels_table(questions["maturity_level"], environment))


def load_questions(root: Path) -> dict[str, dict[str, Any]]:
    """Questions in copier.yml order; keys starting with `_` are settings, not questions."""
    config = yaml.safe_load((root / "copier.yml").read_text())
    return {name: spec for name, spec in config.items() if not name.startswith("_")}


def template_environment(root: Path) -> Environment:
    """A Jinja environment with the template's own filters, to evaluate choice validators."""
    environment = Environment()
    load_module(root / "extensions" / "names.py").NameFilters(environment)
    load_module(root / "extensions" / "context.py").GoldenPathContext(environment)
    return environment


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"copier_extension_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def choices_of(spec: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(label, value, validator) for each choice; copier accepts a list or a label -> value map."""
    choices = spec.get("choices") or []
    if isinstance(choices, list):
        return [(str(value), value, "") for value in choices]
    result = []
    for label, value in choices.items():
        if isinstance(value, dict):
            result.append((label, value["value"], value.get("validator", "")))
        else:
            result.append((label, value, ""))
    return result


def summary_of(label: str, value: Any) -> str:
    """Choice labels read `VALUE - what it means`; tables show the value in its own column."""
    return label.removeprefix(f"{value} - ")


def code(value: Any) -> str:
    return f"`{value}`" if value not in (None, "") else "none"


def default_of(spec: dict[str, Any]) -> str:
    if "default" in spec:
        return code(spec["default"])
    example = f" (for example {code(spec['placeholder'])})" if "placeholder" in spec else ""
    return f"none, required{example}"


def one_line(text: Any) -> str:
    return " ".join(str(text or "").split())


def refusal_of(validator: str, environment: Environment) -> str:
    """What copier answers when this choice is picked; empty when the choice is accepted."""
    return environment.from_string(validator).render().strip() if validator else ""


def options_table(questions: dict[str, dict[str, Any]], environment: Environment) -> str:
    rows = [
        "| question | type | default | choices | help |",
        "|---|---|---|---|---|",
    ]
    for name, spec in questions.items():
        choices = "<br>".join(
            (f"{code(value)}: {summary_of(label, value)}" if str(value) != label else code(value))
            + (" *(not available yet)*" if refusal_of(validator, environment) else "")
            for label, value, validator in choices_of(spec)
        )
        cells = [
            f"`{name}`",
            spec.get("type", "yaml"),
            default_of(spec),
            choices or "free text",
            one_line(spec.get("help")),
        ]
        rows.append(f"| {' | '.join(cells)} |")
    return "\n".join(rows)


def levels_table(spec: dict[str, Any], environment: Environment) -> str:
    rows = ["| level | what it adds | status |", "|---|---|---|"]
    for label, value, validator in choices_of(spec):
        refusal = refusal_of(validator, environment)
        status = f"planned (choosing it now: *{refusal}*)" if refusal else "**available**"
        rows.append(f"| {value} | {summary_of(label, value)} | {status} |")
    return "\n".join(rows)
