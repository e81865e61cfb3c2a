"""Level 2 for real: a generated project's own lint, tests and pipeline, the Airflow DAG loaded by
Airflow's DagBag, and a Level 1 project levelled up to 2, then to 3 (`copier update -d
maturity_level=N`) with the team's edits kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import copier
import pytest
import yaml
from helpers import (
    PACKAGE,
    PROBE,
    assert_validator_refuses_installed_modules,
    env_for,
    generated_pytest,
    generated_repo,
    git_commit_all,
    init_repo,
    make,
    make_template_repo,
    prepare_env,
    project_env,
    python_in,
    render,
    run,
)

pytestmark = pytest.mark.slow

STEPS = ["ingest", "validate", "train", "evaluate", "register"]
AIRFLOW = "apache-airflow==3.3.2"
PYTEST = "pytest==9.2.0"


# --- a Level 2 project with the Kubeflow adapter: lint, tests (incl. the compile), pipeline ------


@pytest.fixture(scope="session")
def project(copier_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_repo(
        copier_template,
        tmp_path_factory.mktemp("level2"),
        maturity_level=2,
        orchestrator="kubeflow",
    )


@pytest.fixture(scope="session")
def venv(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with project_env(project, tmp_path_factory.mktemp("env2")) as env:
        yield env


def test_make_lint(project: Path, venv: Path) -> None:
    make(project, venv, "lint", timeout=600)


def test_package_name_validator_knows_every_installed_module(project: Path, venv: Path) -> None:
    """Level 2 with Kubeflow installs the most: kfp, optuna, pandera and what they pull in."""
    assert_validator_refuses_installed_modules(project, venv)


def level_2_tests(copier_template: Path, project: Path, scratch: Path) -> list[str]:
    """The project's test files that a Level 1 project lacks or renders otherwise. The rest,
    and the code they test, are the same at both levels: tests/test_run.py runs them."""
    level_1 = render(copier_template, scratch / "churn-prediction", maturity_level=1)
    return sorted(
        str(path.relative_to(project))
        for path in (project / "tests").glob("test_*.py")
        if not (level_1 / "tests" / path.name).is_file()
        or (level_1 / "tests" / path.name).read_bytes() != path.read_bytes()
    )


def test_level_2_tests_of_the_project_pass(
    copier_template: Path, project: Path, venv: Path, tmp_path: Path
) -> None:
    """Steps alone, the whole pipeline, cache, bad data, the gate, tuning, the diagram, the
    Kubeflow compile checked against the definition, and the Level 2 configs and errors."""
    files = level_2_tests(copier_template, project, tmp_path)
    assert {"tests/test_pipeline.py", "tests/test_kubeflow.py", "tests/test_config.py"} <= set(
        files
    )
    output = run([*generated_pytest(venv), *files], project, env=env_for(venv), timeout=1800)
    assert " passed" in output.stdout
    assert "skipped" not in output.stdout, "kfp is installed: the Kubeflow compile test must run"


@pytest.fixture(scope="session")
def pipeline_store(project: Path, venv: Path) -> dict[str, Any]:
    first = make(project, venv, "pipeline", timeout=900)
    second = make(project, venv, "pipeline", timeout=900)
    store = python_in(venv, PROBE, "store", "sqlite:///mlflow.db", cwd=project)
    registry = python_in(venv, PROBE, "registry", "sqlite:///mlflow.db", cwd=project)
    return {"first": first, "second": second, "store": store, "registry": registry}


def pipeline_runs(store: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in store["runs"] if r["tags"].get("mlflow.runName") == "pipeline-training"]


def test_pipeline_records_one_parent_run_with_five_nested_step_runs(
    pipeline_store: dict[str, Any],
) -> None:
    runs = pipeline_store["store"]["runs"]
    parents = pipeline_runs(pipeline_store["store"])
    assert len(parents) == 2, "two `make pipeline` runs, one parent run each"
    for parent in parents:
        assert parent["status"] == "FINISHED"
        assert parent["tags"]["pipeline.status"] == "succeeded"
        children = [r for r in runs if r["tags"].get("mlflow.parentRunId") == parent["id"]]
        assert sorted(r["tags"]["pipeline.step"] for r in children) == sorted(STEPS)
        assert all(r["status"] == "FINISHED" for r in children)


def test_second_pipeline_run_is_served_from_the_cache(pipeline_store: dict[str, Any]) -> None:
    """Unchanged inputs, code and config: the first run computes every step; the second runs
    only ingest, whose data (the team's generator) has no fingerprint, and serves the steps
    after it from the cache, since ingest wrote the same bytes."""
    runs = pipeline_store["store"]["runs"]
    first, second = sorted(pipeline_runs(pipeline_store["store"]), key=lambda r: r["start_time"])
    hits = {
        parent["id"]: {
            r["tags"]["pipeline.step"]: r["tags"]["pipeline.cache_hit"]
            for r in runs
            if r["tags"].get("mlflow.parentRunId") == parent["id"]
        }
        for parent in (first, second)
    }
    assert hits[first["id"]] == dict.fromkeys(STEPS, "false")
    assert hits[second["id"]] == {"ingest": "false", **dict.fromkeys(STEPS[1:], "true")}
    assert pipeline_store["second"].count("cached") >= len(STEPS) - 1, pipeline_store["second"]


def test_pipeline_registers_a_challenger_with_the_gate_verdict(
    pipeline_store: dict[str, Any],
) -> None:
    (model,) = pipeline_store["registry"]
    challenger = str(model["aliases"]["challenger"])
    (version,) = [v for v in model["versions"] if str(v["version"]) == challenger]
    tags = version["tags"]
    assert tags["gate.verdict"] == "passed"
    assert float(tags["gate.candidate.auroc"]) >= yaml.safe_load(tags["gate.thresholds"])["auroc"]
    assert {"gate.reason", "gate.metric", "gate.tolerance", "gate.champion.version"} <= set(tags)
    # The cached second run registers nothing new: the model is the same.
    assert len(model["versions"]) == 1


# --- the Airflow adapter, loaded by Airflow itself ---------------------------------------------


def test_airflow_dag_loads_in_airflow_with_the_pipeline_steps_and_edges(
    copier_template: Path, tmp_path: Path
) -> None:
    """Airflow lives in its own environment: Airflow plus the project without its dependencies
    (the DAG imports only the standard-library pipeline definition)."""
    dst = render(
        copier_template, tmp_path / "airflow-project", orchestrator="airflow", maturity_level=2
    )
    venv = tmp_path / "airflow-env"
    env = env_for(venv)
    run(["uv", "venv", "--quiet", "--python", "3.11", venv], dst, timeout=300)
    install = ["uv", "pip", "install", "--quiet", "--python", venv / "bin" / "python"]
    run([*install, AIRFLOW, PYTEST], dst, env=env, timeout=1200)
    run([*install, "--no-deps", "--editable", dst], dst, env=env, timeout=300)
    out = run(
        [
            venv / "bin" / "python",
            "-m",
            "pytest",
            "--noconftest",
            "-p",
            "no:cacheprovider",
            "-q",
            "tests/test_airflow.py",
        ],
        dst,
        env=env,
        timeout=600,
    ).stdout
    assert "skipped" not in out, out
    assert " passed" in out, out


# --- level-up: a Level 1 project with team edits moves to Level 2, then to Level 3 ---------------

NETWORK = f"src/{PACKAGE}/models/network.py"
TRAINER = "configs/trainer/default.yaml"
EXPERIMENT = "configs/experiment/wide_mlp.yaml"
PIPELINE = "configs/pipeline.yaml"
# The team's model change: a LayerNorm in front of the MLP, visible in the exported weights.
USER_LAYER = (
    "        self.layers = nn.Sequential(*layers)\n",
    "        self.layers = nn.Sequential(nn.LayerNorm(in_features), *layers)\n",
)
USER_GATE = ("      auroc: 0.7\n", "      auroc: 0.65  # the team's bar\n")


def pandas_pins(project: Path) -> list[str]:
    text = (project / "pyproject.toml").read_text()
    return sorted(set(re.findall(r'"pandas==[^"]+"', text)))


def level_up(project: Path, level: int, **answers: Any) -> dict[str, Any]:
    copier.run_update(
        project,
        data={"maturity_level": level, **answers},
        vcs_ref="1.0.0",
        defaults=True,
        overwrite=True,
        unsafe=True,
        quiet=True,
    )
    recorded: dict[str, Any] = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert recorded["maturity_level"] == level
    return recorded


def test_level_ups_keep_team_edits_and_level_3_serves_the_team_model(tmp_path: Path) -> None:
    template = make_template_repo(tmp_path / "template", tag="1.0.0")
    project = render(template, tmp_path / "project", vcs_ref="1.0.0", maturity_level=1)
    init_repo(project, "Generate from mlops-golden-path")

    # Level 1 -> 2: the team changed the network and the trainer.
    network = project / NETWORK
    assert USER_LAYER[0] in network.read_text()
    network.write_text(network.read_text().replace(*USER_LAYER))
    trainer = project / TRAINER
    trainer.write_text(trainer.read_text().replace("max_epochs: 15", "max_epochs: 6"))
    git_commit_all(project, "Team: normalise inputs, shorter training")
    assert level_up(project, 2)["orchestrator"] == "local"
    assert USER_LAYER[1] in network.read_text()
    assert "max_epochs: 6" in trainer.read_text()
    assert "<<<<<<<" not in network.read_text() + trainer.read_text()
    for path in (
        PIPELINE,
        f"src/{PACKAGE}/pipeline/definition.py",
        ".github/workflows/train.yml",
        "docs/pipeline.md",
    ):
        assert (project / path).is_file(), f"{path} did not arrive with the level-up"
    assert "pipeline:" in (project / "Makefile").read_text()
    git_commit_all(project, "Level up to 2")

    # Level 2 -> 3: the team also tuned an experiment and the gate.
    experiment, gate = project / EXPERIMENT, project / PIPELINE
    experiment.write_text(experiment.read_text() + "# the team's note\n")
    assert USER_GATE[0] in gate.read_text()
    gate.write_text(gate.read_text().replace(*USER_GATE))
    git_commit_all(project, "Team: our experiment, our gate")
    pandas_before = pandas_pins(project)
    assert level_up(project, 3, deploy_target="kserve")["deploy_target"] == "kserve"
    # The pandas line is one for every level: the team's code never sees its major version flip.
    assert pandas_pins(project) == pandas_before
    assert USER_LAYER[1] in network.read_text()
    assert "max_epochs: 6" in trainer.read_text()
    assert experiment.read_text().endswith("# the team's note\n")
    assert USER_GATE[1] in gate.read_text()
    for path in (
        f"src/{PACKAGE}/serving/app.py",
        "deploy/docker/serve.Dockerfile",
        "deploy/k8s/base/inferenceservice.yaml",
        ".github/workflows/deploy.yml",
        "docs/serving.md",
        "configs/monitor.yaml",
        f"src/{PACKAGE}/monitoring/__main__.py",
        "deploy/monitoring/alerts.yml",
        "deploy/platform/compose.yaml",
        ".github/workflows/monitor.yml",
        "docs/monitoring.md",
    ):
        assert (project / path).is_file(), f"{path} did not arrive with the level-up"
    assert not (project / "deploy/k8s/base/deployment.yaml").exists()
    assert "promote:" in (project / "Makefile").read_text()
    git_commit_all(project, "Level up to 3")

    venv = prepare_env(project, tmp_path / "env" / "venv")
    make(project, venv, "pipeline", timeout=900)
    store = python_in(venv, PROBE, "store", "sqlite:///mlflow.db", cwd=project)
    (train_run,) = [r for r in store["runs"] if r["tags"].get("pipeline.step") == "train"]
    assert train_run["params"]["trainer/max_epochs"] == "6"
    registry = python_in(venv, PROBE, "registry", "sqlite:///mlflow.db", cwd=project)
    (model,) = registry
    (version,) = model["versions"]
    assert version["tags"]["gate.thresholds"] == '{"auroc": 0.65}'
    weights = python_in(
        venv, PROBE, "weights", version["source"], "artifacts/network.pt2", cwd=project
    )
    # The team's LayerNorm is the first layer: a 1-D weight (the template's first Linear is 2-D).
    assert len(weights["layers.0.weight"]) == 1, weights
    assert len(weights["layers.1.weight"]) == 2, weights

    # The team's model is promoted and scored through the serving path (ONNX, no torch).
    assert "champion: (none) -> v1" in make(project, venv, "promote", 300, "REASON=levelled up")
    source = next((project / "data" / "pipeline").glob("train/*/held_out.parquet"))
    scored = make(
        project, venv, "batch-predict", 300, f"INPUT={source}", f"OUTPUT={tmp_path / 'out.parquet'}"
    )
    assert "scored by churn-prediction v1" in scored

    # Monitoring reads the team's model's baseline; with no traffic yet it says so, exit 2.
    nowhere = tmp_path / "no-traffic"
    monitored = run(
        ["make", "monitor", "RUN=", f"ARGS=monitor.predictions_dir={nowhere}"],
        project,
        env=env_for(venv),
        check=False,
    )
    assert monitored.returncode != 0
    assert f"error: no prediction log at {nowhere}" in monitored.stderr, monitored.stderr
