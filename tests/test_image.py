"""The Level 3 serving image (deploy/docker/serve.Dockerfile).

Static: hadolint passes (the Dockerfile is the same for every deploy target). With a lock (`uv
lock` needs index metadata only), the Dockerfile's own `uv sync` command, run with `--dry-run`,
installs the serve group and nothing of the training stack.

With podman (marker `image`; `make system-deps` installs podman and writes its containers.conf),
the image is built and run the way a deployment runs it:
- base images: no registry can be reached, so tests/images.py makes stand-ins for the two FROM
  images (a Debian root filesystem with python3, the host's uv) once; podman keeps them.
- dependencies: a build here cannot reach PyPI (its TLS does not verify through this network), so
  the image takes the Dockerfile's air-gapped path: the serve group's wheels, downloaded on the
  host, installed with `--no-index` (WHEELS=build/wheels).
- model: the shared Level 3 project (conftest.py) runs its pipeline and promotes the champion, and
  `<project>-registry download` writes that version for MODEL_DIR to bake into the image.
- run: read-only root filesystem, published on 127.0.0.1 only; /readyz, /predict, the user, the
  healthcheck, what the image must not hold, a clean exit on SIGTERM, the prediction log.

Timings (base images, wheels, model, build, start) are printed: run with `-s` or `-rP`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import images
import pytest
from helpers import (
    PACKAGE,
    PYTHON,
    SAMPLE_ROW,
    env_for,
    load_extension,
    render,
    require_tool,
    run,
    tool,
    torch_cpu_index,
)

UV_VERSION = load_extension("toolchain").UV_VERSION

SLUG = "churn-prediction"  # BASE_ANSWERS' project name
PREFIX = PACKAGE.upper() + "_"
UID = 10001
DOCKERFILE = "deploy/docker/serve.Dockerfile"
TAG = f"localhost/{SLUG}-serve"
# The training stack and what else must stay out of the serving image (import names).
NOT_IN_IMAGE = ("torch", "lightning", "hydra", "optuna", "flask", "sqlalchemy", "matplotlib")


def render_level3(template: Path, dst: Path, **answers: Any) -> Path:
    return render(
        template,
        dst,
        maturity_level=3,
        python_version=PYTHON,
        torch_backend="pypi",  # the default; either answer locks both builds of torch
        **answers,
    )


# --- static ---------------------------------------------------------------------------------


def test_serve_dockerfile_passes_hadolint(level3_project: Path) -> None:
    """The Dockerfile the image tests build. It is the same for every deploy target
    (test_workflows_l3.py compares them): one lint covers them all."""
    run([tool("hadolint"), level3_project / DOCKERFILE], level3_project)


def planned_installs(output: str) -> dict[str, str]:
    """`name -> version` from the ` + name==version` (or ` + name @ url`) lines of a uv dry run."""
    return dict(re.findall(r"^ \+ ([\w.-]+)(?:==| @ )(\S+)", output, re.M))


@pytest.mark.slow
def test_image_uv_sync_installs_the_serve_group_without_the_training_stack(
    copier_template: Path, tmp_path: Path
) -> None:
    """The online path of the image, checked against a real lock without building: the
    Dockerfile's `uv sync` command, as written, in a dry run."""
    project = render_level3(copier_template, tmp_path / "project")
    env = {key: value for key, value in os.environ.items() if not key.startswith("UV_")}
    # The lock's `cpu` group needs PyTorch's CPU index: the local fallback of it (helpers).
    env |= torch_cpu_index(tmp_path / "torch-index")
    run(["uv", "lock", "--quiet"], project, env=env, timeout=300)
    dockerfile = (project / DOCKERFILE).read_text().replace("\\\n", " ")
    commands = re.findall(r"\buv sync\b[^;&|\n]*", dockerfile)
    assert len(commands) == 1, commands
    env["UV_PROJECT_ENVIRONMENT"] = str(tmp_path / "image-venv")
    out = run([*shlex.split(commands[0]), "--dry-run"], project, env=env, timeout=300)
    planned = planned_installs(out.stdout + out.stderr)
    assert {"fastapi", "uvicorn", "onnxruntime", "mlflow-skinny", "pyarrow"} <= set(planned)
    training = {"torch", "lightning", "hydra-core", "mlflow", "optuna", "matplotlib", SLUG}
    assert training & set(planned) == set(), "the serving image would install the training stack"
    assert not (tmp_path / "image-venv").exists()


# --- the image, built and run with podman ---------------------------------------------------


@contextmanager
def timed(name: str) -> Iterator[None]:
    start = time.monotonic()
    yield
    print(f"image test timing: {name}: {time.monotonic() - start:.1f} s")


@pytest.fixture(scope="module")
def podman_ready() -> None:
    require_tool("podman", "podman")
    if not images.image_exists(images.python_tag(PYTHON)):
        require_tool("mmdebstrap", "mmdebstrap")  # makes the stand-in base image
    images.prune_stale_builds()
    made = images.ensure_base_images(PYTHON, UV_VERSION)
    for tag, seconds in made.items():
        print(
            f"image test timing: base image {tag}: "
            + ("cached" if seconds is None else f"{seconds} s")
        )
    probe = images.podman("run", "--rm", images.python_tag(PYTHON), "true", check=False)
    assert probe.returncode == 0, f"{images.CONTAINERS_CONF_HINT}\n{probe.stderr}"


