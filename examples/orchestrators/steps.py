"""What every orchestrator task does: run one pipeline step as a process and hand its result file on.

A task runs `$PIPELINE_PYTHON -m pipeline <step> --upstream-run-id <run id of the task before> --chain-id <id>
--result-file <file>` in the project folder, and returns the parsed result (run id, status, upstream ids, outputs,
model version, verdict, reused, duration): Airflow keeps it as the task's XCom, Prefect as the task's result. A
failed step raises with the one-line error and the exit code the result file records.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT_DIR = Path(os.environ.get("PIPELINE_PROJECT_DIR", Path(__file__).resolve().parents[2]))
# The pipeline's Python (its .venv); Airflow workers usually run another environment than the pipeline's.
PYTHON = os.environ.get("PIPELINE_PYTHON", sys.executable)
# Options every step gets, e.g. "--config configs/churn.yaml" or "--set tune.n_trials=20".
STEP_OPTIONS = shlex.split(os.environ.get("PIPELINE_STEP_OPTIONS", ""))
EXIT_MEANINGS = {
    2: "bad config or data",
    3: "no usable upstream run",
    4: "tracking store unreachable",
    5: "challenger rejected",
    6: "drift alert",
    130: "interrupted",
}


class StepFailed(RuntimeError):
    def __init__(self, step: str, result: dict) -> None:
        code = result.get("exit_code")
        super().__init__(
            f"{step} failed ({EXIT_MEANINGS.get(code, 'unexpected error')}, exit {code}): {result.get('error')}"
        )
        self.result = result


def run_step(step: str, upstream_run_id: str | None = None, chain_id: str | None = None, *options: str) -> dict:
    """Run one step in its own process; its JSON result, or StepFailed."""
    with tempfile.TemporaryDirectory(prefix=f"pipeline-{step}-") as tmp:
        result_file = Path(tmp) / "result.json"
        command = [PYTHON, "-m", "pipeline", step, "--result-file", str(result_file), *STEP_OPTIONS, *options]
        if upstream_run_id:
            command += ["--upstream-run-id", upstream_run_id]
        if chain_id:
            command += ["--chain-id", chain_id]
        done = subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True)
        if not result_file.exists():
            raise RuntimeError(f"{step} wrote no result (exit {done.returncode}): {done.stderr[-2000:]}")
        result = json.loads(result_file.read_text())
    if done.returncode != 0:
        raise StepFailed(step, result)
    return result
