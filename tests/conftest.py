"""Shared fixtures: a private SQLite tracking store per test (copied from one prepared store) and small configs."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from pipeline.config import PipelineConfig, load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
# The tests' own configs and feature hook: configs/ and pipeline/features.py are the user's to edit (this is a
# template), so no test reads them. tests/configs/pipeline.yaml is what configs/pipeline.yaml shipped with
# (breast cancer, breast-cancer-xgb) with `features.hook` on tests/hooks/breast_cancer_ratio.py; wine, diabetes and
# churn there extend it.
TEST_CONFIGS = REPO_ROOT / "tests" / "configs"
TEST_CONFIG = TEST_CONFIGS / "pipeline.yaml"
DEFAULT_CONFIG = TEST_CONFIG  # the name the test modules import
TEST_HOOK = REPO_ROOT / "tests" / "hooks" / "breast_cancer_ratio.py"
CHURN_CSV = REPO_ROOT / "examples" / "churn.csv"  # tests/configs/churn.yaml's table, as an absolute path
# Few, short trials: the structure of the run tree is what the tests check, not the model's quality.
SMALL_OVERRIDES = {"tune.n_trials": 3, "tune.max_boosting_rounds": 60, "tune.early_stopping_rounds": 10}


@pytest.fixture(scope="session")
def template_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Create the schema once (about 3 s); each test copies the file (milliseconds)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder = tmp_path_factory.mktemp("template-store")
    SqlAlchemyStore(f"sqlite:///{folder / 'mlflow.db'}", str(folder / "artifacts"))
    return folder / "mlflow.db"


@pytest.fixture
def tracking_uri(tmp_path: Path, template_store: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    database = tmp_path / "mlflow.db"
    shutil.copyfile(template_store, database)
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                           (str(tmp_path / "artifacts" / "0"),))
    uri = f"sqlite:///{database}"
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    monkeypatch.chdir(tmp_path)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture
def client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri)


def small_config_with(overrides: dict[str, object]) -> PipelineConfig:
    """The small test config with more dotted overrides, e.g. {"evaluate.binary.thresholds.roc_auc.threshold": 1.01}."""
    return load_config(DEFAULT_CONFIG, {**SMALL_OVERRIDES, **overrides})


@pytest.fixture
def small_config() -> PipelineConfig:
    return small_config_with({})


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


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url
