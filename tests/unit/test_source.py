"""The code version on every step run (pipeline/tracking/source.py): the commit of the checkout the package runs
from, whether tracked files differ from it, and nothing (no error) outside a git checkout."""

from __future__ import annotations

import subprocess
from pathlib import Path

import mlflow
import pytest

from pipeline.contract import GIT_DIRTY_TAG
from pipeline.tracking import source
from pipeline.tracking.runs import RunContext, step_run
from tests.helpers import REPO_ROOT, small_config_with


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    git(folder, "init", "-q")
    (folder / "code.py").write_text("x = 1\n")
    git(folder, "add", "code.py")
    git(folder, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "first")
    monkeypatch.setattr(source, "PROJECT_DIR", folder)
    source.source_tags.cache_clear()
    yield folder
    source.source_tags.cache_clear()


def test_a_clean_checkout_names_its_commit(checkout):
    tags = source.source_tags()
    assert tags["mlflow.source.git.commit"] == git(checkout, "rev-parse", "HEAD")
    assert tags["mlflow.source.type"] == "PROJECT" and tags["mlflow.source.name"] == f"file://{checkout}"
    assert tags[GIT_DIRTY_TAG] == "false" and "mlflow.source.git.repoURL" not in tags


def test_a_changed_tracked_file_makes_it_dirty_an_untracked_one_does_not(checkout):
    (checkout / "notes.txt").write_text("untracked\n")
    assert source.source_tags()[GIT_DIRTY_TAG] == "false"
    source.source_tags.cache_clear()
    (checkout / "code.py").write_text("x = 2\n")
    assert source.source_tags()[GIT_DIRTY_TAG] == "true"


def test_outside_a_checkout_there_are_none(tmp_path, monkeypatch):
    monkeypatch.setattr(source, "PROJECT_DIR", tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no checkout above tmp_path either
    source.source_tags.cache_clear()
    try:
        assert source.source_tags() == {}
    finally:
        source.source_tags.cache_clear()


def test_every_step_run_carries_the_code_version(client):
    source.source_tags.cache_clear()
    with step_run("rollback", small_config_with({}), RunContext()) as active:
        pass
    tags = client.get_run(active.run_id).data.tags
    found = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if found.returncode:  # a copy of the project without git, or a repository without a commit yet
        assert "mlflow.source.git.commit" not in tags
        return
    assert tags["mlflow.source.git.commit"] == found.stdout.strip()
    assert tags[GIT_DIRTY_TAG] in ("true", "false") and tags["mlflow.source.type"] == "PROJECT"
    assert mlflow.get_run(active.run_id).info.status == "FINISHED"
