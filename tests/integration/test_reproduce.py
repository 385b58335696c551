"""reproduce: a registered version rebuilt from its record (its commit in a temporary git worktree, its config,
seeds and thread counts) compares identical; a dirty or missing commit and changed data are one-line refusals; a
difference is exit 7 naming what differs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT

from pipeline import cli
from pipeline.contract import GIT_DIRTY_TAG, REPRODUCES_TAG, STEP_TAG
from pipeline.steps.chain import run_chain
from tests.helpers import DEFAULT_CONFIG, REPO_ROOT, small_config_with

pytestmark = pytest.mark.heavy


def head() -> str:
    found = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if found.returncode:
        pytest.skip("the project is not a git checkout with a commit here: there is no commit to rebuild from")
    return found.stdout.strip()


def reproduce(tmp_path: Path, *more: str) -> tuple[int, dict]:
    result_file = tmp_path / "reproduce.json"
    argv = ["reproduce", "--config", str(DEFAULT_CONFIG), "--version", "1", "--result-file", str(result_file), *more]
    code = cli.main(argv)
    return code, json.loads(result_file.read_text())


@pytest.fixture
def made(client, small_config) -> str:
    """A version made by HEAD's code: the train run recorded as made from the clean commit (the suite may run from
    a checkout with changes of its own, which CI's clean clone does not have)."""
    train_run_id = run_chain(small_config).step("train").run_id
    client.set_tag(train_run_id, MLFLOW_GIT_COMMIT, head())
    client.set_tag(train_run_id, GIT_DIRTY_TAG, "false")
    return train_run_id


def test_a_version_rebuilt_from_its_commit_is_identical_and_leaves_the_registry_as_it_was(
    client, made, tmp_path, small_config
):
    code, result = reproduce(tmp_path)
    assert code == 0 and result["identical"] and result["reproduces"] == made and result["commit"] == head()
    rebuilt = {run.data.tags[STEP_TAG]: run for run in client.search_runs(["0"], f"tags.`{REPRODUCES_TAG}` != ''")}
    assert set(rebuilt) == {"preprocess", "tune", "train"}
    assert rebuilt["train"].data.tags[REPRODUCES_TAG] == made
    assert rebuilt["train"].data.tags[MLFLOW_GIT_COMMIT] == head()  # the worktree's code ran
    name = small_config.registry.model_name
    assert [str(v.version) for v in client.search_model_versions(f"name = '{name}'")] == ["1"]  # none added
    assert not client.search_registered_models(f"name = '{name}-reproduce'")  # the scratch model is gone
    assert not [
        line
        for line in subprocess.run(
            ["git", "-C", str(REPO_ROOT), "worktree", "list"], capture_output=True, text=True
        ).stdout.splitlines()
        if "reproduce-" in line
    ]  # the worktree is removed


def test_a_difference_is_exit_7_naming_it(client, made, tmp_path):
    original = client.get_run(made).data.metrics["test_roc_auc"]
    client.log_metric(made, "test_roc_auc", original - 0.01)  # as if the original had scored otherwise
    code, result = reproduce(tmp_path)
    assert code == 7 and result["differences"] == ["test_roc_auc"] and not result["identical"]
    assert result["error"].startswith(f"reproduce: train run {made} came out different: test_roc_auc")


def test_a_dirty_or_missing_commit_is_refused_unless_allow_dirty(client, made, tmp_path):
    client.set_tag(made, GIT_DIRTY_TAG, "true")
    code, result = reproduce(tmp_path)
    assert code == 3 and "uncommitted changes" in result["error"] and "--allow-dirty" in result["error"]
    client.set_tag(made, MLFLOW_GIT_COMMIT, "0" * 40)
    client.set_tag(made, GIT_DIRTY_TAG, "false")
    code, result = reproduce(tmp_path)
    assert code == 3 and result["error"] == (
        f"reproduce: commit {'0' * 12} is not in {REPO_ROOT} (git fetch it first); --allow-dirty runs the current "
        "tree instead"
    )


def test_changed_data_is_refused_with_its_digest_then_and_now(client, tmp_path):
    from sklearn.datasets import load_breast_cancer

    table = tmp_path / "cancer.csv"
    load_breast_cancer(as_frame=True).frame.to_csv(table, index=False)
    train_run_id = run_chain(small_config_with({"data.source": str(table)})).step("train").run_id
    client.set_tag(train_run_id, MLFLOW_GIT_COMMIT, head())
    client.set_tag(train_run_id, GIT_DIRTY_TAG, "false")
    lines = table.read_text().splitlines()
    lines[1] = "99" + lines[1]  # a row edited since (its first value, still a number)
    table.write_text("\n".join(lines) + "\n")
    code, result = reproduce(tmp_path)
    assert code == 2 and result["error"].startswith(f"reproduce: the data changed since: {table} had digest ")
    assert ", now " in result["error"]
