"""Faults: a step killed outright, a crash after half of the artifacts were written, a failed log upload, a failure
after registration or promotion, a full disk or an unwritable folder for predict. None of them may leave something
a later step would take for finished work."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest

from pipeline import cli
from pipeline.config import load_config
from pipeline.contract import STEP_TAG
from pipeline.errors import UpstreamError
from pipeline.steps import evaluate, preprocess, train, tune
from pipeline.steps.chain import run_chain
from tests.helpers import DEFAULT_CONFIG, REPO_ROOT
from tests.integration.helpers import wait_for


@pytest.mark.heavy
def test_a_step_killed_outright_is_never_used_upstream(client, small_config, tracking_uri):
    preprocess.run(small_config)
    worker = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "tune", "--config", str(DEFAULT_CONFIG), "--n-trials", "100000"],
        cwd=REPO_ROOT,
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'tune'"), timeout=120, process=worker)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        worker.kill()
    (killed,) = client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'tune'")
    assert killed.info.status == "RUNNING"  # SIGKILL leaves no chance to close it...
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


def full_disk(*args, **kwargs):
    raise OSError("No space left on device")


def test_a_failed_log_upload_fails_the_run(client, small_config, monkeypatch):
    monkeypatch.setattr("pipeline.tracking.runs.mlflow.log_artifact", full_disk)
    with pytest.raises(OSError):
        preprocess.run(small_config)
    (run,) = client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'preprocess'")
    assert run.info.status == "FAILED"


def aliases(client, config):
    return {
        alias: str(version)
        for alias, version in client.get_registered_model(config.registry.model_name).aliases.items()
    }


@pytest.mark.heavy
def test_a_failure_after_registration_takes_the_version_back(client, small_config, monkeypatch):
    run_chain(small_config)
    monkeypatch.setattr("pipeline.tracking.runs.StepRun.fingerprint", full_disk)  # runs after the step's body
    with pytest.raises(OSError):
        train.run(small_config)
    (failed,) = client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'train' and attributes.status = 'FAILED'")
    assert failed.data.tags["pipeline.model.version"] == "2"  # it was registered, then taken back
    assert [str(v.version) for v in client.search_model_versions("")] == ["1"]
    assert aliases(client, small_config) == {"champion": "1", "challenger": "1"}


@pytest.mark.heavy
def test_a_failure_after_promotion_puts_the_champion_back(client, small_config, monkeypatch):
    run_chain(small_config)
    train.run(small_config)
    monkeypatch.setattr("pipeline.tracking.runs.StepRun.fingerprint", full_disk)  # runs after the step's body
    with pytest.raises(OSError):
        evaluate.run(small_config)
    (failed,) = client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'evaluate' and attributes.status = 'FAILED'")
    assert failed.data.tags["pipeline.verdict"] == "promoted"  # decided, then taken back by the failure
    assert aliases(client, small_config) == {"champion": "1", "challenger": "2"}


@pytest.fixture(scope="module")
def rows(module_store):
    """Raw rows for the champion of a chain made once in the module's store; each predict test logs its run in an
    experiment of its own (`own_experiment`)."""
    run_chain(load_config(DEFAULT_CONFIG))
    folder = module_store[1]
    test_split = pd.read_parquet(next((folder / "artifacts").rglob("test.parquet")))
    test_split.drop(columns=["target"]).to_csv(folder / "rows.csv", index=False)
    return folder / "rows.csv"


@pytest.mark.heavy
def test_a_full_disk_while_predicting_is_one_line_and_leaves_no_file(
    rows, own_experiment, module_client, tmp_path, monkeypatch, capfd
):
    from pipeline.engines.local import predict as on_local_engine

    def full_disk(self, frame):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(on_local_engine._ChunkWriter, "write", full_disk)
    target = tmp_path / "scored.csv"
    assert cli.main(["predict", "--config", str(DEFAULT_CONFIG), "--input", str(rows), "--output", str(target)]) == 2
    errors = [line for line in capfd.readouterr().err.splitlines() if " ERROR " in line]
    assert errors == [errors[-1]] and f"cannot write {target}: No space left on device" in errors[-1]
    assert not target.exists() and not list(tmp_path.glob(".predict-*"))
    (run,) = module_client.search_runs([own_experiment], f"tags.`{STEP_TAG}` = 'predict'")
    assert run.info.status == "FAILED"


@pytest.mark.heavy
def test_an_unwritable_output_folder_is_one_line(rows, capfd):
    # /proc refuses new files even to root (permissions would not stop a test running as root).
    assert (
        cli.main(["predict", "--config", str(DEFAULT_CONFIG), "--input", str(rows), "--output", "/proc/scored.csv"])
        == 2
    )
    errors = [line for line in capfd.readouterr().err.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "cannot write /proc/scored.csv" in errors[0]
