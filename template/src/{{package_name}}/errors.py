"""Mistakes a person fixes (a config value, a data file, an unreachable server).

The project's commands print such an error as one line and exit non-zero; anything else is
a bug and keeps its traceback. `HYDRA_FULL_ERROR=1` (Hydra's own switch) shows the traceback
of a mistake too, for example `HYDRA_FULL_ERROR=1 make train ARGS="trainer.max_epochs=-1"`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

FULL_ERROR_ENV = "HYDRA_FULL_ERROR"


class ProjectError(Exception):
    """An error in what the user gave the project; its message says what and how to fix it."""

    exit_code = 2


def usage_errors() -> tuple[type[Exception], ...]:
    """The exceptions that are a user's mistake: ProjectError, and what Hydra raises for a bad
    command line or config group (an override it cannot parse or apply, an option that does not
    exist). Hydra's are looked up only once it is loaded: a process that has not imported it
    (the model server, which starts faster without it) cannot have raised them."""
    hydra = sys.modules.get("hydra.errors")
    if hydra is None:
        return (ProjectError,)
    return (ProjectError, hydra.ConfigCompositionException, hydra.OverrideParseException)


def one_line(error: BaseException) -> str:
    """The message of a mistake on one line (Hydra's messages span several)."""
    text = str(error)
    hydra = sys.modules.get("hydra.errors")
    if hydra is not None and isinstance(error, hydra.OverrideParseException):
        reason, _, see = error.message.partition("\nSee ")
        text = f"cannot parse override {error.override!r}: {reason}"
        text += f" (see {see.removesuffix(' for details')})" if see else ""
    text = text.split("\nConfig search path:")[0]  # Hydra's folders, after the options
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # Where a line break alone ends a phrase, a semicolon keeps the phrases apart.
    joined = [line if line.endswith((".", ":", ";", "?", "!")) else f"{line};" for line in lines]
    return " ".join([*joined[:-1], *lines[-1:]])


@contextmanager
def reported_errors() -> Iterator[None]:
    """Wraps a command: a mistake becomes `error: <message>` on stderr and exit status 2.

    Every entry point (training, pipeline, search) runs inside it, so the same mistake reads
    the same everywhere. With HYDRA_FULL_ERROR=1 the error propagates with its traceback.
    """
    try:
        yield
    except Exception as error:
        if not isinstance(error, usage_errors()) or os.environ.get(FULL_ERROR_ENV) == "1":
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        raise SystemExit(getattr(error, "exit_code", ProjectError.exit_code)) from None
