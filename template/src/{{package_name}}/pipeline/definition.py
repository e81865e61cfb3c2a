"""The pipeline, defined once: its steps, what each reads and writes, and the edges between them.

Every runner (local, Kubeflow, Airflow) and the generated diagram read this module. It imports
nothing beyond the standard library, so an orchestrator's environment can compile the pipeline
without the training stack; step functions are imported only when a step runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from importlib import import_module
from typing import Any

# Step functions live in `<package>.pipeline.steps.<module>`; resolved relative to this package.
STEPS_PACKAGE = __name__.rpartition(".")[0] + ".steps"


@dataclass(frozen=True)
class Step:
    """One step: a plain function whose parameters are its declared inputs and outputs.

    Inputs and outputs are artifact names. The runner passes each as a path: inputs point at
    what an upstream step wrote, outputs at where this step must write. The function also
    receives the composed config as `cfg`.

    `config` names the config keys (dotted) that the step reads: the local runner's cache key
    hashes their resolved values, so a change elsewhere in the config does not re-run the
    step. None means the whole config.

    `sources` names config keys that hold the path of a file from outside the pipeline that
    the step reads (its data source): the cache key hashes the file's content. When such a key
    is unset, the step reads something no file identifies, so the runner never serves it from
    the cache (see cache.py).
    """

    name: str
    function: str  # "module:function" under STEPS_PACKAGE
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    summary: str
    config: tuple[str, ...] | None = None
    sources: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        """The import name of the module that holds the step function."""
        return f"{STEPS_PACKAGE}.{self.function.partition(':')[0]}"

    def load(self) -> Callable[..., Any]:
        function_name = self.function.partition(":")[2]
        module = import_module(self.module)
        function: Callable[..., Any] = getattr(module, function_name)
        return function


@dataclass(frozen=True)
class Pipeline:
    name: str
    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        producers: dict[str, str] = {}
        for step in self.steps:
            for artifact in step.outputs:
                if artifact in producers:
                    raise ValueError(
                        f"Artifact {artifact!r} is written by both {producers[artifact]!r} "
                        f"and {step.name!r}"
                    )
                producers[artifact] = step.name
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
        return {artifact: step.name for step in self.steps for artifact in step.outputs}

    @cached_property
    def edges(self) -> tuple[tuple[str, str], ...]:
        """(upstream, downstream) step pairs, one per pair however many artifacts flow."""
        pairs = {
            (self.producer[artifact], step.name) for step in self.steps for artifact in step.inputs
        }
        return tuple(sorted(pairs, key=lambda pair: (self.index[pair[0]], self.index[pair[1]])))

    @cached_property
    def index(self) -> dict[str, int]:
        return {step.name: position for position, step in enumerate(self.steps)}

    @cached_property
    def order(self) -> tuple[Step, ...]:
        """Steps in an order where every step comes after all of its upstream steps."""
        done: list[Step] = []
        pending = list(self.steps)
        while pending:
            ready = [
                step
                for step in pending
                if all(self.producer[name] in {d.name for d in done} for name in step.inputs)
            ]
            if not ready:
                raise ValueError(f"Cycle among steps {[step.name for step in pending]}")
            done.extend(ready)
            pending = [step for step in pending if step not in ready]
        return tuple(done)

    def downstream(self, name: str) -> tuple[str, ...]:
        """The steps that read what `name` writes."""
        return tuple(target for source, target in self.edges if source == name)


PIPELINE = Pipeline(
    name="training",
    steps=(
        Step(
            "ingest",
            "ingest:ingest",
            inputs=(),
            outputs=("raw_data",),
            summary="Materialise the raw table the pipeline trains on",
            config=("data",),
            # Unset: the team's dataset.generate_dataset makes the table, on every run.
            sources=("data.source",),
        ),
        Step(
            "validate",
            "validate:validate",
            inputs=("raw_data",),
            outputs=("validated_data", "validation_report"),
            summary="Check the raw table against the data schema; stop on bad data",
            # The schema is code (data/schema.py); the fractions decide the smallest table.
            config=("data.val_fraction", "data.test_fraction"),
        ),
        Step(
            "train",
            "train:train",
            inputs=("validated_data",),
            outputs=("model",),
            summary="Fit the model on the validated table and log the training run",
            config=("seed", "ckpt_path", "data", "model", "trainer", "callbacks", "logger"),
        ),
        Step(
            "evaluate",
            "evaluate:evaluate",
            inputs=("validated_data", "model"),
            outputs=("evaluation",),
            summary="Score the model on the held-out split",
            config=("data", "logger"),
        ),
        Step(
            "register",
            "register:register",
            # The data too: the current champion is scored on the same held-out split.
            inputs=("validated_data", "model", "evaluation"),
            outputs=("registration",),
            summary="Register the model as challenger if it passes the evaluation gate",
            config=("data", "logger", "pipeline.registered_model_name", "pipeline.gate"),
        ),
    ),
)
