"""What a pipeline run reports: each step's outcome, as JSON, Markdown and a console table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from .execute import StepOutcome

COLOURS = {"ran": "green", "cached": "green", "failed": "red", "not run": "dim"}


@dataclass
class PipelineReport:
    pipeline: str
    run_id: str
    run_dir: str
    steps: list[StepOutcome] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "failed" if any(s.status == "failed" for s in self.steps) else "succeeded"

    def outcome(self, name: str) -> StepOutcome:
        return next(step for step in self.steps if step.name == name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "status": self.status,
            "mlflow_run_id": self.run_id,
            "run_dir": self.run_dir,
            "steps": [vars(step) for step in self.steps],
        }

    def markdown(self) -> str:
        lines = [
            f"# Pipeline `{self.pipeline}`: {self.status}",
            "",
            f"MLflow run `{self.run_id}`",
            "",
            "| step | status | seconds | cache key |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {s.name} | {s.status} | {s.seconds:.1f} | `{s.key[:12]}` |" for s in self.steps
        ]
        for step in self.steps:
            if step.error:
                lines += ["", f"## {step.name} failed", "", "```", step.error, "```"]
        return "\n".join(lines) + "\n"

    def print_summary(self, console: Console) -> None:
        table = Table(title=f"Pipeline {self.pipeline!r}: {self.status}")
        for column in ("step", "status", "seconds", "cache key"):
            table.add_column(column)
        for step in self.steps:
            status = f"[{COLOURS.get(step.status, 'white')}]{step.status}[/]"
            table.add_row(step.name, status, f"{step.seconds:.1f}", step.key[:12])
        console.print(table)
        console.print(f"Report: {self.run_dir}/report.md")
