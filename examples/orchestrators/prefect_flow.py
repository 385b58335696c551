"""The pipeline as a Prefect flow: one task per step, each a `python -m pipeline <step>` process pinned to the run
of the task before it (run ids travel as task results, from the steps' result files).

    PIPELINE_PROJECT_DIR=/path/to/project MLFLOW_TRACKING_URI=... python examples/orchestrators/prefect_flow.py

`watch_and_retrain(batch)` is the flow to schedule when new rows arrive: `monitor` compares them with the champion's
reference profile, and only when a column drifted past `monitor.psi_alert` does it run the chain again.

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


@flow(name="mlflow-watch-and-retrain", log_prints=True)
def watch_and_retrain(batch: str, chain_id: str | None = None, options: tuple[str, ...] = ()) -> dict:
    """monitor the batch against the champion; on a drift alert, the whole chain. Returns monitor's result and,
    when it ran, the chain's results (`retrained`)."""
    # on_drift: warn, so an alert is a verdict to act on here rather than a failed task.
    watched = pipeline_step("monitor", None, chain_id, (*options, "--input", batch, "--set", "monitor.on_drift=warn"))
    print(f"drift of {batch}: {watched['verdict']}")
    if watched["verdict"] != "alert":
        return {"monitor": watched, "retrained": None}
    return {"monitor": watched, "retrained": mlflow_pipeline(chain_id, options)}


if __name__ == "__main__":
    mlflow_pipeline()
