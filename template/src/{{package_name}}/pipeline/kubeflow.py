"""Compile the pipeline for Kubeflow Pipelines (`make pipeline-compile`).

Each step of the one definition becomes a container component that runs the training image
(deploy/docker/train.Dockerfile) with the definition's step command; artifacts travel as Kubeflow
artifacts, so the compiled DAG's dependencies are the definition's edges. Hydra overrides given
here are baked into every step; `--env` sets environment variables on every container. Imports
only the standard library, kfp and the definition. More: docs/pipeline.md, "Kubeflow Pipelines".
"""

# No `from __future__ import annotations`: kfp reads the pipeline function's annotations as
# objects, and a string "None" return annotation would become a pipeline output.
import argparse
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kfp import compiler, dsl

from .definition import PACKAGE, PIPELINE, STEP_ENTRY, Pipeline, Step, step_command

# The training image that `docker build -f deploy/docker/train.Dockerfile -t IMAGE .` produces.
DEFAULT_IMAGE = os.environ.get("TRAIN_IMAGE", PACKAGE.replace("_", "-") + "-train:latest")


def container_component(step: Step, image: str, overrides: Sequence[str]) -> Any:
    """A Kubeflow container component for one step: an input artifact per declared input,
    an output artifact per declared output, named as in the definition."""

    def body(*artifacts: Any) -> dsl.ContainerSpec:
        # kfp passes one placeholder per parameter of the signature below, in its order.
        named = dict(zip((*step.inputs, *step.output_names), artifacts, strict=True))
        command = step_command(
            step,
            lambda name: dsl.ConcatPlaceholder([f"{name}=", named[name].path]),
            dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            list(overrides),
        )
        program = 1 + len(STEP_ENTRY)  # python -m <package>.pipeline step
        return dsl.ContainerSpec(image=image, command=command[:program], args=command[program:])

    parameters = [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation)
        for names, annotation in (
            (step.inputs, dsl.Input[dsl.Artifact]),
            (step.output_names, dsl.Output[dsl.Artifact]),
        )
        for name in names
    ]
    # kfp reads the component's interface from the signature, its name and its description.
    body.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    body.__name__ = body.__qualname__ = step.name
    body.__doc__ = step.summary
    return dsl.container_component(body)


def build(
    pipeline: Pipeline = PIPELINE,
    *,
    image: str = DEFAULT_IMAGE,
    overrides: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> Callable[..., Any]:
    """The Kubeflow pipeline function for `pipeline`, ready for `kfp.compiler.Compiler`."""
    components = {step.name: container_component(step, image, overrides) for step in pipeline.steps}

    steps = " -> ".join(step.name for step in pipeline.order)
    description = f"The {pipeline.name} pipeline of {PACKAGE}: {steps}"

    def kubeflow_pipeline() -> None:
        tasks: dict[str, Any] = {}
        for step in pipeline.order:
            inputs = {name: tasks[pipeline.producer[name]].outputs[name] for name in step.inputs}
            task = components[step.name](**inputs)
            task.set_display_name(step.name)
            # Kubeflow's cache keys on the command line, not on what a step reads: it would
            # serve `ingest` (no inputs) forever. The steps' own cache decides instead.
            task.set_caching_options(False)
            for name, value in (env or {}).items():
                task.set_env_variable(name, value)
            tasks[step.name] = task

    name = f"{PACKAGE.replace('_', '-')}-{pipeline.name}"
    compiled: Callable[..., Any] = dsl.pipeline(name=name, description=description)(
        kubeflow_pipeline
    )
    return compiled


def compile_pipeline(
    output: Path,
    *,
    image: str = DEFAULT_IMAGE,
    overrides: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(
        build(image=image, overrides=overrides, env=env), package_path=str(output)
    )
    return output


def parse_env(items: Sequence[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--env expects NAME=VALUE, got {item!r}")
        env[name] = value
    return env


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=f"python -m {PACKAGE}.pipeline.kubeflow",
        description="Compile the pipeline for Kubeflow Pipelines.",
    )
    parser.add_argument("--output", type=Path, default=Path("pipeline.yaml"), help="YAML to write")
    parser.add_argument(
        "--image", default=DEFAULT_IMAGE, help=f"training image (default: {DEFAULT_IMAGE})"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment variable for every step, e.g. MLFLOW_TRACKING_URI=http://mlflow:5000",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides baked into every step")
    args = parser.parse_args(argv)
    path = compile_pipeline(
        args.output, image=args.image, overrides=args.overrides, env=parse_env(args.env)
    )
    steps = " -> ".join(step.name for step in PIPELINE.order)
    print(f"Compiled {steps} for image {args.image} into {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
