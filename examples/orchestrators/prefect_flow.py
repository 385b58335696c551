"""The pipeline as a Prefect flow: one task per step, each a `python -m pipeline <step>` process pinned to the run
of the task before it (run ids travel as task results, from the steps' result files).

    PIPELINE_PROJECT_DIR=/path/to/project MLFLOW_TRACKING_URI=... python examples/orchestrators/prefect_flow.py

Retries are safe: a step that already finished is not repeated by `main`, and a retried task re-runs its step
pinned to the same upstream run. Failures raise StepFailed with the step's one-line error and exit code.
"""

from __future__ import annotations

import sys
from pathlib import Path

from prefect import flow, task

sys.path.insert(0, str(Path(__file__).parent))
from steps import run_step


@task(retries=1, retry_delay_seconds=5, task_run_name="{step}")
def pipeline_step(
    step: str, upstream: dict | None = None, chain_id: str | None = None, options: tuple[str, ...] = ()
) -> dict:
    return run_step(step, upstream["run_id"] if upstream else None, chain_id, *options)


@flow(name="mlflow-pipeline", log_prints=True)
def mlflow_pipeline(chain_id: str | None = None, options: tuple[str, ...] = ()) -> dict:
    """preprocess -> tune -> train -> evaluate; returns every step's result, keyed by step."""
    results = {}
    upstream = None
    for step in ("preprocess", "tune", "train", "evaluate"):
        upstream = results[step] = pipeline_step(step, upstream, chain_id, options)
    print(
        f"{results['train']['model_name']} version {results['train']['model_version']}: "
        f"{results['evaluate']['verdict']}"
    )
    return results


if __name__ == "__main__":
    mlflow_pipeline()
