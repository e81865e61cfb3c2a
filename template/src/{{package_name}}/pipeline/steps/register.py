"""register: the evaluation gate; a passing model becomes a version with alias `challenger`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ...families import load
from ...registry.gate import gate_and_register
from ...registry.settings import GateSettings
from ..context import StepContext


def register(
    model: Path, evaluation: Path, held_out: Path, registration: Path, context: StepContext
) -> None:
    """Gate the candidate against thresholds and the champion (scored on the same held-out
    rows); `registration` (JSON) holds the verdict and the version, if one was made."""
    gate = GateSettings.from_config(context.cfg.pipeline.gate)
    candidate = json.loads(model.read_text())
    result = gate_and_register(
        context.store,
        load(candidate["family"]),
        str(context.cfg.pipeline.registered_model_name),
        candidate["model_uri"],
        json.loads(evaluation.read_text())["metrics"],
        pd.read_parquet(held_out),
        gate,
        extra_tags={"pipeline.step_run_id": context.run_id},
    )
    registration.write_text(json.dumps(result.as_dict(), indent=2))
    tags = result.verdict.tags(gate) | {"gate.version": result.version or "none"}
    for run_id in (context.run_id, candidate.get("run_id")):
        if run_id:
            context.store.set_tags(run_id, tags)
    if result.version is None:
        print(f"Not registered: the candidate failed the gate: {result.verdict.reason}")
    elif not result.verdict.passed:
        print(f"Registered {result.name} v{result.version} WITHOUT alias: {result.verdict.reason}")
    else:
        print(f"Registered {result.name} v{result.version} as challenger: {result.verdict.reason}")
