"""The project as users run it: `mlflow run . -e <step> --env-manager local` on a copy of the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipeline.lineage import CHAIN_TAG, ERROR_TAG, STEP_TAG, upstream_tag
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow
PROJECT_FILES = ("MLproject", "conda.yaml", "pyproject.toml", "configs", "pipeline")


@pytest.fixture(scope="module")
def project(tmp_path_factory, template_store) -> tuple[Path, dict[str, str]]:
    """A copy of the repository with its own tracking store, and the environment to launch it with."""
    root = tmp_path_factory.mktemp("project")
    for name in PROJECT_FILES:
        source = REPO_ROOT / name
        copy = shutil.copytree if source.is_dir() else shutil.copyfile
        copy(source, root / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if source.is_dir() else {}))
    shutil.copyfile(template_store, root / "mlflow.db")
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}", MLFLOW_DISABLE_TELEMETRY="true",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")
    return root, env


def mlflow_run(project, *args: str) -> subprocess.CompletedProcess:
    root, env = project
    command = [str(Path(sys.executable).parent / "mlflow"), "run", ".", "--env-manager", "local", *args]
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
    for step in chain["steps"]:
        run = client.get_run(step["run_id"])
        assert run.info.status == "FINISHED"
        assert run.data.tags[CHAIN_TAG] == chain["chain_id"]
    assert chain["steps"][-1]["verdict"] == "promoted"


def test_train_alone_after_the_chain_uses_the_chains_lineage(chain, project, client):
    done = mlflow_run(project, "-e", "train")
    assert done.returncode == 0, done.stderr[-3000:]
    (newest,) = client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'train'", order_by=["attributes.start_time DESC"],
                                   max_results=1)
    steps = {step["step"]: step["run_id"] for step in chain["steps"]}
    assert newest.info.run_id != steps["train"]
    assert newest.data.tags[upstream_tag("tune")] == steps["tune"]
    assert newest.data.tags[upstream_tag("preprocess")] == steps["preprocess"]
    assert newest.data.tags["pipeline.model.version"] == "2"


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