@pytest.fixture(scope="module")
def project(level3_project: Path) -> Path:
    """The shared Level 3 project (conftest.py) is the build context; `wheels` and `model_dir`
    fill its (git-ignored) build/ folder."""
    return level3_project


@pytest.fixture(scope="module")
def wheels(project: Path) -> Path:
    folder = project / "build" / "wheels"
    folder.mkdir(parents=True)
    with timed("wheels (compile + download)"):
        images.serve_requirements(project, PYTHON, folder / "requirements.txt")
        images.download_wheels(folder / "requirements.txt", folder, PYTHON)
    return folder


@pytest.fixture(scope="module")
def model_dir(project: Path, level3_venv: Path, level3_champion: dict[str, Any]) -> Path:
    output = project / "build" / "model"
    with timed("model download"):
        run(
            [
                level3_venv / "bin" / f"{SLUG}-registry",
                "download",
                "--model-uri",
                f"models:/{SLUG}/{level3_champion['champion']}",
                "--output",
                output,
            ],
            project,
            env=env_for(level3_venv),
            timeout=300,
        )
    assert (output / "MLmodel").is_file()
    return output


def image_id(tag: str) -> str | None:
    found = images.podman("image", "inspect", "--format", "{{.Id}}", tag, check=False)
    return found.stdout.strip() if found.returncode == 0 else None


def build(project: Path, tag: str, **build_args: str) -> None:
    """`podman build` of the serving image; the image the tag named before is removed (its
    layers stay as long as the new image or the build cache uses them)."""
    before = image_id(tag)
    command = ["build", "--pull=never", "--format=docker", "--file", DOCKERFILE, "--tag", tag]
    for name, value in build_args.items():
        command += ["--build-arg", f"{name}={value}"]
    images.podman(*command, str(project), timeout=1200)
    if before is not None and before != image_id(tag):
        images.podman("rmi", before, check=False)


@pytest.fixture(scope="module")
def baked_image(podman_ready: None, project: Path, wheels: Path, model_dir: Path) -> str:
    tag = f"{TAG}:baked"
    with timed("build (model baked in)"):
        build(
            project,
            tag,
            WHEELS=wheels.relative_to(project).as_posix(),
            MODEL_DIR=model_dir.relative_to(project).as_posix(),
        )
    return tag


@pytest.fixture(scope="module")
def registry_image(baked_image: str, project: Path, wheels: Path) -> str:
    """The same image without a baked model: the dependency layers come from the build cache."""
    tag = f"{TAG}:registry"
    with timed("build (no model; cached layers)"):
        build(project, tag, WHEELS=wheels.relative_to(project).as_posix())
    return tag


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@contextmanager
def container(image: str, *options: str) -> Iterator[tuple[str, str]]:
    """A detached container published on 127.0.0.1 only; (name, base URL). Removed afterwards."""
    name = f"{SLUG}-test-{os.getpid()}-{time.monotonic_ns()}"
    port = free_port()
    images.podman(
        "run",
        "--detach",
        "--name",
        name,
        "--publish",
        f"127.0.0.1:{port}:8000",
        "--read-only",  # as a pod with readOnlyRootFilesystem: /tmp is a tmpfs
        *options,
        image,
    )
    try:
        yield name, f"http://127.0.0.1:{port}"
    finally:
        images.podman("rm", "--force", "--time", "0", name, check=False)


def wait_until(url: str, ready: set[int], seconds: float, name: str) -> tuple[int, Any]:
    deadline = time.monotonic() + seconds
    last: tuple[int, Any] | str = "no answer"
    while time.monotonic() < deadline:
        try:
            last = http("GET", url)
            if last[0] in ready:
                return last
        except (urllib.error.URLError, ConnectionError, json.JSONDecodeError) as error:
            last = repr(error)
        time.sleep(0.25)
    logs = images.podman("logs", name, check=False)
    raise AssertionError(
        f"{url} gave {last} for {seconds} s\n{logs.stdout[-5000:]}{logs.stderr[-5000:]}"
    )


def inspect(kind: str, name: str) -> dict[str, Any]:
    """`podman image inspect` or `podman container inspect`, parsed."""
    (found,) = json.loads(images.podman(kind, "inspect", name).stdout)
    return dict(found)


