"""The code version a step run was made with: MLflow's source tags (`mlflow.source.git.commit`,
`mlflow.source.name`, `mlflow.source.type`, and `mlflow.source.git.repoURL` when the checkout has an `origin`) and
`pipeline.git_dirty` (`true` when tracked files differ from that commit), read from the git checkout that holds this
package. Outside a git checkout, or without git, there are none (and no error)."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_GIT_REPO_URL, MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE

from pipeline.contract import GIT_DIRTY_TAG

PROJECT_DIR = Path(__file__).resolve().parents[2]


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(PROJECT_DIR), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):  # no git, or it hung
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@cache
def source_tags() -> dict[str, str]:
    """The tags naming the commit of the checkout this package runs from; {} outside one."""
    commit = _git("rev-parse", "HEAD")
    top = _git("rev-parse", "--show-toplevel")
    if not commit or not top:
        return {}
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    tags = {
        MLFLOW_GIT_COMMIT: commit,
        MLFLOW_SOURCE_NAME: f"file://{top}",
        MLFLOW_SOURCE_TYPE: "PROJECT",
        GIT_DIRTY_TAG: "true" if dirty else "false",
    }
    if origin := _git("config", "--get", "remote.origin.url"):
        tags[MLFLOW_GIT_REPO_URL] = origin
    return tags
