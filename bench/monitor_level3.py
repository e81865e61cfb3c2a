"""Benchmark: `make monitor` of a Level 3 project on a prediction log of 10k and 100k rows, next to
Evidently alone (the same drift report written by hand, without reading the log by window and
model version, the MLflow run or the gauges).

Uses the project and environment of bench/serving_level3.py when they exist (a champion is
registered), else makes them the same way. The prediction log is written with the service's own
writer (serving/prediction_log.py): rows from the data set's generator, scored by the champion.
Time is wall seconds of the whole command (imports included); memory is the peak resident set of
the process. Results go into bench/results/monitor_level3.json.

    .venv/bin/python bench/monitor_level3.py                  # about 3 minutes with a project
    .venv/bin/python bench/monitor_level3.py --rows 10000
"""

from __future__ import annotations

import argparse
import json
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from common import run, save, shown, with_path
from project import install, render
from serving_level3 import default_groups, make
from train_time import commit

# Runs `command` and prints its wall seconds and the peak resident set (KiB) of its processes.
MEASURED = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:]).returncode
print(json.dumps({"exit": code, "seconds": time.perf_counter() - start,
                  "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""

# Writes ROWS scored rows into FOLDER with the service's prediction log writer.
WRITE_LOG = """
import sys
from pathlib import Path
from {package}.data.dataset import CATEGORICAL_FEATURES, NUMERIC_FEATURES, generate_dataset
from {package}.serving.model import load
from {package}.serving.prediction_log import PredictionLog, log_schema
from {package}.serving.settings import ServeSettings

rows, folder = int(sys.argv[1]), Path(sys.argv[2])
settings = ServeSettings.load()
model = load(settings.model_uri, settings.tracking_uri, settings.model_cache_dir)
schema = log_schema(list(NUMERIC_FEATURES), list(CATEGORICAL_FEATURES))
log = PredictionLog(folder, schema, 1.0, 5.0, rows)
features = [*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]
for start in range(0, rows, 10_000):
    frame = generate_dataset(min(10_000, rows - start), seed=start + 1)
    scores = model.predict(frame)
    values = {{name: frame[name].tolist() for name in features}}
    labels = [int(score >= 0.5) for score in scores]
    requests = [(f"bench-{{start}}", len(frame))]
    log.record(values, scores.tolist(), labels, model.ref.info(), requests)
    log.flush()
"""

# What a user would write with Evidently alone: the log and the baseline as frames, one report.
EVIDENTLY_ALONE = """
import sys
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

log, baseline, profile_path, output = sys.argv[1:]
import json
profile = json.loads(open(profile_path).read())
numeric, categorical = list(profile["numeric"]), list(profile["categorical"])
current = pd.read_parquet(log)[numeric + categorical]
reference = pd.read_parquet(baseline)[numeric + categorical]
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
report = Report([DataDriftPreset()], include_tests=True).run(
    Dataset.from_pandas(current, data_definition=definition),
    Dataset.from_pandas(reference, data_definition=definition),
)
report.save_html(output)
"""


def measured(cmd: list[str], project: Path, env: Path) -> dict[str, Any]:
    proc = run(
        [str(env / "bin" / "python"), "-c", MEASURED, *cmd],
        cwd=project,
        env=with_path(env / "bin"),
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "command": f"cd {project} && PATH={env}/bin:$PATH {shlex.join(cmd)}",
        "exit": result["exit"],
        "seconds": round(result["seconds"], 1),
        "peak_memory_mb": round(result["peak_mb"]),
    }


def baseline_files(project: Path, env: Path, package: str) -> tuple[str, str]:
    """The champion's baseline.parquet and profile.json, downloaded as the monitor does."""
    script = (
        f"from {package}.serving.model import fetch, resolve\n"
        f"from {package}.serving.settings import ServeSettings\n"
        "s = ServeSettings.load()\n"
        "d = fetch(resolve(s.model_uri, s.tracking_uri), s.tracking_uri, s.model_cache_dir)\n"
        "print(d / 'artifacts' / 'baseline.parquet'); print(d / 'artifacts' / 'profile.json')"
    )
    proc = run([str(env / "bin" / "python"), "-c", script], cwd=project, env=with_path(env / "bin"))
    baseline, profile = proc.stdout.strip().splitlines()[-2:]
    return baseline, profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path("/tmp/bench-serving"))
    parser.add_argument("--env", type=Path, default=Path("/tmp/bench-serving-env"))
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()

    results: dict[str, Any] = {}
    if not (args.project / "mlflow.db").is_file():
        results["render_command"] = shown(
            shlex.join(render(args.project, maturity_level=3, deploy_target="kubernetes"))
        )
        results["install"] = install(args.project, args.env, groups=default_groups(args.project))
        commit(args.project)
        results["pipeline"] = make(args.project, args.env, "pipeline")
        results["promote"] = make(args.project, args.env, "promote", "REASON=benchmark")
    answers = yaml.safe_load((args.project / ".copier-answers.yml").read_text())
    package = answers["package_name"]
    baseline, profile = baseline_files(args.project, args.env, package)
    python = str(args.env / "bin" / "python")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        # One untimed round first: the first run after an install writes Python's bytecode
        # caches and fetches the model into its cache, which every later run finds there.
        for round_number, size in enumerate([min(args.rows), *args.rows]):
            folder = Path(tmp) / f"round-{round_number}"
            log = folder / "predictions"
            start = time.perf_counter()
            run(
                [python, "-c", WRITE_LOG.format(package=package), str(size), str(log)],
                cwd=args.project,
                env=with_path(args.env / "bin"),
            )
            written = round(time.perf_counter() - start, 1)
            monitor = [
                "make",
                "monitor",
                "RUN=",
                f"ARGS=monitor.predictions_dir={log} monitor.output_dir={folder / 'monitor'}",
            ]
            alone = [python, "-c", EVIDENTLY_ALONE, str(log), baseline, profile]
            timed = {
                "make monitor": measured(monitor, args.project, args.env),
                "Evidently alone": measured(
                    [*alone, str(folder / "alone.html")], args.project, args.env
                ),
            }
            if round_number == 0:
                continue
            for name, result in timed.items():
                result["command"] = result["command"].replace(tmp, "$TMP")
                rows.append({"rows": size, "tool": name, "log_written_s": written, **result})
                print(
                    f"{size:>8} rows  {name:<16} {result['seconds']:>6.1f} s "
                    f"{result['peak_memory_mb']:>6} MB  exit {result['exit']}",
                    flush=True,
                )
    results["monitor"] = rows
    save("monitor_level3", results)


if __name__ == "__main__":
    main()