@pytest.mark.image
@pytest.mark.slow
def test_image_config(baked_image: str) -> None:
    image = inspect("image", baked_image)
    config = image["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert set(config["ExposedPorts"]) == {"8000/tcp"}
    env = dict(line.split("=", 1) for line in config["Env"])
    assert env[f"{PREFIX}HOST"] == "0.0.0.0"
    assert env[f"{PREFIX}MODEL_URI"] == "/opt/model", "MODEL_DIR bakes the model in"
    assert env[f"{PREFIX}MODEL_CACHE_DIR"] == "/tmp/model-cache"
    assert config["Cmd"] == [f"{SLUG}-serve"]
    # Docker-format images keep the healthcheck (OCI images have no field for it).
    assert "/healthz" in " ".join(image["Healthcheck"]["Test"])
    print(f"image test: image size {image['Size'] / 1e6:.0f} MB")


@pytest.mark.image
@pytest.mark.slow
def test_image_holds_no_training_stack(baked_image: str) -> None:
    """Lean: the serve group and the package; importing the training stack fails."""
    script = (
        "import importlib.util, json;"
        f"names = {list(NOT_IN_IMAGE)!r};"
        "print(json.dumps({name: importlib.util.find_spec(name) is not None for name in names}))"
    )
    found = json.loads(images.podman("run", "--rm", baked_image, "python", "-c", script).stdout)
    assert not any(found.values()), found
    probe = images.podman(
        "run", "--rm", baked_image, "python", "-c", "import lightning", check=False
    )
    assert probe.returncode != 0
    assert "No module named 'lightning'" in probe.stderr
    # What the service does import is there, from the installed package (not a source tree).
    where = images.podman(
        "run",
        "--rm",
        baked_image,
        "python",
        "-c",
        f"import onnxruntime, {PACKAGE}.serving.app as app; print(app.__file__)",
    ).stdout.strip()
    assert where.startswith("/opt/venv/lib/"), where


@pytest.mark.image
@pytest.mark.slow
def test_baked_model_serves_as_a_deployment_runs_it(
    baked_image: str, level3_champion: dict[str, Any], tmp_path: Path
) -> None:
    # The prediction log's volume (deploy/k8s mounts one there), writable by the image's user.
    log_dir = tmp_path / "predictions"
    log_dir.mkdir()
    os.chown(log_dir, UID, UID)
    mount = f"{log_dir}:/var/lib/{SLUG}/predictions"
    with container(baked_image, "--volume", mount) as (name, url):
        with timed("start to ready (baked model)"):
            status, ready = wait_until(f"{url}/readyz", {200}, 60, name)
        assert ready["status"] == "ready"
        assert ready["model"]["name"] == SLUG
        # Baked by version (as deploy.yml does): the version is fixed, no alias to follow.
        assert ready["model"]["version"] == level3_champion["champion"]
        assert ready["model"]["alias"] is None
        assert ready["model"]["uri"] == "/opt/model"
        assert http("GET", f"{url}/healthz") == (200, {"status": "ok"})

        status, body = http("POST", f"{url}/predict", SAMPLE_ROW)
        assert status == 200, body
        (prediction,) = body["predictions"]
        assert 0.0 <= prediction["probability"] <= 1.0
        assert prediction["label"] in (0, 1)
        assert body["model"]["name"] == SLUG
        assert body["model"]["version"] == ready["model"]["version"]

        assert images.podman("exec", name, "id", "-u").stdout.strip() == str(UID)
        health = images.podman("healthcheck", "run", name, check=False)
        assert health.returncode == 0, health.stdout + health.stderr

        with timed("stop (SIGTERM)"):
            # SIGTERM; podman sends SIGKILL only if the service still runs after 30 s.
            stopped = images.podman("stop", "--time", "30", name)
        logs = images.podman("logs", name)
        # It stopped by itself: no SIGKILL (podman warns "... resorting to SIGKILL", and the exit
        # status would be 137), and uvicorn ran the app's shutdown, which closes the log.
        assert "SIGKILL" not in stopped.stderr, stopped.stderr
        assert inspect("container", name)["State"]["ExitCode"] == 0, logs.stderr
        assert '"Application shutdown complete."' in logs.stdout + logs.stderr, logs.stderr
    # Shutdown wrote the queued row (the log flushes every 5 s, and at exit).
    logged = images.podman(
        "run",
        "--rm",
        "--volume",
        f"{mount}:ro",
        baked_image,
        "python",
        "-c",
        "import pyarrow.parquet as pq;"
        f"print(pq.read_table('/var/lib/{SLUG}/predictions').num_rows)",
    ).stdout.strip()
    assert logged == "1"


@pytest.mark.image
@pytest.mark.slow
def test_without_a_baked_model_the_service_is_live_but_not_ready(registry_image: str) -> None:
    """No model in the image and no registry reachable (the first deploy before any
    promotion): the pod stays alive, /readyz says why it is not ready, /predict refuses."""
    env = inspect("image", registry_image)["Config"]["Env"]
    assert f"{PREFIX}MODEL_URI=models:/{SLUG}@champion" in env
    with container(registry_image) as (name, url):
        with timed("start to live (no model)"):
            wait_until(f"{url}/healthz", {200}, 60, name)
        _, body = wait_until(f"{url}/readyz", {503}, 10, name)
        assert body["detail"][0]["message"], body
        assert http("POST", f"{url}/predict", SAMPLE_ROW)[0] == 503
        assert inspect("container", name)["State"]["Running"]
