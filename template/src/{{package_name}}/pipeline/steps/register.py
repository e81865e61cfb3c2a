"""register: the evaluation gate; a passing model becomes a version with alias `challenger`."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from ...registry.gate import gate_and_register
from ...registry.scoring import held_out_rows
from ..settings import PipelineConfig
from ..tracking import current_run_id, set_tags, tracking_client


def register(
    validated_data: Path, model: Path, evaluation: Path, registration: Path, cfg: DictConfig
) -> None:
    """Gate the candidate against thresholds and the champion (scored on the same held-out
    rows); `registration` (JSON) holds the verdict and the version, if one was made."""
    client = tracking_client(cfg)
    gate = PipelineConfig.from_config(cfg).pipeline.gate
    candidate = json.loads(model.read_text())
    metrics = json.loads(evaluation.read_text())["metrics"]
    run_id = current_run_id()
    result = gate_and_register(
        client,
        str(cfg.pipeline.registered_model_name),
        candidate["model_uri"],
        metrics,
        held_out_rows(cfg, validated_data),
        gate,
        extra_tags={"pipeline.step_run_id": run_id} if run_id else None,
    )
    registration.write_text(json.dumps(result.as_dict(), indent=2))
    tags = result.verdict.tags(gate) | {"gate.version": result.version or "none"}
    for tagged in (run_id, candidate.get("run_id")):
        if tagged:
            set_tags(client, tagged, tags)
    if result.version is None:
        print(f"Not registered: the candidate failed the gate: {result.verdict.reason}")
    elif not result.verdict.passed:
        print(f"Registered {result.name} v{result.version} WITHOUT alias: {result.verdict.reason}")
    else:
        print(f"Registered {result.name} v{result.version} as challenger: {result.verdict.reason}")
