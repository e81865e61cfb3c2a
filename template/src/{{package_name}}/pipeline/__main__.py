"""Command line of the pipeline (`<project>-pipeline`, `make pipeline`).

    run [OVERRIDE ...]    every step in order, cached and resumable (`make pipeline`)
    step NAME --input ARTIFACT=PATH ... --output ARTIFACT=PATH ... [--pipeline-run ID]
         [OVERRIDE ...]   one step with explicit artifact paths, as orchestrators run it
    show                  the steps in order with their inputs and outputs

Overrides (last) are Hydra overrides of configs/pipeline.yaml. Exit status 1 when a step fails (run
again to resume), 2 before any step runs for a bad override, config value or tracking server:
one line on stderr (HYDRA_FULL_ERROR=1 shows the traceback). More: docs/pipeline.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from ..errors import reported_errors
from .definition import INPUT_FLAG, OUTPUT_FLAG, PIPELINE, RUN_FLAG

CONFIG_NAME = "pipeline"


def _artifact(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected ARTIFACT=PATH, got {text!r}")
    return name, Path(path)


def commands() -> dict[str, argparse.ArgumentParser]:
    """A parser per command. Each is parsed intermixed: overrides may come before, between or
    after the options."""
    run = argparse.ArgumentParser(prog="pipeline run", description="every step, locally")
    run.add_argument("overrides", nargs="*", help="Hydra overrides of configs/pipeline.yaml")
    step = argparse.ArgumentParser(prog="pipeline step", description="one step, explicit paths")
    step.add_argument("name", choices=[s.name for s in PIPELINE.steps])
    for flag in (INPUT_FLAG, OUTPUT_FLAG):
        step.add_argument(
            flag, type=_artifact, action="append", default=[], metavar="ARTIFACT=PATH"
        )
    step.add_argument(
        RUN_FLAG,
        default=None,
        metavar="ID",
        help="the orchestrator's run id: steps with the same id share one parent MLflow run",
    )
    step.add_argument("overrides", nargs="*", help="Hydra overrides of configs/pipeline.yaml")
    show = argparse.ArgumentParser(prog="pipeline show", description="the steps in order")
    return {"run": run, "step": step, "show": show}


def main(argv: Sequence[str] | None = None) -> int:
    parsers = commands()
    cli = argparse.ArgumentParser(
        prog="pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument("command", choices=list(parsers))
    cli.add_argument("arguments", nargs=argparse.REMAINDER, help="the command's arguments")
    chosen = cli.parse_args(argv)
    args = parsers[chosen.command].parse_intermixed_args(chosen.arguments)
    args.command = chosen.command
    console = Console()
    if args.command == "show":
        for step in PIPELINE.order:
            console.print(
                f"{step.name}: {list(step.inputs)} -> {list(step.output_names)}  {step.summary}"
            )
        return 0
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Imported here: `show` and `--help` need no training stack.
    from ..training.config import compose_config
    from .settings import PipelineConfig

    with reported_errors():  # a bad override, value or server: one line, exit status 2
        cfg = compose_config(args.overrides, config_name=CONFIG_NAME)
        PipelineConfig.from_config(cfg)
        # Imported once the config is known to be good: MLflow takes seconds to load.
        from ..tracking.server import require_tracking_server
        from .execute import StepError
        from .local import StepFailedError, resume_hint, run_pipeline
        from .orchestrated import run_step

        require_tracking_server(str(cfg.logger.tracking_uri))
        try:
            if args.command == "run":
                run_pipeline(cfg, console)
            else:
                inputs, outputs = dict(args.input), dict(args.output)
                run_step(cfg, args.name, inputs, outputs, args.pipeline_run, console)
        except (StepFailedError, StepError) as failure:
            name = failure.step if isinstance(failure, StepFailedError) else failure.outcome.name
            cause = failure.__cause__ or failure
            console.print(f"[red bold]Pipeline stopped: step {name!r} failed[/]")
            console.print(f"{type(cause).__name__}: {cause}", markup=False, highlight=False)
            console.print(resume_hint(cfg, name), markup=False, highlight=False)
            return 1
        return 0


if __name__ == "__main__":
    sys.exit(main())
