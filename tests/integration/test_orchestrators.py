"""The orchestrator examples, run for real on this test's tracking store: the Prefect flow under Prefect's test
harness (a temporary Prefect server), the Airflow DAG with `airflow dags test` from its own environment; each task
a step process pinned to the run of the task before."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipeline.contract import CHAIN_TAG, STEP_TAG, upstream_tag
from tests.helpers import REPO_ROOT, TEST_CONFIG

pytestmark = pytest.mark.slow
sys.path.insert(0, str(REPO_ROOT / "examples" / "orchestrators"))
# The tests' config (configs/pipeline.yaml is the user's): few, short trials.
STEP_OPTIONS = ("--config", str(TEST_CONFIG))


def test_the_prefect_flow_runs_the_chain_with_lineage_through_task_results(tracking_uri, tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.setenv("PIPELINE_PROJECT_DIR", str(REPO_ROOT))
    from prefect.testing.utilities import prefect_test_harness
    from prefect_flow import mlflow_pipeline

    with prefect_test_harness(server_startup_timeout=120):
        results = mlflow_pipeline(chain_id="prefect-test-chain", options=STEP_OPTIONS)
    client = MlflowClient(tracking_uri)
    runs = {step: client.get_run(result["run_id"]) for step, result in results.items()}
    assert all(run.info.status == "FINISHED" for run in runs.values())
    assert {run.data.tags[CHAIN_TAG] for run in runs.values()} == {"prefect-test-chain"}
    assert runs["tune"].data.tags[upstream_tag("preprocess")] == results["preprocess"]["run_id"]
    assert runs["train"].data.tags[upstream_tag("tune")] == results["tune"]["run_id"]
    assert runs["evaluate"].data.tags[upstream_tag("train")] == results["train"]["run_id"]
    assert results["evaluate"]["verdict"] == "promoted" and results["train"]["model_version"] == "1"


def test_a_failed_step_raises_with_its_exit_code_and_error(tracking_uri, monkeypatch):
    monkeypatch.setenv("PIPELINE_PROJECT_DIR", str(REPO_ROOT))
    from steps import StepFailed, run_step

    with pytest.raises(StepFailed, match=r"tune failed \(no usable upstream run, exit 3\): .*does not exist") as error:
        run_step("tune", "0123456789abcdef", None, *STEP_OPTIONS)
    assert error.value.result["status"] == "FAILED" and error.value.result["run_id"]


def _airflow_python() -> str:
    """The Airflow environment's Python (`make test` builds .venv-airflow and passes AIRFLOW_PYTHON)."""
    path = os.environ.get("AIRFLOW_PYTHON") or str(REPO_ROOT / ".venv-airflow" / "bin" / "python")
    if not Path(path).is_file():
        if os.environ.get("PIPELINE_REQUIRE_AIRFLOW") == "1":
            raise AssertionError(f"no Airflow environment at {path} (make test builds it)")
        pytest.skip(f"no Airflow environment at {path}: run `make test`, which builds it")
    return path


def _airflow_env(airflow: list[str], tmp_path: Path) -> dict[str, str]:
    """The environment `airflow dags test` runs the examples' DAGs in, its database migrated."""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "examples" / "orchestrators"),
        "PIPELINE_PYTHON": sys.executable,
        "PIPELINE_PROJECT_DIR": str(REPO_ROOT),
        "PIPELINE_STEP_OPTIONS": shlex.join(STEP_OPTIONS),
    }
    subprocess.run([*airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return env


def test_the_airflow_dag_runs_the_chain_with_lineage_through_xcom(tracking_uri, tmp_path):
    airflow = [_airflow_python(), "-m", "airflow"]
    env = _airflow_env(airflow, tmp_path)
    done = subprocess.run(
        [*airflow, "dags", "test", "mlflow_pipeline", "-c", json.dumps({"chain_id": "airflow-chain"})],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    client = MlflowClient(tracking_uri)
    runs = {run.data.tags[STEP_TAG]: run for run in client.search_runs(["0"], f"tags.`{CHAIN_TAG}` = 'airflow-chain'")}
    assert set(runs) == {"preprocess", "tune", "train", "evaluate"}
    assert all(run.info.status == "FINISHED" for run in runs.values())
    assert runs["tune"].data.tags[upstream_tag("preprocess")] == runs["preprocess"].info.run_id
    assert runs["train"].data.tags[upstream_tag("tune")] == runs["tune"].info.run_id
    assert runs["evaluate"].data.tags[upstream_tag("train")] == runs["train"].info.run_id


def breast_cancer_batches(folder: Path) -> dict[str, Path]:
    """Rows of the tests' table as a caller sends them: as they are, and with every feature moved by one spread."""
    from sklearn.datasets import load_breast_cancer

    rows = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
    paths = {"same": folder / "same.csv", "shifted": folder / "shifted.csv"}
    rows.to_csv(paths["same"], index=False)
    (rows + rows.std()).to_csv(paths["shifted"], index=False)
    return paths


def test_the_prefect_watch_flow_retrains_only_on_a_drift_alert(tracking_uri, tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.setenv("PIPELINE_PROJECT_DIR", str(REPO_ROOT))
    from prefect.testing.utilities import prefect_test_harness
    from prefect_flow import mlflow_pipeline, watch_and_retrain

    batches = breast_cancer_batches(tmp_path)
    with prefect_test_harness(server_startup_timeout=120):
        mlflow_pipeline(options=STEP_OPTIONS)  # the champion the batches are compared with
        calm = watch_and_retrain(str(batches["same"]), options=STEP_OPTIONS)
        drifted = watch_and_retrain(str(batches["shifted"]), chain_id="after-drift", options=STEP_OPTIONS)
    assert calm["monitor"]["verdict"] == "ok" and calm["retrained"] is None
    assert drifted["monitor"]["verdict"] == "alert"
    assert drifted["retrained"]["train"]["model_version"] == "2"  # the chain ran again on the alert
    client = MlflowClient(tracking_uri)
    monitor_run = client.get_run(drifted["monitor"]["run_id"])
    assert monitor_run.data.tags[STEP_TAG] == "monitor" and monitor_run.data.tags[CHAIN_TAG] == "after-drift"


def test_the_airflow_watch_dag_runs_the_chain_after_a_drift_alert(tracking_uri, tmp_path):
    from pipeline.steps.chain import run_chain
    from tests.helpers import small_config_with

    airflow = [_airflow_python(), "-m", "airflow"]
    run_chain(small_config_with({}))  # the champion the batch is compared with
    batch = breast_cancer_batches(tmp_path)["shifted"]
    env = _airflow_env(airflow, tmp_path)
    params = json.dumps({"batch": str(batch), "chain_id": "airflow-watch"})
    done = subprocess.run(
        [*airflow, "dags", "test", "mlflow_watch_and_retrain", "-c", params],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    client = MlflowClient(tracking_uri)
    runs = {run.data.tags[STEP_TAG]: run for run in client.search_runs(["0"], f"tags.`{CHAIN_TAG}` = 'airflow-watch'")}
    assert set(runs) == {"monitor", "preprocess", "tune", "train", "evaluate"}
    assert runs["monitor"].data.metrics["drift_n_alert"] > 0
    assert all(run.info.status == "FINISHED" for run in runs.values())
