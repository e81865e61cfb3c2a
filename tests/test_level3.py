"""Level 3 for real: a generated project's own lint and tests, then the champion served by its
console script under uvicorn on 127.0.0.1: readiness, predictions, errors, metrics, a fuzz run
of its OpenAPI schema, SIGTERM with a request in flight, batch scoring and rollback.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import report_image
import yaml
from helpers import (
    PACKAGE,
    SAMPLE_ROW,
    assert_validator_refuses_installed_modules,
    env_for,
    generated_pytest,
    make,
    python_in,
    registry_show,
    require_tool,
    run,
    run_step,
    tool,
)

pytestmark = pytest.mark.slow

PREFIX = f"{PACKAGE.upper()}_"


@pytest.fixture(scope="session")
def project(level3_project: Path) -> Path:
    return level3_project


@pytest.fixture(scope="session")
def venv(level3_venv: Path) -> Path:
    return level3_venv


@pytest.fixture(scope="session")
def champion(level3_champion: dict[str, Any]) -> dict[str, Any]:
    return level3_champion


def test_make_lint(project: Path, venv: Path) -> None:
    make(project, venv, "lint", timeout=600)


def test_package_name_validator_knows_every_installed_module(project: Path, venv: Path) -> None:
    assert_validator_refuses_installed_modules(project, venv)


def test_level_3_tests_of_the_project_pass(project: Path, venv: Path) -> None:
    """The project's serving, promotion, batch and monitoring tests (test_run.py and
    test_level2.py run the rest of the suite, which Level 3 shares, on Level 1 and 2 projects)."""
    files = [
        "tests/test_serving.py",
        "tests/test_api_schema.py",
        "tests/test_promotion.py",
        "tests/test_batch.py",
        "tests/test_monitoring.py",
    ]
    output = run([*generated_pytest(venv), *files], project, env=env_for(venv), timeout=1800)
    assert " passed" in output.stdout
    assert "skipped" not in output.stdout


def test_the_projects_monitoring_stack_tests_pass(project: Path, venv: Path) -> None:
    """The project's tests of deploy/monitoring/ with the real promtool and Prometheus: none of
    them skips (the project's tests skip without them, as this one does)."""
    require_tool("promtool", "prometheus")
    require_tool("prometheus", "prometheus")
    command = [venv / "bin" / "pytest", "-q", "tests/test_monitoring_stack.py"]
    output = run(command, project, env=env_for(venv), timeout=1200)
    assert " passed" in output.stdout
    assert "skipped" not in output.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def call(self, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(
            self.url(path), data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
                status = response.status
        except urllib.error.HTTPError as error:
            text, status = error.read().decode(), error.code
        try:
            return status, json.loads(text)
        except json.JSONDecodeError:
            return status, text

    def wait_ready(self, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                status, body = self.call("/readyz")
            except (urllib.error.URLError, ConnectionError):
                status, body = 0, None
            if status == 200:
                return dict(body)
            time.sleep(0.2)
        raise AssertionError(f"not ready in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def start(
    project: Path, venv: Path, log: Path, make_target: bool = True, **settings: str
) -> Server:
    """`make serve`, or the console script itself (so that a signal reaches uvicorn alone)."""
    port = free_port()
    env = env_for(venv) | {f"{PREFIX}{key.upper()}": value for key, value in settings.items()}
    command = (
        ["make", "serve", "RUN=", f"PORT={port}"]
        if make_target
        else [str(venv / "bin" / "churn-prediction-serve"), "--port", str(port)]
    )
    with log.open("w") as handle:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            command,
            cwd=project,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # SIGTERM reaches the server, not only make
        )
    return Server(process, port, log)


@pytest.fixture(scope="session")
def server(
    project: Path, venv: Path, champion: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("serve")
    served = start(project, venv, folder / "serve.log", prediction_log_dir=str(folder / "log"))
    served.wait_ready()
    yield served
    os.killpg(served.process.pid, signal.SIGTERM)
    served.process.wait(timeout=60)


def test_the_champion_is_served_and_scores_rows(server: Server, champion: dict[str, Any]) -> None:
    ready = server.wait_ready()
    assert ready["model"]["version"] == champion["champion"]
    status, body = server.call("/predict", [SAMPLE_ROW, SAMPLE_ROW | {"contract": "two_year"}])
    assert status == 200, body
    assert len(body["predictions"]) == 2
    assert all(0 <= p["probability"] <= 1 for p in body["predictions"])
    assert body["model"] == {"name": "churn-prediction", "version": "1", "alias": "champion"}


def test_the_workflows_registry_stand_in_prints_what_the_real_command_prints(
    champion: dict[str, Any],
) -> None:
    """`churn-prediction-registry show --json`, run for real on the promoted project (conftest's
    level3_champion), prints exactly what helpers.registry_show makes for test_workflows_l3.py's
    `uv` stand-in: the same keys, each version a string of digits or null."""
    versions = {key: value for key, value in champion.items() if key != "name"}
    assert champion == registry_show(champion["name"], **versions)
    assert champion["champion"] is not None
    assert all(value is None or value.isdigit() for value in versions.values()), versions


def test_the_deploy_workflows_smoke_test_passes_against_the_real_service(
    project: Path, server: Server, champion: dict[str, Any], tmp_path: Path
) -> None:
    """deploy.yml's smoke-test step (test_workflows_l3.py runs it against a stand-in service)
    against the real one: /readyz names the champion, and the row it makes from the service's
    own /openapi.json schema is scored."""
    deploy = yaml.safe_load((project / ".github" / "workflows" / "deploy.yml").read_text())
    steps = deploy["jobs"]["staging"]["steps"]
    (smoke,) = [s for s in steps if s.get("name", "").startswith("Smoke test")]
    env = {
        "SERVICE_URL": server.url("/"),
        "MODEL_VERSION": champion["champion"],
        "ATTEMPTS": "1",
    }
    proc, _ = run_step(smoke["run"], tmp_path, env, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (json.dumps(SAMPLE_ROW | {"age": "old"}).encode(), 422),
        (json.dumps({k: v for k, v in SAMPLE_ROW.items() if k != "age"}).encode(), 422),
        (b"[]", 422),
        (b"{", 400),
        (json.dumps([SAMPLE_ROW] * 1001).encode(), 413),
    ],
    ids=["wrong-type", "missing", "empty", "malformed", "too-many"],
)
def test_bad_requests_are_client_errors(server: Server, raw: bytes, status: int) -> None:
    got, body = server.call("/predict", raw=raw)
    assert got == status
    assert body["detail"][0]["message"]


def samples(page: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Each sample of a metrics page, by its name and labels."""
    found = {}
    for line in page.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            name, _, labels = series.partition("{")
            found[name, frozenset(re.findall(r'(\w+)="([^"]*)"', labels))] = float(value)
    return found


def test_metrics_after_traffic(server: Server) -> None:
    """One scored row moves each counter by exactly one, and what was not dropped reads 0: a
    metric's name on the page proves nothing (its # HELP line is there before any sample)."""
    _, before = server.call("/metrics")
    assert server.call("/predict", SAMPLE_ROW)[0] == 200
    status, page = server.call("/metrics")
    assert status == 200
    then, now = samples(before), samples(page)

    def value(metric: str, /, **labels: str) -> float:  # a label may be called "name"
        return now[metric, frozenset(labels.items())]

    def change(metric: str, /, **labels: str) -> float:
        return value(metric, **labels) - then.get((metric, frozenset(labels.items())), 0.0)

    request = {"method": "POST", "route": "/predict", "status": "200"}
    assert change("serving_requests_total", **request) == 1
    assert change("serving_request_duration_seconds_count", **request) == 1
    assert (
        change("serving_predictions_total", label="0")
        + change("serving_predictions_total", label="1")
        == 1
    )
    assert change("serving_batch_requests_count") == 1
    model = {"alias": "champion", "name": "churn-prediction", "role": "served", "version": "1"}
    assert value("serving_model_info", **model) == 1
    assert value("serving_requests_in_flight") == 1  # the scrape itself
    for reason in ("backlog_full", "write_failed"):
        assert value("serving_prediction_log_dropped_total", reason=reason) == 0


def test_failed_requests_are_logged_as_json_lines_with_their_request_id(server: Server) -> None:
    request = urllib.request.Request(
        server.url("/predict"),
        data=b"[]",
        headers={"Content-Type": "application/json", "X-Request-ID": "trace-42"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    with refused.value as answer:  # it holds the connection open until closed
        assert answer.code == 422
        assert answer.headers["X-Request-ID"] == "trace-42"
    deadline = time.monotonic() + 10
    while '"trace-42"' not in server.log.read_text():
        assert time.monotonic() < deadline, server.log.read_text()[-2000:]
        time.sleep(0.1)
    line = next(x for x in server.log.read_text().splitlines() if '"trace-42"' in x)
    record = json.loads(line)
    assert (record["request_id"], record["status"], record["path"]) == ("trace-42", 422, "/predict")


def test_schemathesis_finds_no_server_error(server: Server, tmp_path: Path) -> None:
    """A fuzz run of the API from its own OpenAPI schema: nothing a client sends is a 500."""
    proc = run(
        [
            tool("schemathesis"),
            "run",
            server.url("/openapi.json"),
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "50",
            "--seed",
            "1",
        ],
        tmp_path,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-5000:]


def test_sigterm_lets_the_request_in_flight_finish(
    project: Path, venv: Path, champion: dict[str, Any], tmp_path: Path
) -> None:
    served = start(project, venv, tmp_path / "serve.log", make_target=False, prediction_log_dir="")
    served.wait_ready()
    body = json.dumps([SAMPLE_ROW] * 10).encode()
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as connection:
        connection.sendall(head + body[:20])  # the request is in flight ...
        time.sleep(0.5)
        served.process.send_signal(signal.SIGTERM)  # ... when the stop signal comes
        time.sleep(0.5)
        connection.sendall(body[20:])
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    # After its graceful shutdown uvicorn raises the signal again, so a supervisor sees how the
    # process ended; as PID 1 in a container, where SIGTERM has no default action, it exits 0.
    assert served.process.wait(timeout=60) in (0, -signal.SIGTERM)
    assert "Finished server process" in served.log.read_text()


def test_batch_predict_scores_a_file_and_sets_bad_rows_aside(
    project: Path, venv: Path, champion: dict[str, Any], tmp_path: Path
) -> None:
    rows = tmp_path / "rows.csv"
    good = ",".join(str(value) for value in SAMPLE_ROW.values())
    bad = good.replace("42,", "forty,", 1)
    rows.write_text(",".join(SAMPLE_ROW) + "\n" + "\n".join([good, bad, good]) + "\n")
    output, rejects = tmp_path / "scored.parquet", tmp_path / "rejects.parquet"
    refused = run(
        ["make", "batch-predict", "RUN=", f"INPUT={rows}", f"OUTPUT={output}"],
        project,
        env=env_for(venv),
        check=False,
    )
    assert refused.returncode != 0
    assert (
        "row 1: age is not a number in its valid range (18 to 120, whole numbers)" in refused.stderr
    )
    assert not output.exists()
    printed = make(
        project,
        venv,
        "batch-predict",
        300,
        f"INPUT={rows}",
        f"OUTPUT={output}",
        f"REJECTS={rejects}",
    )
    assert "2 rows scored by churn-prediction v1" in printed
    counts = python_in(
        venv,
        "-c",
        "import json, sys, pandas as pd; "
        "print(json.dumps([len(pd.read_parquet(p)) for p in sys.argv[1:]]))",
        output,
        rejects,
        cwd=project,
    )
    assert counts == [2, 1]


def test_batch_predict_scores_the_shipped_sample_as_the_readme_says(
    project: Path, venv: Path, champion: dict[str, Any], tmp_path: Path
) -> None:
    """The README's `make batch-predict` line, output aside: every row of data/sample/rows.csv
    is valid and scored, and its customer ids come through."""
    readme = (project / "README.md").read_text()
    (line,) = [line for line in readme.splitlines() if line.startswith("make batch-predict ")]
    words = shlex.split(line.partition("#")[0])
    assert "INPUT=data/sample/rows.csv" in words, line
    output = tmp_path / "scored.parquet"
    arguments = [word for word in words[2:] if not word.startswith("OUTPUT=")]
    printed = make(project, venv, "batch-predict", 300, *arguments, f"OUTPUT={output}")
    assert "20 rows scored by churn-prediction v1" in printed
    ids = python_in(
        venv,
        "-c",
        "import json, sys, pandas as pd; "
        "print(json.dumps([pd.read_parquet(p)['customer_id'].tolist() for p in sys.argv[1:]]))",
        output,
        cwd=project,
    )
    assert ids == [[f"S{number:06d}" for number in range(1, 21)]]


def test_the_serving_benchmark_runs_and_checks_its_batch_scores_against_mlflow(
    project: Path, venv: Path, champion: dict[str, Any], tmp_path: Path
) -> None:
    """`make serve-bench` at its smallest: every server answers under wrk without an error, and
    the batch command's scores equal `mlflow models predict`'s (the script compares them).
    Timings are reported, never asserted."""
    require_tool("wrk", "wrk")
    results = tmp_path / "serving.json"
    arguments = (
        "--duration 1 --warmup 0 --connections 2 --batch-size 5 --workers 1 --cold-starts 1 "
        f"--cost-rounds 1 --batch-rows 2000 --json {results}"
    )
    printed = make(project, venv, "serve-bench", 900, f"ARGS={arguments}")
    measured = json.loads(results.read_text())
    served = {(row["server"], row["rows_per_request"]) for row in measured["online"]}
    assert {("service", 1), ("service", 5), ("mlflow models serve", 1), ("floor", 1)} <= served
    assert all(row["requests"] > 0 and row["http_errors"] == 0 for row in measured["online"])
    assert set(measured["cold_start"]) == {
        "service",
        "service, model baked in",
        "service, registry on an MLflow server",
        "mlflow models serve",
        "MLflow alone: import it, read the alias from the registry",
    }
    assert [row["rows"] for row in measured["batch"]] == [2000, 2000]  # ours, then mlflow's
    observed = measured["observability"]  # the service with and without metrics and the log
    assert set(observed["cost"]) == {"metrics and prediction log", "prediction log", "metrics"}
    assert all(len(samples) == 1 for samples in observed["us_per_request"].values())
    assert "| goal | measured | met |" in printed


def drift_alert_test(page: str, alerts: Path) -> dict[str, Any]:
    """A promtool unit test fed with the drift gauges of a /metrics page: FeatureDrift must fire
    for each feature whose score on the page is above its threshold, and for no other."""
    series, scores, thresholds = [], {}, {}
    for line in page.splitlines():
        if line.startswith(("model_feature_drift_score{", "model_feature_drift_threshold{")):
            name_labels, value = line.rsplit(" ", 1)
            series.append({"series": name_labels, "values": f"{value}x5"})
            labels = dict(re.findall(r'(\w+)="([^"]*)"', name_labels))
            table = scores if line.startswith("model_feature_drift_score") else thresholds
            table[labels["feature"]] = (float(value), labels)
    expected = [
        {
            "exp_labels": {
                "severity": "warning",
                "feature": feature,
                "model_name": labels["model_name"],
                "model_version": labels["model_version"],
            },
            "exp_annotations": {
                "summary": f"{feature} drifts from the baseline of {labels['model_name']} "
                f"v{labels['model_version']} (score {score:.3f})",
                "runbook": "docs/monitoring.md#featuredrift",
            },
        }
        for feature, (score, labels) in sorted(scores.items())
        if score > thresholds[feature][0]
    ]
    test = {"eval_time": "2m", "alertname": "FeatureDrift", "exp_alerts": expected}
    return {
        "rule_files": [str(alerts)],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": [test]}],
    }


@dataclass
class Monitored:
    """docs/monitoring.md's walk-through: `make monitor` after bench/traffic.py's rows like the
    training data, then again after older customers were sent too; the service after it."""

    same: subprocess.CompletedProcess[str]  # the first `make monitor`
    shifted: subprocess.CompletedProcess[str]  # the second
    output: Path  # the second run's output folder (report.html, drift.prom)
    page: str  # the service's /metrics page after the second run wrote its gauges


def monitor(project: Path, venv: Path, log: Path, output: Path) -> subprocess.CompletedProcess[str]:
    arguments = f"ARGS=monitor.predictions_dir={log} monitor.output_dir={output}"
    command = ["make", "monitor", "RUN=", arguments]
    return run(command, project, env=env_for(venv), timeout=300, check=False)


@pytest.fixture(scope="module")
def monitored(
    project: Path, venv: Path, champion: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Monitored:
    folder = tmp_path_factory.mktemp("monitor")
    log, output = folder / "log", folder / "monitor"
    served = start(
        project,
        venv,
        folder / "serve.log",
        make_target=False,
        prediction_log_dir=str(log),
        prediction_log_flush_s="0.2",
        monitoring_metrics_file=str(output / "drift.prom"),
    )
    try:
        served.wait_ready()
        # As the docs say it: the script sends its rows and waits until the log holds them.
        traffic = [venv / "bin" / "python", "bench/traffic.py", "--url", served.url("")]
        run(traffic, project, env=env_for(venv), timeout=300)
        same = monitor(project, venv, log, folder / "same")
        older = ["--rows", "600", "--seed", "5", "--shift", "age=30"]
        run([*traffic, *older], project, env=env_for(venv), timeout=300)
        shifted = monitor(project, venv, log, output)
        status, page = served.call("/metrics")
        assert status == 200
    finally:
        served.stop()
    return Monitored(same, shifted, output, page)


def test_make_monitor_finds_no_drift_in_traffic_like_the_training_data(
    monitored: Monitored,
) -> None:
    printed = monitored.same.stdout
    assert monitored.same.returncode == 0, printed + monitored.same.stderr
    assert "1,200 predictions" in printed, printed
    assert "no drift" in printed, printed
    assert ": drift" not in printed, printed


def test_make_monitor_finds_shifted_traffic(monitored: Monitored) -> None:
    printed = monitored.shifted.stdout
    assert monitored.shifted.returncode != 0, printed  # make reports the command's exit 1
    assert "age: drift" in printed, printed
    assert "1,800 predictions" in printed, printed
    assert re.search(
        r'model_feature_drift_detected\{[^}]*feature="age"[^}]*\} 1\.0', monitored.page
    )


def test_the_drift_alert_fires_for_the_drifted_feature(
    project: Path, monitored: Monitored, tmp_path: Path
) -> None:
    promtool = require_tool("promtool", "prometheus")
    unit_test = drift_alert_test(monitored.page, project / "deploy/monitoring/alerts.yml")
    firing = unit_test["tests"][0]["alert_rule_test"][0]["exp_alerts"]
    assert "age" in [alert["exp_labels"]["feature"] for alert in firing]
    test_file = tmp_path / "drift.test.yml"
    test_file.write_text(json.dumps(unit_test))
    run([promtool, "test", "rules", test_file], tmp_path)


def test_the_drift_report_renders_in_a_browser(monitored: Monitored, tmp_path: Path) -> None:
    """The report renders in a browser as the docs' picture of it does (tools/report_image.py)."""
    browser = require_tool("chromium", "chromium")
    report = monitored.output / "report.html"
    image = report_image.screenshot(report, tmp_path / "report.png", browser=browser)
    assert report_image.png_size(image) == (report_image.WIDTH, report_image.HEIGHT)
    assert image.stat().st_size > 50_000  # plots and tables, not a blank page


def test_rollback_restores_the_previous_champion(
    project: Path, venv: Path, champion: dict[str, Any]
) -> None:
    """A second version (the same model registered again by the register step) is promoted,
    then rolled back; a second rollback has nothing to go back to."""
    make(
        project,
        venv,
        "pipeline",
        900,
        "ARGS=pipeline.force=[register] pipeline.gate.tolerance=1",
    )
    assert "champion: v1 -> v2" in make(project, venv, "promote", 300, "REASON=second")
    assert "champion: v2 -> v1" in make(project, venv, "rollback", 300, "REASON=undo")
    again = run(["make", "rollback", "RUN="], project, env=env_for(venv), check=False)
    assert again.returncode != 0
    assert "nothing to roll back to" in again.stderr
