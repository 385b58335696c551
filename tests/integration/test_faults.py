"""Faults: a step killed outright, a crash after half of the artifacts were written, a full disk or an unwritable
folder for predict. None of them may leave something a later step would take for finished work."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest

from pipeline import cli, preprocess, tune
from pipeline.chain import run_chain
from pipeline.errors import UpstreamError
from pipeline.lineage import STEP_TAG
from tests.conftest import DEFAULT_CONFIG, REPO_ROOT
from tests.integration.helpers import wait_for


def test_a_step_killed_outright_is_never_used_upstream(client, small_config, tracking_uri):
    preprocess.run(small_config)
    worker = subprocess.Popen([sys.executable, "-m", "pipeline", "tune", "--config", str(DEFAULT_CONFIG),
                               "--n-trials", "100000"], cwd=REPO_ROOT, env={**os.environ},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'tune'"), timeout=120)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        worker.kill()
    (killed,) = client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'tune'")
    assert killed.info.status == "RUNNING"  # SIGKILL leaves no chance to close it...
    from pipeline import train

    with pytest.raises(UpstreamError, match="no finished 'tune' run"):
        train.run(small_config)  # ...and no step ever reads a run that is not FINISHED


def test_a_crash_after_half_the_artifacts_leaves_a_failed_run_that_is_never_read(client, small_config, monkeypatch):
    real = preprocess.mlflow.log_input
    calls = []

    def crash_on_the_second_split(dataset, context=None, **kwargs):
        calls.append(context)
        if context == "testing":
            raise OSError("connection reset while logging")
        return real(dataset, context=context, **kwargs)

    monkeypatch.setattr(preprocess.mlflow, "log_input", crash_on_the_second_split)
    with pytest.raises(OSError):
        preprocess.run(small_config)
    (half,) = client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'preprocess'")
    assert half.info.status == "FAILED" and calls == ["training", "testing"]
    assert {item.path for item in client.list_artifacts(half.info.run_id, "data")} >= {"data/train.parquet"}
    with pytest.raises(UpstreamError, match="no finished 'preprocess' run"):
        tune.run(small_config)


@pytest.fixture
def rows(client, small_config, tmp_path):
    run_chain(small_config)
    test_split = pd.read_parquet(next((tmp_path / "artifacts").rglob("test.parquet")))
    test_split.drop(columns=["target"]).to_csv(tmp_path / "rows.csv", index=False)
    return tmp_path / "rows.csv"


def test_a_full_disk_while_predicting_is_one_line_and_leaves_no_file(rows, tmp_path, monkeypatch, capfd, client):
    from pipeline import predict

    def full_disk(self, frame):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(predict._ChunkWriter, "write", full_disk)
    target = tmp_path / "scored.csv"
    assert cli.main(["predict", "--config", str(DEFAULT_CONFIG), "--input", str(rows), "--output", str(target)]) == 2
    errors = [line for line in capfd.readouterr().err.splitlines() if " ERROR " in line]
    assert errors == [errors[-1]] and f"cannot write {target}: No space left on device" in errors[-1]
    assert not target.exists() and not list(tmp_path.glob(".predict-*"))
    (run,) = client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'predict'")
    assert run.info.status == "FAILED"


def test_an_unwritable_output_folder_is_one_line(rows, capfd):
    # /proc refuses new files even to root (permissions would not stop a test running as root).
    assert cli.main(["predict", "--config", str(DEFAULT_CONFIG), "--input", str(rows), "--output",
                     "/proc/scored.csv"]) == 2
    errors = [line for line in capfd.readouterr().err.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "cannot write /proc/scored.csv" in errors[0]
