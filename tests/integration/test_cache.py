"""Skip-if-done in `main`: reuse on an unchanged fingerprint, recompute exactly what a change touches, `--force`,
and two chains at once (disjoint lineage when they differ, one computation when they are the same)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
from mlflow.tracking import MlflowClient

from pipeline import cli
from pipeline.contract import CLAIM_TICKET_TAG, FINGERPRINT_TAG, STEP_TAG, upstream_tag
from pipeline.steps.chain import run_chain
from tests.helpers import DEFAULT_CONFIG, REPO_ROOT, small_config_with

pytestmark = pytest.mark.heavy


def ids(chain) -> dict[str, str]:
    return {step.step: step.run_id for step in chain.steps}


def reused(chain) -> dict[str, bool]:
    return {step.step: step.reused for step in chain.steps}


def finished_runs(client, step, experiment_id="0"):
    return client.search_runs([experiment_id], f"tags.`{STEP_TAG}` = '{step}' and attributes.status = 'FINISHED'")


def test_an_unchanged_chain_is_reused_and_says_so(client, small_config, tmp_path):
    first = run_chain(small_config)
    result_file = tmp_path / "again.json"
    assert cli.main(["main", "--config", str(DEFAULT_CONFIG), "--result-file", str(result_file)]) == 0
    again = json.loads(result_file.read_text())
    assert {step["step"]: step["run_id"] for step in again["steps"]} == ids(first)
    assert all(step["reused"] for step in again["steps"])
    assert again["steps"][2]["model_version"] == "1" and again["steps"][2]["model_aliases"] == [
        "challenger",
        "champion",
    ]
    assert again["steps"][3]["verdict"] == "promoted" and again["steps"][0]["outputs"]["train"].endswith(
        "data/train.parquet"
    )
    for step in ids(first):
        assert len(finished_runs(client, step)) == 1  # nothing computed twice
    assert len(client.search_model_versions(f"name = '{small_config.registry.model_name}'")) == 1


def test_a_change_recomputes_exactly_the_steps_after_it(client, small_config):
    first = run_chain(small_config)
    more_trials = run_chain(small_config_with({"tune.n_trials": 4}))
    assert reused(more_trials) == {"preprocess": True, "tune": False, "train": False, "evaluate": False}
    assert ids(more_trials)["preprocess"] == ids(first)["preprocess"]
    tune_run = client.get_run(ids(more_trials)["tune"])
    assert tune_run.data.tags[upstream_tag("preprocess")] == ids(first)["preprocess"]
    stricter = run_chain(small_config_with({"tune.n_trials": 4, "evaluate.binary.thresholds.roc_auc.threshold": 0.96}))
    assert reused(stricter) == {"preprocess": True, "tune": True, "train": True, "evaluate": False}


def test_force_recomputes_a_step_and_everything_after_it(client, small_config):
    first = run_chain(small_config)
    forced = run_chain(small_config, force=["train"])
    assert reused(forced) == {"preprocess": True, "tune": True, "train": False, "evaluate": False}
    assert ids(forced)["train"] != ids(first)["train"]
    assert cli.main(["main", "--config", str(DEFAULT_CONFIG), "--force", "trian"]) == 2  # a typo is named


def _chain_process(tracking_uri: str, result_file, *options: str) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    command = [
        sys.executable,
        "-m",
        "pipeline",
        "main",
        "--config",
        str(DEFAULT_CONFIG),
        *options,
        "--result-file",
        str(result_file),
    ]
    return subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _run_together(postgres_url, tmp_path, first_options, second_options) -> list[dict]:
    MlflowClient(postgres_url).search_experiments()  # create the schema once, before the race
    processes = [
        _chain_process(postgres_url, tmp_path / f"chain{i}.json", *options)
        for i, options in enumerate((first_options, second_options))
    ]
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], [output[-2000:] for output in outputs]
    return [json.loads((tmp_path / f"chain{i}.json").read_text()) for i in range(2)]


@pytest.fixture
def shared_store(postgres_url, monkeypatch):
    """A PostgreSQL tracking store: two processes write to it at once (SQLite would lock)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", postgres_url)
    return postgres_url


def test_two_different_chains_at_once_keep_to_their_own_runs(shared_store, tmp_path):
    chains = _run_together(shared_store, tmp_path, ["--set", "split.seed=1"], ["--set", "split.seed=2"])
    client = MlflowClient(shared_store)
    seen = set()
    for chain in chains:
        steps = {step["step"]: step["run_id"] for step in chain["steps"]}
        assert not any(step["reused"] for step in chain["steps"])
        seen |= set(steps.values())
        tags = {step: client.get_run(run_id).data.tags for step, run_id in steps.items()}
        assert tags["tune"][upstream_tag("preprocess")] == steps["preprocess"]
        assert tags["train"][upstream_tag("tune")] == steps["tune"]
        assert tags["evaluate"][upstream_tag("train")] == steps["train"]
        assert {tag["pipeline.chain_id"] for tag in tags.values()} == {chain["chain_id"]}
    assert len(seen) == 8  # no run shared


def test_two_identical_chains_at_once_compute_each_step_once(shared_store, tmp_path):
    chains = _run_together(shared_store, tmp_path, [], [])
    run_ids = [[step["run_id"] for step in chain["steps"]] for chain in chains]
    assert run_ids[0] == run_ids[1]  # the same lineage, computed once
    client = MlflowClient(shared_store)
    experiment_id = chains[0]["experiment_id"]
    for step in ("preprocess", "tune", "train", "evaluate"):
        assert len(finished_runs(client, step, experiment_id)) == 1
    assert sum(step["reused"] for chain in chains for step in chain["steps"]) == 4


def test_a_dead_claim_is_waited_for_once_then_computed_past(client, monkeypatch):
    # A chain killed while computing tune leaves its run RUNNING with the fingerprint: the next chain waits
    # cache.claim_wait_s for it, then computes tune itself instead of stepping aside for the dead run again and again.
    from pipeline.tracking import reuse
    from pipeline.tracking.runs import resolve_experiment_id

    real_fingerprint = reuse.step_fingerprint
    monkeypatch.setattr(
        reuse, "step_fingerprint", lambda step, *args: "dead-claim" if step == "tune" else real_fingerprint(step, *args)
    )
    config = small_config_with({"cache.claim_wait_s": 1})
    experiment_id = resolve_experiment_id(client, config.experiment)
    tags = {STEP_TAG: "tune", FINGERPRINT_TAG: "dead-claim", CLAIM_TICKET_TAG: "1"}
    dead = client.create_run(experiment_id, tags=tags).info.run_id
    outcome: dict[str, object] = {}
    worker = threading.Thread(target=lambda: outcome.update(chain=run_chain(config)), daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert "chain" in outcome, "the chain did not end: it kept stepping aside for the dead claim"
    chain = outcome["chain"]
    assert ids(chain)["tune"] != dead and not reused(chain)["tune"]
    assert client.get_run(ids(chain)["tune"]).data.tags[FINGERPRINT_TAG] == "dead-claim"
