"""Command line of the pipeline. Stable: orchestrator adapters call `step` in containers.

python -m <package>.pipeline run [OVERRIDE ...]
    Every step in order with the local runner (cache, resume, MLflow runs); `make pipeline`.
    Overrides are Hydra overrides of configs/pipeline.yaml, for example
    `model.net.hidden_dims=[32] trainer.max_epochs=5` or `pipeline.force=[ingest]`.
    Exit status 1 when a step fails; run it again to resume from that step. Exit status 2,
    before any step runs, for a bad override or config value or an unreachable tracking
    server: one line on stderr (HYDRA_FULL_ERROR=1 shows the traceback).

python -m <package>.pipeline step NAME [--input ARTIFACT=PATH ...]
        [--output ARTIFACT=PATH ...] [--pipeline-run ID] [OVERRIDE ...]
    One step with explicit artifact paths: exactly the step's declared inputs (files the
    step reads) and outputs (files it writes), no cache. The step logs to an MLflow run of
    its own; steps given the same --pipeline-run (the orchestrator's run id) nest under one
    parent run. Exit status 1 when the step fails.

python -m <package>.pipeline show
    The steps in order with their inputs and outputs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from ..errors import reported_errors
from .definition import PIPELINE

CONFIG_NAME = "pipeline"


def _artifact(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected ARTIFACT=PATH, got {text!r}")
    return name, Path(path)


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog=f"python -m {__package__}", description=__doc__.split("\n")[0]
    )
    commands = cli.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run every step locally (cached, resumable)")
    run.add_argument("overrides", nargs="*", help="Hydra overrides of configs/pipeline.yaml")
    step = commands.add_parser("step", help="run one step with explicit artifact paths")
    step.add_argument("name", choices=[s.name for s in PIPELINE.steps])
    step.add_argument(
        "--input", type=_artifact, action="append", default=[], metavar="ARTIFACT=PATH"
    )
    step.add_argument(
        "--output", type=_artifact, action="append", default=[], metavar="ARTIFACT=PATH"
    )
    step.add_argument(
        "--pipeline-run",
        default=None,
        metavar="ID",
        help="the orchestrator's run id: steps with the same id share one parent MLflow run",
    )
    step.add_argument("overrides", nargs="*", help="Hydra overrides of configs/pipeline.yaml")
    commands.add_parser("show", help="list the steps in order")
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    cli = parser()
    # Overrides may come before, between or after the options: collect what argparse left.
    args, extra = cli.parse_known_args(argv)
    unknown = [arg for arg in extra if arg.startswith("-")]
    if unknown:
        cli.error(f"unrecognized arguments: {' '.join(unknown)}")
    overrides = [*getattr(args, "overrides", []), *extra]
    console = Console()
    if args.command == "show":
        for step in PIPELINE.order:
            console.print(
                f"{step.name}: {list(step.inputs)} -> {list(step.outputs)}  {step.summary}"
            )
        return 0
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Imported here: `show` and `--help` need no training stack.
    from ..training.config import compose_config
    from .settings import PipelineConfig

    with reported_errors():  # a bad override, value or server: one line, exit status 2
        cfg = compose_config(overrides, config_name=CONFIG_NAME)
        PipelineConfig.from_config(cfg)
        # Imported once the config is known to be good: MLflow takes seconds to load.
        from ..tracking.server import require_tracking_server
        from .local import StepFailedError, resume_hint, run_pipeline, run_single_step

        require_tracking_server(str(cfg.logger.tracking_uri))
        if args.command == "run":
            try:
                run_pipeline(cfg, console)
            except StepFailedError as error:
                console.print(f"[red bold]Pipeline stopped: step {error.step!r} failed[/]")
                console.print(str(error.__cause__ or error), markup=False, highlight=False)
                console.print(resume_hint(cfg, error.step), markup=False, highlight=False)
                return 1
            return 0
        try:
            run_single_step(cfg, args.name, dict(args.input), dict(args.output), args.pipeline_run)
        except Exception as error:  # the orchestrator shows the log: the step and its error
            console.print(
                f"[red bold]Step {args.name!r} failed:[/] {type(error).__name__}", highlight=False
            )
            console.print(str(error), markup=False, highlight=False)
            return 1
        return 0


if __name__ == "__main__":
    sys.exit(main())
