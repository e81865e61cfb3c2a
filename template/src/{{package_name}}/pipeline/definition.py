"""The pipeline, defined once: its steps, the artifacts they read and write, the config keys they
read, and the step command that orchestrators run in containers.

Every runner (local, Kubeflow, Airflow), the command line and the diagram read this module. It
imports only the standard library, so an orchestrator's environment can compile the pipeline
without the training stack; step functions are imported only when a step runs. How the pieces
work together: docs/pipeline.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from graphlib import CycleError, TopologicalSorter
from importlib import import_module
from typing import Any

PACKAGE = __name__.split(".")[0]
# Step functions live in `<package>.pipeline.steps.<module>`.
STEPS_PACKAGE = f"{PACKAGE}.pipeline.steps"
# The command that runs one step with explicit artifact paths (pipeline/__main__.py).
STEP_ENTRY = ("-m", f"{PACKAGE}.pipeline", "step")
INPUT_FLAG, OUTPUT_FLAG, RUN_FLAG = "--input", "--output", "--pipeline-run"


@dataclass(frozen=True)
class Artifact:
    """What a step writes: a name the steps refer to and the file it is stored as."""

    name: str
    file: str


@dataclass(frozen=True)
class Step:
    """One step: a plain function `f(<inputs>, <outputs>, context)` (see steps/__init__.py).

    `config` names the config keys (dotted) that the step reads. The step sees those and no
    others (reading another one fails), and its cache key hashes their values: a value that
    changes what the step does cannot be left out of the key.

    `sources` names config keys, among those, that hold the path of a file from outside the
    pipeline (a data source): the cache key hashes the file's content. A step with an unset
    source reads something no file identifies, so it is never served from the cache.
    """

    name: str
    function: str  # "module:function" under STEPS_PACKAGE
    inputs: tuple[str, ...]
    outputs: tuple[Artifact, ...]
    summary: str
    config: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(artifact.name for artifact in self.outputs)

    @property
    def module(self) -> str:
        """The import name of the module that holds the step function."""
        return f"{STEPS_PACKAGE}.{self.function.partition(':')[0]}"

    def load(self) -> Callable[..., Any]:
        function: Callable[..., Any] = getattr(
            import_module(self.module), self.function.partition(":")[2]
        )
        return function


@dataclass(frozen=True)
class Pipeline:
    name: str
    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        producers: dict[str, str] = {}
        for step in self.steps:
            for name in step.output_names:
                if name in producers:
                    writers = f"{producers[name]!r} and {step.name!r}"
                    raise ValueError(f"Artifact {name!r} is written by both {writers}")
                producers[name] = step.name
        for step in self.steps:
            missing = [name for name in step.inputs if name not in producers]
            if missing:
                raise ValueError(f"Step {step.name!r} reads {missing}, which no step writes")
        self.order  # noqa: B018 - fails early on a cycle

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"No step {name!r}; steps: {', '.join(s.name for s in self.steps)}")

    @cached_property
    def producer(self) -> dict[str, str]:
        """Artifact name -> the step that writes it."""
        return {name: step.name for step in self.steps for name in step.output_names}

    @cached_property
    def index(self) -> dict[str, int]:
        return {step.name: position for position, step in enumerate(self.steps)}

    @cached_property
    def edges(self) -> tuple[tuple[str, str], ...]:
        """(upstream, downstream) step pairs, one per pair however many artifacts flow."""
        pairs = {(self.producer[name], step.name) for step in self.steps for name in step.inputs}
        return tuple(sorted(pairs, key=lambda pair: (self.index[pair[0]], self.index[pair[1]])))

    @cached_property
    def order(self) -> tuple[Step, ...]:
        """Steps in an order where every step comes after all of its upstream steps (steps
        that could run in either order keep the order of the definition)."""
        graph = {step.name: {self.producer[name] for name in step.inputs} for step in self.steps}
        sorter = TopologicalSorter(graph)
        try:
            sorter.prepare()
        except CycleError as error:
            raise ValueError(f"Cycle among steps {error.args[1]}") from error
        ordered: list[Step] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready(), key=self.index.__getitem__)
            ordered += [self.step(name) for name in ready]
            sorter.done(*ready)
        return tuple(ordered)

    def downstream(self, name: str) -> tuple[str, ...]:
        """The steps that read what `name` writes."""
        return tuple(target for source, target in self.edges if source == name)


def step_command(
    step: Step,
    artifact_argument: Callable[[str], Any],
    pipeline_run: Any,
    overrides: Sequence[Any] = (),
    python: str = "python",
) -> list[Any]:
    """The command that runs `step` in a container or on a worker:

        python -m <package>.pipeline step NAME --input NAME=PATH ... --output NAME=PATH ...
            --pipeline-run ID [OVERRIDE ...]

    `artifact_argument(name)` is the `NAME=PATH` argument as the orchestrator spells it (a
    Kubeflow placeholder, a shell word); `pipeline_run` the orchestrator's id of the run."""
    command: list[Any] = [python, *STEP_ENTRY, step.name]
    for flag, names in ((INPUT_FLAG, step.inputs), (OUTPUT_FLAG, step.output_names)):
        for name in names:
            command += [flag, artifact_argument(name)]
    return [*command, RUN_FLAG, pipeline_run, *overrides]


PIPELINE = Pipeline(
    name="training",
    steps=(
        Step(
            "ingest",
            "ingest:ingest",
            inputs=(),
            outputs=(Artifact("raw_data", "raw_data.csv"),),
            summary="Materialise the raw table the pipeline trains on",
            config=("data",),
            # Unset: the team's dataset.generate_dataset makes the table, on every run.
            sources=("data.source",),
        ),
        Step(
            "validate",
            "validate:validate",
            inputs=("raw_data",),
            outputs=(
                Artifact("validated_data", "validated_data.csv"),
                Artifact("validation_report", "validation_report.json"),
            ),
            summary="Check the raw table against the data schema; stop on bad data",
            # The schema is code (data/schema.py); the fractions decide the smallest table.
            config=("data.val_fraction", "data.test_fraction"),
        ),
        Step(
            "train",
            "train:train",
            inputs=("validated_data",),
            outputs=(Artifact("model", "model.json"), Artifact("held_out", "held_out.parquet")),
            summary="Fit the model on the validated table, log the run, keep the held-out rows",
            config=(
                "task_name",
                "family",
                "seed",
                "ckpt_path",
                "data",
                "model",
                "trainer",
                "callbacks",
                "logger",
                "paths",
            ),
        ),
        Step(
            "evaluate",
            "evaluate:evaluate",
            inputs=("model", "held_out"),
            outputs=(Artifact("evaluation", "evaluation.json"),),
            summary="Score the model on the rows training held out",
        ),
        Step(
            "register",
            "register:register",
            # The held-out rows too: the current champion is scored on the same rows.
            inputs=("model", "evaluation", "held_out"),
            outputs=(Artifact("registration", "registration.json"),),
            summary="Register the model as challenger if it passes the evaluation gate",
            config=("pipeline.registered_model_name", "pipeline.gate"),
        ),
    ),
)
