"""Mistakes a person fixes (a config value, a data file, an unreachable server).

The project's commands print such an error as one line and exit non-zero; anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations


class ProjectError(Exception):
    """An error in what the user gave the project; its message says what and how to fix it."""

    exit_code = 2
