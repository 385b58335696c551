"""A step stopped by SIGTERM (how Airflow, Prefect and CI stop tasks) ends its run KILLED, never RUNNING."""

import os
import signal
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from pipeline.contract import STEP_TAG
from tests.helpers import DEFAULT_CONFIG, REPO_ROOT
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.heavy


def test_sigterm_during_tuning_ends_the_run_killed(client: MlflowClient, tracking_uri):
    assert (
        subprocess.run(
            [sys.executable, "-m", "pipeline", "preprocess", "--config", str(DEFAULT_CONFIG)],
            cwd=REPO_ROOT,
            env=os.environ.copy(),
            capture_output=True,
        ).returncode
        == 0
    )
    tuning = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "tune", "--config", str(DEFAULT_CONFIG), "--n-trials", "100000"],
        cwd=REPO_ROOT,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Wait until a trial run exists, i.e. the tune run is open and trials are going.
        wait_for(lambda: client.search_runs(["0"], "tags.`optuna.trial_number` = '0'"), process=tuning)
        tuning.send_signal(signal.SIGTERM)
        _, stderr = tuning.communicate(timeout=60)
    finally:
        tuning.kill()
    assert tuning.returncode == 130
    assert "tune interrupted: stopped by signal 15" in stderr
    (tune_run,) = client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'tune'")
    assert tune_run.info.status == "KILLED"
    assert client.search_runs(["0"], "attributes.status = 'RUNNING'") == []
