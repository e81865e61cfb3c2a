"""Runs with the generated project's prepared environment (not the template's): it needs mlflow.

    python mlflow_probe.py store TRACKING_URI             what the store holds, as JSON
    python mlflow_probe.py load MODEL_URI [--block M,...]  load the model, predict its input example
    python mlflow_probe.py modules                        top-level modules a package could shadow
    python mlflow_probe.py registry TRACKING_URI          registered models, versions, aliases, tags
    python mlflow_probe.py weights MODEL_URI ARTIFACT     parameter shapes of an exported program

Each mode prints one JSON document on stdout.
"""

from __future__ import annotations

import importlib.abc
import importlib.metadata
import json
import re
import sys
from pathlib import Path
from typing import Any


class Block(importlib.abc.MetaPathFinder):
    """Makes top-level modules unimportable, as in an image that does not install them."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r} (blocked by the probe)")


BLOCKED: set[str] = set()


def artifacts(client: Any, run_id: str, path: str | None = None) -> list[str]:
    found = []
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            found.extend(artifacts(client, run_id, item.path))
        else:
            found.append(item.path)
    return found


def history(client: Any, run_id: str, key: str) -> list[Any]:
    return sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))


def store(uri: str) -> dict[str, Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    report: dict[str, Any] = {"experiments": [], "runs": [], "logged_models": []}
    experiments = client.search_experiments()
    ids = [experiment.experiment_id for experiment in experiments]
    for experiment in experiments:
        report["experiments"].append(
            {
                "id": experiment.experiment_id,
                "name": experiment.name,
                "artifact_location": experiment.artifact_location,
            }
        )
    for run in client.search_runs(ids, max_results=1000):
        run_id = run.info.run_id
        report["runs"].append(
            {
                "id": run_id,
                "experiment_id": run.info.experiment_id,
                "status": run.info.status,
                "start_time": run.info.start_time,
                "artifact_uri": run.info.artifact_uri,
                "params": run.data.params,
                "tags": run.data.tags,
                "metrics": run.data.metrics,
                "history": {
                    key: [[m.step, m.value, m.timestamp] for m in history(client, run_id, key)]
                    for key in run.data.metrics
                },
                "artifacts": artifacts(client, run_id),
            }
        )
    for model in client.search_logged_models(experiment_ids=ids):
        report["logged_models"].append(
            {
                "model_id": model.model_id,
                "name": model.name,
                "source_run_id": model.source_run_id,
                "artifact_location": model.artifact_location,
                "model_uri": model.model_uri,
                "status": str(model.status),
            }
        )
    return report


def load(model_uri: str) -> dict[str, Any]:
    import mlflow
    from mlflow.models import Model

    local = mlflow.artifacts.download_artifacts(model_uri)
    meta = Model.load(local)
    example = meta.load_input_example(local)
    model = mlflow.pyfunc.load_model(local)
    prediction = model.predict(example)
    rows = len(example)
    predicted = prediction.tolist() if hasattr(prediction, "tolist") else prediction
    return {
        "flavors": sorted(meta.flavors),
        "signature": meta.signature.to_dict() if meta.signature else None,
        "example_rows": rows,
        "example_type": type(example).__name__,
        "prediction": predicted,
        "blocked_imported": sorted(name for name in BLOCKED if name in sys.modules),
    }


def registry(uri: str) -> list[dict[str, Any]]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    models = []
    for model in client.search_registered_models():
        versions = client.search_model_versions(f"name = '{model.name}'")
        models.append(
            {
                "name": model.name,
                "aliases": dict(model.aliases),
                "versions": [
                    {"version": v.version, "run_id": v.run_id, "source": v.source, "tags": v.tags}
                    for v in versions
                ],
            }
        )
    return models


def weights(model_uri: str, artifact: str) -> dict[str, list[int]]:
    """Parameter names and shapes of the torch.export program a logged model carries."""
    import mlflow
    import torch

    # A logged model's URI (models:/m-...) takes no sub-path: fetch the model, then the file.
    local = Path(mlflow.artifacts.download_artifacts(model_uri)) / artifact
    state = torch.export.load(local).state_dict
    return {name: list(tensor.shape) for name, tensor in sorted(state.items())}


def modules() -> list[str]:
    """Top-level modules of every installed distribution that a valid package name could be."""
    return sorted(
        name
        for name in importlib.metadata.packages_distributions()
        if re.fullmatch(r"[a-z][a-z0-9_]*", name)
    )


def main() -> None:
    mode, *args = sys.argv[1:]
    if "--block" in args:
        at = args.index("--block")
        BLOCKED.update(args[at + 1].split(","))
        del args[at : at + 2]
        sys.meta_path.insert(0, Block(BLOCKED))
    if mode == "store":
        result: Any = store(args[0])
    elif mode == "load":
        result = load(args[0])
    elif mode == "modules":
        result = modules()
    elif mode == "registry":
        result = registry(args[0])
    elif mode == "weights":
        result = weights(args[0], args[1])
    else:
        raise SystemExit(f"unknown mode {mode}")
    json.dump(result, sys.stdout, default=str)


if __name__ == "__main__":
    main()
