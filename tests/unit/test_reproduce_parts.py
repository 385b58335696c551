"""reproduce's parts, without rebuilding a chain: which code runs (the recorded commit, or the current tree with
--allow-dirty only when that commit cannot be used), the thread counts set again, and the scratch model dropped
also when a step failed. The whole rebuild is tests/integration/test_reproduce.py."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import mlflow
import pytest
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT

from pipeline.contract import GIT_DIRTY_TAG, REPRODUCES_TAG
from pipeline.errors import UpstreamError
from pipeline.steps import reproduce
from tests.helpers import REPO_ROOT


def fake_run(tags: dict[str, str] | None = None, params: dict[str, str] | None = None, run_id: str = "r1"):
    data = SimpleNamespace(tags=tags or {}, params=params or {})
    return SimpleNamespace(data=data, info=SimpleNamespace(run_id=run_id))


def head() -> str:
    found = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if found.returncode:
        pytest.skip("the project is not a git checkout with a commit here")
    return found.stdout.strip()


def test_a_clean_recorded_commit_is_used_also_with_allow_dirty():
    run = fake_run({MLFLOW_GIT_COMMIT: head(), GIT_DIRTY_TAG: "false"})
    assert reproduce._checked_commit(run, allow_dirty=False) == head()
    assert reproduce._checked_commit(run, allow_dirty=True) == head()


@pytest.mark.parametrize(
    ("tags", "refusal"),
    [
        ({}, "train run r1 records no git commit (made outside a git checkout)"),
        ({GIT_DIRTY_TAG: "true"}, "train run r1 was made from a checkout with uncommitted changes to commit"),
        ({MLFLOW_GIT_COMMIT: "0" * 40}, f"commit {'0' * 12} is not in "),
    ],
    ids=["unrecorded", "dirty", "absent"],
)
def test_a_commit_that_cannot_be_used_is_refused_or_with_allow_dirty_the_current_tree_runs(tags, refusal):
    if GIT_DIRTY_TAG in tags:
        tags = {**tags, MLFLOW_GIT_COMMIT: head()}
    with pytest.raises(UpstreamError) as refused:
        reproduce._checked_commit(fake_run(tags), allow_dirty=False)
    assert str(refused.value).startswith(f"reproduce: {refusal}")
    assert str(refused.value).endswith("; --allow-dirty runs the current tree instead")
    assert reproduce._checked_commit(fake_run(tags), allow_dirty=True) is None


def test_the_recorded_thread_counts_are_set_again():
    tune_run = fake_run(params={"tune.threads": "3"})
    train_run = fake_run(params={"train.threads": "2"})
    assert reproduce._sets(tune_run, train_run) == ["tune.threads_per_trial=3", "train.fixed_params.n_jobs=2"]
    assert reproduce._sets(fake_run(), fake_run()) == []  # runs from before thread counts were recorded


def _version_of_a_run(client, name: str, rebuilt: bool) -> str:
    with mlflow.start_run() as run:
        if rebuilt:
            mlflow.set_tag(REPRODUCES_TAG, "original")
    if not reproduce._model_exists(client, name):
        client.create_registered_model(name)
    return client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id).version


def test_the_scratch_model_is_dropped_whole_when_this_reproduce_made_it(client):
    _version_of_a_run(client, "m-reproduce", rebuilt=True)
    reproduce._drop_scratch_model(client, "m-reproduce", existed=False)
    assert not client.search_registered_models("name = 'm-reproduce'")
    reproduce._drop_scratch_model(client, "m-reproduce", existed=False)  # nothing registered: nothing to do


def test_a_scratch_model_left_before_loses_only_rebuilt_versions(client):
    _version_of_a_run(client, "m-reproduce", rebuilt=True)  # left by a reproduce that was killed
    reproduce._drop_scratch_model(client, "m-reproduce", existed=True)
    assert not client.search_registered_models("name = 'm-reproduce'")
    _version_of_a_run(client, "m-reproduce", rebuilt=True)
    kept = _version_of_a_run(client, "m-reproduce", rebuilt=False)  # someone's own version under that name
    reproduce._drop_scratch_model(client, "m-reproduce", existed=True)
    assert [v.version for v in client.search_model_versions("name = 'm-reproduce'")] == [kept]


def test_a_failed_step_still_drops_the_scratch_model(client, monkeypatch):
    """train registered into the scratch model, then the comparison could not happen: nothing is left behind."""
    original = fake_run({"pipeline.model_name": "m"}, run_id="t1")
    monkeypatch.setattr(reproduce, "_train_run", lambda *args: original)
    monkeypatch.setattr(reproduce, "chain_of_run", lambda *args: {})
    monkeypatch.setattr(reproduce, "_checked_commit", lambda *args: None)

    def rebuild_fails(client_, chain, original_, commit, model_name):
        _version_of_a_run(client, model_name, rebuilt=False)
        raise reproduce.NotReproduced("reproduce: train failed (exit 1): boom")

    monkeypatch.setattr(reproduce, "_rebuild", rebuild_fails)
    with pytest.raises(reproduce.NotReproduced, match="boom"):
        reproduce.run(SimpleNamespace(registry=SimpleNamespace(model_name="m")), version="1")
    assert not client.search_registered_models("name = 'm-reproduce'")


def test_a_failing_clean_up_does_not_hide_the_steps_error(client, monkeypatch):
    monkeypatch.setattr(reproduce, "_train_run", lambda *args: fake_run(run_id="t1"))
    monkeypatch.setattr(reproduce, "chain_of_run", lambda *args: {})
    monkeypatch.setattr(reproduce, "_checked_commit", lambda *args: None)

    def rebuild_fails(*args):
        raise reproduce.NotReproduced("reproduce: train failed (exit 1): boom")

    def clean_up_fails(*args):
        raise RuntimeError("registry unreachable")

    monkeypatch.setattr(reproduce, "_rebuild", rebuild_fails)
    monkeypatch.setattr(reproduce, "_drop_scratch_model", clean_up_fails)
    with pytest.raises(reproduce.NotReproduced, match="boom"):
        reproduce.run(SimpleNamespace(registry=SimpleNamespace(model_name="m")), version="1")


def test_a_model_name_with_a_quote_is_searched_for(client):
    _version_of_a_run(client, "bob's-reproduce", rebuilt=True)
    reproduce._drop_scratch_model(client, "bob's-reproduce", existed=False)
    assert not reproduce._model_exists(client, "bob's-reproduce")
    _version_of_a_run(client, "bob's-reproduce", rebuilt=True)
    reproduce._drop_scratch_model(client, "bob's-reproduce", existed=True)  # its versions searched for by name
    assert not reproduce._model_exists(client, "bob's-reproduce")
