"""`<project>-monitor [OVERRIDE ...]` (`make monitor`): is the served model's traffic still like
the data it was trained on?

Reads the prediction log's rows that the monitored version (`monitor.model_uri`, the champion by
default) scored in the window, runs Evidently's tests against that version's baseline, writes
report.html, result.json and drift.prom (gauges the service exports) to `monitor.output_dir`,
and logs them as an MLflow run tagged with the version. Overrides are Hydra overrides of
configs/monitor.yaml.

Exit status: 0 no drift; 1 drift or invalid values (the failed checks are listed); 2 nothing to
compare or a mistake (an empty window, a model without a baseline, a bad override, an
unreachable tracking server), one line on stderr. `make monitor` fails on 1 and 2 alike (make
itself exits 2 whenever a command fails; its last line says `Error 1` or `Error 2`): call the
command itself where the difference matters. More: docs/monitoring.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import ProjectError, reported_errors
from ..models.baseline import PREDICTION
from ..serving.model import ModelRef, artifact_paths, fetch, resolve
from ..serving.settings import ServeSettings
from ..tracking.runs import Store
from ..tracking.server import require_tracking_server
from .quality import set_aside_invalid
from .settings import MonitorSection
from .window import Window, WindowError, read_window

if TYPE_CHECKING:
    from .drift import DriftResult  # Evidently: imported when the checks run

CONFIG_NAME = "monitor"
DRIFT_EXIT = 1


class BaselineError(ProjectError):
    """The monitored model has no baseline to compare with."""


class OutputError(ProjectError):
    """The report, result or gauges cannot be written to `monitor.output_dir`."""


def load_baseline(ref: ModelRef, directory: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The reference rows and profile logged with the model (models/baseline.py)."""
    artifacts = artifact_paths(directory)
    if not {"baseline", "profile"} <= artifacts.keys():
        raise BaselineError(
            f"{ref.uri} has no drift baseline (it was logged before the project wrote one): "
            "train and register it again (`make pipeline`), then promote it"
        )
    profile = json.loads(artifacts["profile"].read_text())
    return pd.read_parquet(artifacts["baseline"]), profile


def monitor(cfg: MonitorSection, tracking_uri: str, store: Store | None) -> dict[str, Any]:
    """Run the checks and write (and record) their outcome; the result as written."""
    from .drift import run_report  # Evidently: seconds to import

    ref = resolve(cfg.model_uri, tracking_uri)
    if ref.name is None or ref.version is None:
        raise ProjectError(
            f"monitor.model_uri = {cfg.model_uri!r} names no registered version: use "
            "models:/NAME@ALIAS or models:/NAME/VERSION (the prediction log records those)"
        )
    cache = ServeSettings.load(tracking_uri=tracking_uri).model_cache_dir
    reference, profile = load_baseline(ref, fetch(ref, tracking_uri, cache))
    numeric = [column for column in profile["numeric"] if column != PREDICTION]
    categorical = list(profile["categorical"])
    window = Window.ending(cfg.end, cfg.window_hours)
    read = read_window(
        cfg.predictions_dir, window, ref, numeric, categorical, cfg.skip_unreadable_files
    )
    for path in read.skipped:
        print(f"warning: skipped {path}: not a readable Parquet file", file=sys.stderr)
    current = read.frame
    if len(current) < cfg.min_rows:
        raise WindowError(
            f"{len(current)} predictions of {ref.name} v{ref.version} from {window} in "
            f"{cfg.predictions_dir}, fewer than monitor.min_rows={cfg.min_rows}: nothing to "
            "compare yet (widen monitor.window_hours, or wait for traffic)"
        )
    invalid = set_aside_invalid(current, numeric)
    snapshot, result = run_report(current, reference, profile, cfg, invalid)
    return publish(cfg, ref, window, snapshot, result, store, read.skipped)


def publish(
    cfg: MonitorSection,
    ref: ModelRef,
    window: Window,
    snapshot: Any,
    result: DriftResult,
    store: Store | None,
    skipped: list[str] | None = None,
) -> dict[str, Any]:
    """Write the report and result.json, log the MLflow run, then export the gauges (last, so
    that they follow the recorded run); what was written."""
    from .gauges import FILE_NAME, export
    from .record import record

    finished = datetime.now(UTC)
    output = Path(cfg.output_dir)
    outcome = {
        "model": {**ref.info(), "uri": ref.uri},
        "window": {"start": window.start.isoformat(), "end": window.end.isoformat()},
        "finished": finished.isoformat(),
        **result.to_dict(),
        "skipped_files": skipped or [],  # unreadable log files, left out of the window
    }
    with writing(output / "report.html") as report:
        snapshot.save_html(str(report))
    if store is not None:
        settings = {key: str(value) for key, value in cfg.model_dump().items()}
        outcome["mlflow_run_id"] = record(store, ref, window, result, outcome, report, settings)
    with writing(output / "result.json") as results:
        results.write_text(json.dumps(outcome, indent=2) + "\n")
    with writing(output / FILE_NAME) as gauges:
        export(result, ref, finished, gauges, cfg.pushgateway_url)
    return {**outcome, "files": {"report": str(report), "result": str(results)}}


@contextmanager
def writing(path: Path) -> Iterator[Path]:
    """`path`, its folder made; a failed write (a full disk, a file where the folder should be)
    is an OutputError naming it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield path
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None


def summary(outcome: Mapping[str, Any]) -> list[str]:
    model, window = outcome["model"], outcome["window"]
    lines = [
        f"{model['name']} v{model['version']}: {outcome['rows']:,} predictions from "
        f"{window['start']} to {window['end']} against a baseline of "
        f"{outcome['baseline_rows']:,} training rows"
    ]
    for name, found in outcome["features"].items():
        flags = [
            f"drift {found['score']:.3f} > {found['threshold']:g}" if found["drifted"] else "",
            f"missing {found['missing_share']:.1%}" if found["missing_share"] else "",
            f"outside baseline {found['out_of_range_share']:.1%}"
            if found["out_of_range_share"]
            else "",
            f"invalid {found['invalid_share']:.1%}" if found["invalid_share"] else "",
        ]
        if any(flags):
            lines.append(f"  {name}: {', '.join(flag for flag in flags if flag)}")
    verdict = f"drift: {len(outcome['failed'])} checks failed" if outcome["drift"] else "no drift"
    lines.append(verdict)
    lines += [f"  - {failure}" for failure in outcome["failed"]]
    if outcome["skipped_files"]:
        lines.append(f"skipped unreadable log files: {len(outcome['skipped_files'])}")
    lines.append(f"report: {outcome['files']['report']}")
    if "mlflow_run_id" in outcome:
        lines.append(f"MLflow run: {outcome['mlflow_run_id']}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    cli = argparse.ArgumentParser(
        prog="monitor", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument("overrides", nargs="*", help="Hydra overrides of configs/monitor.yaml")
    args = cli.parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from ..training.config import compose_config
    from .settings import MonitorConfig

    with reported_errors():
        cfg = compose_config(args.overrides, config_name=CONFIG_NAME)
        settings = MonitorConfig.from_config(cfg).monitor
        tracking_uri = str(cfg.logger.tracking_uri)
        require_tracking_server(tracking_uri)
        store = None
        if settings.log_to_mlflow:
            store = dataclasses.replace(
                Store.from_config(cfg), experiment_name=settings.experiment_name
            )
        outcome = monitor(settings, tracking_uri, store)
    print("\n".join(summary(outcome)))
    return DRIFT_EXIT if outcome["drift"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
