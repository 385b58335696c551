"""The pipeline as an Airflow DAG: one task per step, each a `python -m pipeline <step>` process pinned to the run
of the task before it; the run ids travel through XCom, read from the steps' result files.

Copy this file and steps.py into your DAGs folder and set PIPELINE_PROJECT_DIR (the project checkout, with the
pipeline's environment) and MLFLOW_TRACKING_URI for the workers. Trigger it with a `chain_id` param, or leave the
DAG run id to be used. A task retry re-runs its step pinned to the same upstream run; a failure raises StepFailed
with the step's one-line error and exit code (see the README's exit codes).

`mlflow_watch_and_retrain` (param `batch`) is the DAG to trigger when new rows arrive: `monitor` compares them with
the champion's reference profile, and only a drift alert runs the chain.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from airflow.sdk import dag, get_current_context, task

sys.path.insert(0, str(Path(__file__).parent))
from steps import run_step


def _chain_id() -> str:
    context = get_current_context()
    return context["params"].get("chain_id") or context["run_id"]


def _chain():
    """preprocess -> tune -> train -> evaluate, as tasks of the DAG being defined; the first task."""

    @task
    def preprocess() -> dict:
        return run_step("preprocess", None, _chain_id())

    @task
    def tune(upstream: dict) -> dict:
        return run_step("tune", upstream["run_id"], _chain_id())

    @task
    def train(upstream: dict) -> dict:
        return run_step("train", upstream["run_id"], _chain_id())

    @task
    def evaluate(upstream: dict) -> dict:
        return run_step("evaluate", upstream["run_id"], _chain_id())

    first = preprocess()
    evaluate(train(tune(first)))
    return first


@dag(
    dag_id="mlflow_pipeline",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"chain_id": ""},
    default_args={"retries": 1},
    tags=["mlflow"],
)
def mlflow_pipeline():
    _chain()


mlflow_pipeline()


@dag(
    dag_id="mlflow_watch_and_retrain",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"batch": "", "chain_id": ""},
    tags=["mlflow"],
)
def mlflow_watch_and_retrain():
    """monitor a new batch (param `batch`, a CSV/Parquet path the workers read) against the champion's reference
    profile; only on a drift alert does the chain run (the short circuit skips it otherwise)."""

    @task.short_circuit
    def monitor() -> bool:
        batch = get_current_context()["params"]["batch"]
        # on_drift: warn, so an alert is a verdict to act on here rather than a failed task.
        watched = run_step("monitor", None, _chain_id(), "--input", batch, "--set", "monitor.on_drift=warn")
        print(f"drift of {batch}: {watched['verdict']}")
        return watched["verdict"] == "alert"

    monitor() >> _chain()


mlflow_watch_and_retrain()
