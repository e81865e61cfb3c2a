"""deploy/platform/ of a Level 3 project: the compose file is valid against the compose
specification and hangs together, and its tracking server runs for real without containers.

No container engine runs here, so the MLflow server of the platform runs as a process: the
exact packages of deploy/platform/mlflow-requirements.txt, PostgreSQL (the machine's package,
started in a temporary data directory) as the backend store, a local artifact root, all on
127.0.0.1. The generated project pointed at it with MLFLOW_TRACKING_URI trains, gates, registers,
promotes and serves without a code change.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import PYTHON, SAMPLE_ROW, env_for, require_tool, run, tool
from test_level3 import free_port, start

pytestmark = pytest.mark.slow

PLATFORM = Path("deploy/platform")
SERVER_READY_S = 120


@pytest.fixture(scope="module")
def compose(level3_project: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (level3_project / PLATFORM / "compose.yaml").read_text()
    )
    return loaded


def test_compose_file_passes_the_compose_specification(level3_project: Path) -> None:
    schema = ["--builtin-schema", "vendor.compose-spec"]
    run([tool("check-jsonschema"), *schema, PLATFORM / "compose.yaml"], level3_project)


def test_compose_publishes_ports_on_loopback_only(compose: dict[str, Any]) -> None:
    published = [
        port for service in compose["services"].values() for port in service.get("ports", [])
    ]
    assert published
    assert all(port.startswith("127.0.0.1:") for port in published), published


def test_compose_mounts_and_builds_files_the_project_has(
    level3_project: Path, compose: dict[str, Any]
) -> None:
    platform = level3_project / PLATFORM
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")) and "/data/" not in source:
                assert (platform / source).exists(), f"{name} mounts {source}"
        if build := service.get("build"):
            context = platform / build["context"]
            assert (context / build["dockerfile"]).is_file(), name


def test_platform_dockerfile_passes_hadolint(level3_project: Path) -> None:
    run([tool("hadolint"), PLATFORM / "mlflow.Dockerfile"], level3_project)


def test_the_tracking_server_runs_the_projects_mlflow(level3_project: Path) -> None:
    pyproject = tomllib.loads((level3_project / "pyproject.toml").read_text())
    project_mlflow = next(
        pin for pin in pyproject["project"]["dependencies"] if pin.startswith("mlflow==")
    )
    server = (level3_project / PLATFORM / "mlflow-requirements.txt").read_text().splitlines()
    assert project_mlflow in server


def postgres_binary(name: str) -> str:
    """A PostgreSQL program: Debian keeps the server's off PATH, in its versioned folder."""
    return require_tool(name, "postgresql", search=[f"/usr/lib/postgresql/*/bin/{name}"])


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to its system user when root runs the tests."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1 in a temporary data directory; its database URI."""
    programs = ("initdb", "postgres", "pg_isready", "createdb")
    initdb, server_program, pg_isready, createdb = map(postgres_binary, programs)
    folder = Path(tempfile.mkdtemp(prefix="platform-postgres-"))
    folder.chmod(0o755)
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(sockets, "postgres")
    init = [initdb, "-D", str(data), "-U", "mlflow", "--auth=trust"]
    subprocess.run(as_postgres(init), check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen(
        as_postgres(
            [
                server_program,
                "-D",
                str(data),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-k",
                str(sockets),
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = [pg_isready, "-h", "127.0.0.1", "-p", str(port)]
        deadline = time.monotonic() + 60
        while subprocess.run(ready, capture_output=True).returncode != 0:
            assert server.poll() is None, "PostgreSQL exited"
            assert time.monotonic() < deadline, "PostgreSQL did not start"
            time.sleep(0.2)
        create = [createdb, "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow"]
        subprocess.run([*create, "mlflow"], check=True, capture_output=True)
        yield f"postgresql://mlflow@127.0.0.1:{port}/mlflow"
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def tracking_server(
    level3_project: Path, postgres: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """deploy/platform/'s MLflow server (its own environment, its pinned packages) on
    PostgreSQL, serving artifacts from a local folder; its URI."""
    folder = tmp_path_factory.mktemp("tracking-server")
    venv = folder / "venv"
    run(["uv", "venv", "--quiet", "--python", PYTHON, venv], folder, timeout=300)
    requirements = level3_project / PLATFORM / "mlflow-requirements.txt"
    install = ["uv", "pip", "install", "--quiet", "--python", venv / "bin" / "python"]
    run([*install, "-r", requirements], folder, timeout=900)
    port = free_port()
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(
        [
            venv / "bin" / "mlflow",
            "server",
            f"--backend-store-uri={postgres}",
            f"--artifacts-destination={(folder / 'artifacts').as_uri()}",
            "--serve-artifacts",
            "--host=127.0.0.1",
            f"--port={port}",
            "--workers=1",
        ],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_READY_S
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert server.poll() is None, (folder / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (folder / "server.log").read_text()[-3000:]
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(server.pid, 15)
        server.wait(60)
        log.close()


def test_a_project_trains_promotes_and_serves_through_the_platform_tracking_server(
    level3_project: Path, level3_venv: Path, tracking_server: str, tmp_path: Path
) -> None:
    env = {"MLFLOW_TRACKING_URI": tracking_server}
    # Its own pipeline cache: the default one remembers steps registered in the sqlite store.
    # A short training: what is checked is where runs and models go, not how good they are.
    overrides = f"ARGS=pipeline.cache_dir={tmp_path / 'cache'} trainer.max_epochs=3"
    pipeline = make_with(level3_project, level3_venv, env, "pipeline", overrides)
    assert "as challenger" in pipeline
    promoted = make_with(level3_project, level3_venv, env, "promote", "REASON=platform")
    assert "champion: (none) -> v1" in promoted
    served = start(
        level3_project,
        level3_venv,
        tmp_path / "serve.log",
        make_target=False,
        tracking_uri=tracking_server,
        prediction_log_dir=str(tmp_path / "log"),
        model_cache_dir=str(tmp_path / "models"),
    )
    try:
        ready = served.wait_ready()
        assert ready["model"]["version"] == "1"
        status, body = served.call("/predict", SAMPLE_ROW)
        assert status == 200, body
        assert body["model"]["alias"] == "champion"
    finally:
        served.stop()
    # The model's files went through the server into its artifact store, not a local mlruns/.
    assert not (level3_project / "mlruns").exists()


def make_with(project: Path, venv: Path, env: dict[str, str], target: str, *args: str) -> str:
    proc = run(["make", target, "RUN=", *args], project, env=env_for(venv) | env, timeout=900)
    return proc.stdout + proc.stderr
