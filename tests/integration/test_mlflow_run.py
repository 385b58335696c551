"""The project as users run it: `mlflow run . -e <step> --env-manager local` on a copy of the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from pipeline.contract import CHAIN_TAG, ERROR_TAG, STEP_TAG, upstream_tag
from tests.helpers import REPO_ROOT, TEST_CONFIG

pytestmark = pytest.mark.slow
# The tests' config and hook travel with the copy: configs/ and pipeline/features.py are the user's (a template).
PROJECT_FILES = ("MLproject", "conda.yaml", "pyproject.toml", "configs", "pipeline", "tests/configs", "tests/hooks")
CONFIG = TEST_CONFIG.relative_to(REPO_ROOT).as_posix()  # relative to the copy, as `mlflow run` users write it


def copy_project(root: Path, template_store: Path) -> dict[str, str]:
    """Copy the repository's project files to `root` with a fresh tracking store; the environment to launch with."""
    for name in PROJECT_FILES:
        source = REPO_ROOT / name
        copy = shutil.copytree if source.is_dir() else shutil.copyfile
        copy(source, root / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if source.is_dir() else {}))
    shutil.copyfile(template_store, root / "mlflow.db")
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    env.update(
        MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}",
        MLFLOW_DISABLE_TELEMETRY="true",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
    )
    return env


@pytest.fixture(scope="module")
def project(tmp_path_factory, template_store) -> tuple[Path, dict[str, str]]:
    """A copy of the repository with its own tracking store, and the environment to launch it with."""
    root = tmp_path_factory.mktemp("project")
    return root, copy_project(root, template_store)


def mlflow_run(project, *args: str, config: str | None = CONFIG) -> subprocess.CompletedProcess:
    """`mlflow run` on the tests' config; config=None leaves the MLproject default (configs/pipeline.yaml)."""
    root, env = project
    command = [str(Path(sys.executable).parent / "mlflow"), "run", ".", "--env-manager", "local", *args]
    command += ["-P", f"config={config}"] if config else []
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def chain(project) -> dict:
    done = mlflow_run(project, "-e", "main", "-P", "n-trials=3", "-P", "result-file=chain.json")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((project[0] / "chain.json").read_text())


@pytest.fixture(scope="module")
def client(project) -> MlflowClient:
    return MlflowClient(project[1]["MLFLOW_TRACKING_URI"])


def test_main_runs_the_chain_under_the_launchers_run(chain, client):
    assert chain["status"] == "FINISHED"
    assert [step["step"] for step in chain["steps"]] == ["preprocess", "tune", "train", "evaluate"]
    launcher = client.get_run(chain["chain_id"])
    assert launcher.info.status == "FINISHED" and launcher.data.tags[STEP_TAG] == "main"
    assert launcher.info.run_name.startswith("main-")  # renamed from MLflow's random name, like the steps
    for step in chain["steps"]:
        run = client.get_run(step["run_id"])
        assert run.info.status == "FINISHED"
        assert run.data.tags[CHAIN_TAG] == chain["chain_id"]
        assert run.data.tags["mlflow.parentRunId"] == chain["chain_id"]  # nested under the launcher's run
    assert chain["steps"][-1]["verdict"] == "promoted"


def test_train_alone_after_the_chain_uses_the_chains_lineage(chain, project, client):
    done = mlflow_run(project, "-e", "train")
    assert done.returncode == 0, done.stderr[-3000:]
    (newest,) = client.search_runs(
        ["0"], f"tags.`{STEP_TAG}` = 'train'", order_by=["attributes.start_time DESC"], max_results=1
    )
    steps = {step["step"]: step["run_id"] for step in chain["steps"]}
    assert newest.info.run_id != steps["train"]
    assert newest.data.tags[upstream_tag("tune")] == steps["tune"]
    assert newest.data.tags[upstream_tag("preprocess")] == steps["preprocess"]
    assert newest.data.tags["pipeline.model.version"] == "2"
    assert newest.info.run_name.startswith("train-")  # the launcher's run, named like a step's own


def test_a_bad_pin_fails_the_launchers_run(chain, project, client):
    done = mlflow_run(project, "-e", "tune", "-P", "upstream-run-id=0123456789abcdef")
    assert done.returncode != 0
    assert "pinned upstream run: run '0123456789abcdef' does not exist" in done.stderr
    (failed,) = client.search_runs(["0"], "attributes.status = 'FAILED'")
    assert failed.data.tags[STEP_TAG] == "tune" and "does not exist" in failed.data.tags[ERROR_TAG]


def test_a_bad_config_value_leaves_no_run_running(project, client):
    done = mlflow_run(project, "-e", "preprocess", "-P", "test-size=1.5")
    assert done.returncode != 0
    assert "`split.test_size`: Input should be less than 1" in done.stderr
    assert client.search_runs(["0"], "attributes.status = 'RUNNING'") == []
    (failed,) = client.search_runs(["0"], "params.`test-size` = '1.5'")
    assert failed.info.status == "FAILED" and "split.test_size" in failed.data.tags[ERROR_TAG]


def test_the_template_switched_to_a_csv_by_editing_configs_only(tmp_path, template_store):
    """What a user does with the template: put a table beside it, edit configs/pipeline.yaml, `mlflow run` it."""
    from tests.integration.test_tasks import customers

    root = tmp_path / "my-project"
    root.mkdir()
    env = copy_project(root, template_store)
    (root / "data").mkdir()
    customers(400, seed=5).to_csv(root / "data" / "customers.csv", index=False)
    config_file = root / "configs" / "pipeline.yaml"  # the user's edit, from the tests' config (not the shipped one)
    config = yaml.safe_load(TEST_CONFIG.read_text())
    config["data"].update(source="data/customers.csv", target="churned", id_columns=["customer_id"])
    config["registry"]["model_name"] = "customers-xgb"
    config["evaluate"]["binary"]["thresholds"] = {"roc_auc": {"threshold": 0.7}}
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))

    done = mlflow_run((root, env), "-e", "main", "-P", "n-trials=3", "-P", "result-file=chain.json", config=None)
    assert done.returncode == 0, done.stderr[-3000:]
    chain = json.loads((root / "chain.json").read_text())
    assert chain["steps"][-1]["verdict"] == "promoted" and chain["steps"][-1]["model_name"] == "customers-xgb"
    customers(25, seed=6).drop(columns=["churned"]).to_csv(root / "data" / "new.csv", index=False)
    done = mlflow_run(
        (root, env),
        "-e",
        "predict",
        "-P",
        f"input={root / 'data' / 'new.csv'}",
        "-P",
        f"output={root / 'scored.csv'}",
        config=None,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    scored = pd.read_csv(root / "scored.csv")
    assert len(scored) == 25 and {"customer_id", "prediction", "probability_1"} <= set(scored.columns)


def test_a_step_runs_in_an_environment_uv_builds_from_conda_yaml(tmp_path, template_store):
    """`--env-manager uv`: MLflow builds a virtualenv from conda.yaml with uv (no conda) and runs the step in it."""
    if shutil.which("uv", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("uv is not installed (it comes with the test extra)")
    env = copy_project(tmp_path, template_store)
    command = [str(Path(sys.executable).parent / "mlflow"), "run", ".", "-e", "preprocess", "--env-manager", "uv"]
    command += ["-P", f"config={CONFIG}", "-P", "result-file=result.json"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    run = MlflowClient(env["MLFLOW_TRACKING_URI"]).get_run(result["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.project.env"] == "uv"
    assert run.data.tags[STEP_TAG] == "preprocess" and result["status"] == "FINISHED"
