"""Compile each template string once per render.

copier renders every path of the template through `Environment.from_string`, part by part, and
compiles the answers file's name again for each path: with some 400 paths that is most of a
render's time (docs/benchmarks.md, "Render time per level"). A compiled Jinja template renders
any context, so compiling the same source once is enough.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import Environment
from jinja2.ext import Extension


class CompiledStrings(Extension):
    """Caches `from_string` for plain sources (no per-call globals or template class)."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        compile_source = lru_cache(maxsize=4096)(environment.from_string)
        plain = environment.from_string

        def from_string(source: Any, globals: Any = None, template_class: Any = None) -> Any:
            if isinstance(source, str) and globals is None and template_class is None:
                return compile_source(source)
            return plain(source, globals, template_class)

        environment.from_string = from_string  # type: ignore[method-assign]
