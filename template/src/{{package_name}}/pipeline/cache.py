"""Cache keys of pipeline steps: the sha256 of what a step reads (its name, input files, code,
config and data sources). The rule in full, and what it leaves out: docs/pipeline.md, "Cache and
resume"."""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from .context import step_config
from .definition import Step

PACKAGE = __name__.split(".")[0]
PACKAGE_DIR = Path(__file__).resolve().parents[1]
WORK_DIR = Path("<work dir>")


def file_digest(path: Path) -> str:
    """sha256 of a file, or of a folder's files and their relative names."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as stream:
            digest.update(hashlib.file_digest(stream, "sha256").digest())
    return digest.hexdigest()


def module_file(module: str) -> Path | None:
    """The source file of a module of this package, or None for anything else."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(module: str, source: Path) -> Iterator[str]:
    is_package = source.name == "__init__.py"
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            yield base
            # `from . import name` may name a submodule
            yield from (f"{base}.{alias.name}" for alias in node.names)


def code_files(modules: Iterable[str]) -> list[Path]:
    """The package's source files these modules import, transitively (and their parents'
    `__init__.py`), found by parsing: nothing is imported."""
    seen: dict[str, Path] = {}
    pending = list(modules)
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        source = module_file(module)
        if source is None:
            continue
        seen[module] = source
        parts = module.split(".")
        pending.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        pending.extend(_imported_modules(module, source))
    return sorted(set(seen.values()))


def _targets(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "_target_" and isinstance(value, str):
                yield value
            else:
                yield from _targets(value)
    elif isinstance(node, list):
        for value in node:
            yield from _targets(value)


def _target_module(target: str) -> str:
    """`pkg.models.network.MLP` -> `pkg.models.network` (the longest prefix with a file)."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        if module_file(".".join(parts[:end])) is not None:
            return ".".join(parts[:end])
    return target


def source_digests(step: Step, cfg: DictConfig) -> dict[str, str | None]:
    """The content of each data source the step declares; None where the key is unset or
    names no file (what the step reads then has no fingerprint)."""
    digests: dict[str, str | None] = {}
    for key in step.sources:
        value = OmegaConf.select(cfg, key, throw_on_missing=False)
        path = Path(str(value)) if value else None
        digests[key] = file_digest(path) if path is not None and path.is_file() else None
    return digests


def unfingerprinted(parts: Mapping[str, Any]) -> list[str]:
    """The declared sources (config keys) of a key's parts that have no fingerprint: while
    there is one, the step runs every time."""
    return [key for key, digest in parts["sources"].items() if digest is None]


def cache_key(step: Step, cfg: DictConfig, inputs: Mapping[str, Path]) -> dict[str, Any]:
    """The key and what went into it (kept in the cache entry's manifest). The config part is
    what the step sees (context.step_config) with a placeholder for its working folder, which
    is new on every run, and for every value made from it (a checkpoint folder)."""
    config = cast("dict[str, Any]", OmegaConf.to_container(step_config(step, cfg, WORK_DIR)))
    modules = [step.module, *(_target_module(t) for t in _targets(config))]
    if "family" in config:  # the model family is code too (families/<name>.py)
        modules.append(f"{PACKAGE}.families.{config['family']}")
    code = {
        path.relative_to(PACKAGE_DIR.parent).as_posix(): file_digest(path)
        for path in code_files(modules)
    }
    parts = {
        "step": step.name,
        "inputs": {name: file_digest(path) for name, path in sorted(inputs.items())},
        "code": code,
        "config": config,
        "sources": source_digests(step, cfg),
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return {"key": hashlib.sha256(text.encode()).hexdigest(), **parts}
