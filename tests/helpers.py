"""Plain helpers the tests import: the tests' paths and configs (REPO_ROOT, TEST_CONFIGS, TEST_CONFIG,
DEFAULT_CONFIG, TEST_HOOK, CHURN_CSV) and functions (new_store, use_store, end_active_runs, small_config_with,
fresh_postgres_database). tests/conftest.py holds only fixtures and pytest hooks, and builds on these; test modules
import from here, never from conftest."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import numpy as np
import pytest

from pipeline.config import PipelineConfig, load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
# The tests' own configs and feature hook: configs/ and pipeline/features.py are the user's to edit (this is a
# template), so no test reads them. tests/configs/pipeline.yaml is what configs/pipeline.yaml shipped with
# (breast cancer, breast-cancer-xgb) with `features.hook` on tests/hooks/breast_cancer_ratio.py, less the leaf-wise
# option of its search space (tests/unit/test_tune.py draws that one); wine, diabetes and churn there extend it.
TEST_CONFIGS = REPO_ROOT / "tests" / "configs"
TEST_CONFIG = TEST_CONFIGS / "pipeline.yaml"
DEFAULT_CONFIG = TEST_CONFIG  # the name the test modules import
TEST_HOOK = REPO_ROOT / "tests" / "hooks" / "breast_cancer_ratio.py"
CHURN_CSV = REPO_ROOT / "examples" / "churn.csv"  # tests/configs/churn.yaml's table, as an absolute path
# Few, short trials live in tests/configs/pipeline.yaml itself (its tune section), not in overrides.


def new_store(folder: Path, template_store: Path) -> str:
    """A private SQLite store in `folder` (artifacts under folder/artifacts), copied from the template: its URI."""
    database = folder / "mlflow.db"
    shutil.copyfile(template_store, database)
    with sqlite3.connect(database) as connection:
        connection.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0", (str(folder / "artifacts" / "0"),)
        )
    return f"sqlite:///{database}"


def use_store(patch: pytest.MonkeyPatch, uri: str, folder: Path) -> None:
    """Point MLflow (this process and the processes it starts) at `uri`, from `folder` as working directory."""
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        patch.delenv(name, raising=False)
    patch.setenv("MLFLOW_TRACKING_URI", uri)
    patch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    patch.chdir(folder)


def end_active_runs() -> None:
    """End every MLflow run still active in this process (innermost first)."""
    while mlflow.active_run():
        mlflow.end_run()


def multiclass_scores(rows: int, lift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three-class truth and probabilities that favour it by `lift` before normalising: a model's held-out output."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, rows)
    probabilities = rng.dirichlet([1, 1, 1], rows)
    probabilities[np.arange(rows), truth] += lift
    return truth, probabilities / probabilities.sum(axis=1, keepdims=True)


def small_config_with(overrides: dict[str, object]) -> PipelineConfig:
    """The tests' config with dotted overrides, e.g. {"evaluate.binary.thresholds.roc_auc.threshold": 1.01}."""
    return load_config(DEFAULT_CONFIG, overrides)


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new database on the local PostgreSQL, dropped afterwards. Skips the test when no server answers, unless
    PIPELINE_REQUIRE_POSTGRES=1 (CI sets it, so a missing server fails there instead of passing silently)."""
    import os
    import uuid

    import psycopg

    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        connection = psycopg.connect(admin, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("PIPELINE_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {exc}")
    name = f"pipeline_test_{uuid.uuid4().hex[:12]}"
    with connection:
        connection.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql://postgres@127.0.0.1:5432/{name}"
        finally:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
