"""The repository used as a template: a user edits configs/pipeline.yaml for their own table and replaces the
feature hook pipeline/features.py; the project's own tests must still pass, since they use tests/configs and
tests/hooks, never what configs/ or pipeline/features.py say. In the copy run the tests `make test-fast` runs (the
selection is read from the Makefile); collecting them imports every test module, heavy and slow ones included."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.slow

# A user's complete config for another table (no `extends`, so every key): scikit-learn's wine, its own model name.
USER_CONFIG = """\
experiment: Default
engine: local
dask: {scheduler: null, n_workers: 2, threads_per_worker: 1, memory_limit: 2GB, timeout_s: 60}
data:
  source: sklearn:wine
  target: target
  task: multiclass
  positive_class: null
  id_columns: []
  features: null
  datetime_columns: []
  categorical_columns: []
  output_uri: null
  missing_target: drop
  leakage: {threshold: 0.98, action: warn}
features:
  derived: true
  hook: pipeline/features.py
split:
  {method: random, time_column: null, test_start: null, gap: null, test_size: 0.25, validation_size: 0.2, seed: 7,
   stratify: true}
tune:
  n_trials: 10
  timeout_s: null
  n_jobs: 1
  threads_per_trial: null
  seed: 7
  metric: auto
  max_boosting_rounds: 200
  early_stopping_rounds: 20
  pruner: {type: median, startup_trials: 5, warmup_rounds: 20, report_every: 5}
  storage: null
  study_name: null
  heartbeat_s: 10
  sample_rows: null
  cv: none
  ensemble: auto
  start_points: []
  search_space:
    max_depth: {low: 2, high: 6}
    learning_rate: {low: 0.05, high: 0.3, log: true}
train:
  fixed_params: {}
  class_weight: none
  bag: auto
decision: {threshold: 0.5, calibration: none, folds: 5}
registry:
  model_name: wine-xgb
  challenger_alias: challenger
  champion_alias: champion
  previous_champion_alias: previous-champion
  description: null
evaluate:
  binary:
    thresholds: {roc_auc: {threshold: 0.9}}
    compare_metric: roc_auc
  multiclass:
    thresholds:
      accuracy_score: {threshold: 0.85}
      f1_score: {threshold: 0.85}
    compare_metric: f1_score
  regression:
    thresholds: {r2_score: {threshold: 0.2}}
    compare_metric: root_mean_squared_error
  min_relative_improvement: 0.0
  fail_on_reject: false
  sample_rows: 100000
monitor: {psi_warn: 0.1, psi_alert: 0.25, on_drift: warn, min_rows: 500}
cache: {enabled: true, claim_wait_s: 600}
"""
USER_HOOK = "def derive_features(frame):\n    return frame\n"


def fast_selection() -> str:
    """The marker expression of `make test-fast`."""
    recipe = re.search(r"^test-fast:.*\n\t.*pytest -m \"([^\"]+)\"", (REPO_ROOT / "Makefile").read_text(), re.M)
    assert recipe, 'the Makefile\'s test-fast recipe no longer runs pytest -m "..."'
    return recipe.group(1)


def copy_repository(root: Path) -> None:
    """What a clone holds: tracked files and untracked ones git does not ignore (no .venv, .git, mlflow.db)."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    # A clone is a git repository (test_deploy asks git whether deploy/.env is ignored).
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)


def test_the_projects_tests_pass_after_the_user_replaces_the_config_and_the_hook(tmp_path):
    root = tmp_path / "my-project"
    copy_repository(root)
    (root / "configs" / "pipeline.yaml").write_text(USER_CONFIG)
    (root / "pipeline" / "features.py").write_text(USER_HOOK)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "PYTEST_"))}
    env.update(PYTHONPATH=str(root), MLFLOW_DISABLE_TELEMETRY="true")

    # The copy's package, not the editable install's (which points at this checkout), is the one imported.
    probe = subprocess.run(
        [sys.executable, "-c", "import pipeline, tests; print(pipeline.__file__, tests.__file__)"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.split() == [str(root / "pipeline" / "__init__.py"), str(root / "tests" / "__init__.py")]

    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", fast_selection(), "-q", "-p", "no:cacheprovider"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    print(f"the project's test-fast selection in the copy took {time.monotonic() - started:.0f} s")
    output = done.stdout + done.stderr
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    assert done.returncode == 0, output[-5000:]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, output[-5000:]
    assert " deselected" in summary, output[-5000:]  # the heavy and slow tests were collected, then left out
