"""Tuning at scale: pruned trials, studies resumed after a SIGKILL, two workers sharing a PostgreSQL study."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from pipeline.contract import ERROR_TAG, STEP_TAG
from pipeline.steps import preprocess, tune
from pipeline.tuning.study import FINISHED_STATES
from tests.helpers import DEFAULT_CONFIG, REPO_ROOT
from tests.integration.helpers import wait_for


def with_tune(config, **changes):
    return config.model_copy(update={"tune": config.tune.model_copy(update=changes)})


def children(client, parent_id):
    return client.search_runs(["0"], f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_id}'")


def tune_runs(client):
    return client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'tune'", order_by=["attributes.start_time ASC"])


def pipeline_process(*args: str, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "pipeline", *args, "--config", str(DEFAULT_CONFIG)]
    return subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def count_finished(study_name: str, storage: str) -> int:
    try:
        return len(optuna.load_study(study_name=study_name, storage=storage).get_trials(states=FINISHED_STATES))
    except Exception:  # noqa: BLE001 - the worker has not created the schema or the study yet
        return 0


@pytest.mark.heavy
def test_pruned_trials_are_killed_child_runs(client, small_config):
    preprocess.run(small_config)
    pruner = small_config.tune.pruner.model_copy(update={"startup_trials": 2, "warmup_rounds": 0, "report_every": 1})
    config = with_tune(small_config, n_trials=15, max_boosting_rounds=200, early_stopping_rounds=30, pruner=pruner)
    parent = client.get_run(tune.run(config).run_id)
    runs = children(client, parent.info.run_id)
    killed = [run for run in runs if run.info.status == "KILLED"]
    assert len(runs) == 15 and parent.data.metrics["n_trials"] == 15
    assert killed and len(killed) == parent.data.metrics["n_pruned"]
    assert len(runs) - len(killed) == parent.data.metrics["n_complete"]
    for run in killed:
        assert run.data.tags["optuna.trial_state"] == "PRUNED"
        assert 1 <= int(run.data.tags["optuna.pruned_at_round"]) <= 200


@pytest.mark.heavy
def test_n_trials_counts_the_finished_trials_of_the_whole_study(client, small_config, tmp_path):
    preprocess.run(small_config)
    config = with_tune(small_config, storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    first = tune.run(with_tune(config, n_trials=3))
    second = tune.run(with_tune(config, n_trials=5))
    third = tune.run(with_tune(config, n_trials=5))
    assert [len(children(client, result.run_id)) for result in (first, second, third)] == [3, 2, 0]
    runs = [client.get_run(result.run_id) for result in (first, second, third)]
    assert len({run.data.params["optuna.study_name"] for run in runs}) == 1
    assert runs[2].data.metrics["n_finished"] == 5 and runs[2].data.metrics["n_trials_this_run"] == 0
    assert runs[2].data.params["max_depth"] == runs[1].data.params["max_depth"]
    study = optuna.load_study(study_name=runs[0].data.params["optuna.study_name"], storage=config.tune.storage)
    points = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(points)) == len(points)  # a rerun does not draw the first points again


@pytest.mark.heavy
def test_a_study_resumes_after_its_worker_is_killed(client, small_config, tmp_path):
    preprocess.run(small_config)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    options = ("--set", f"tune.storage={storage}", "--set", "tune.heartbeat_s=1", "--set", "tune.pruner.type=none")
    worker = pipeline_process("tune", "--n-trials", "1000", *options)
    try:
        study_name = wait_for(
            lambda: next((run.data.params.get("optuna.study_name") for run in tune_runs(client)), None),
            process=worker,
        )
        finished = wait_for(lambda: count_finished(study_name, storage) >= 4, process=worker)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        worker.kill()
    assert finished
    before = {
        t.number: t.params
        for t in optuna.load_study(study_name=study_name, storage=storage).get_trials(states=FINISHED_STATES)
    }
    time.sleep(2.5)  # past the 2-heartbeat grace period, so the trial the dead worker held counts as stale
    resumed = pipeline_process("tune", "--n-trials", str(len(before) + 3), *options)
    output, _ = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, output[-3000:]
    trials = optuna.load_study(study_name=study_name, storage=storage).trials
    after = {t.number: t.params for t in trials if t.state in FINISHED_STATES}
    assert {number: after[number] for number in before} == before  # nothing lost, nothing redone
    assert len(after) == len(before) + 3
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]  # the stale trial was failed
    killed_parent, resumed_parent = tune_runs(client)
    assert killed_parent.info.status == "RUNNING"  # SIGKILL leaves no chance to close it; lookups skip it
    assert resumed_parent.info.status == "FINISHED"
    assert len(children(client, resumed_parent.info.run_id)) == 3


@pytest.mark.heavy
def test_two_workers_share_one_postgres_study(client, small_config, postgres_url):
    preprocess.run(small_config)
    options = (
        "--n-trials",
        "16",
        "--storage",
        postgres_url,
        "--set",
        "tune.max_boosting_rounds=200",
        "--set",
        "tune.early_stopping_rounds=50",  # trials long enough for both workers to take some
        "--set",
        "tune.threads_per_trial=1",
    )
    workers = [pipeline_process("tune", *options) for _ in range(2)]
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], [output[-2000:] for output in outputs]
    parents = tune_runs(client)
    assert len(parents) == 2 and {run.data.params["optuna.study_name"] for run in parents} == {
        parents[0].data.params["optuna.study_name"]
    }
    study = optuna.load_study(study_name=parents[0].data.params["optuna.study_name"], storage=postgres_url)
    finished = study.get_trials(states=FINISHED_STATES)
    assert 16 <= len(finished) <= 17  # a worker's trial in flight when the other reached 16 may still finish
    per_worker = [children(client, parent.info.run_id) for parent in parents]
    assert all(per_worker) and sum(map(len, per_worker)) == len(study.trials)
    points = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(points)) == len(points)  # the workers do not draw the same points
    numbers = [int(run.data.tags["optuna.trial_number"]) for runs in per_worker for run in runs]
    assert sorted(numbers) == sorted(t.number for t in study.trials) and len(set(numbers)) == len(numbers)
    last = max(parents, key=lambda run: run.info.end_time)
    assert float(last.data.metrics["best_valid_logloss"]) == pytest.approx(study.best_value)
    assert "postgres@127.0.0.1" in last.data.params["optuna.storage"]


def test_a_bad_storage_url_fails_the_tune_run(client, small_config):
    from pipeline import cli

    preprocess.run(small_config)
    assert cli.main(["tune", "--config", str(DEFAULT_CONFIG), "--storage", "nosuchdb://u:secret@h/db"]) == 2
    (run,) = tune_runs(client)
    assert run.info.status == "FAILED"
    assert "is not a usable storage URL" in run.data.tags[ERROR_TAG] and "secret" not in run.data.tags[ERROR_TAG]
    assert "secret" not in str(run.data.params)
    resolved = client.download_artifacts(run.info.run_id, "config/resolved.yaml")
    assert "secret" not in open(resolved).read() and "nosuchdb://u:***@h/db" in open(resolved).read()
