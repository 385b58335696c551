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
# Few, short trials live in tests/configs/pipeline.yaml itself (its tune section), not in overrides.
# Markers (pyproject.toml): `slow` = through `mlflow run`, an orchestrator, a server or a copy of the repository;
# `heavy` = in-process but trains models, starts pipeline processes or needs PostgreSQL. `make test-fast` runs the
# rest (unit tests and light in-process checks); tests/integration/test_template.py runs the same selection.
SERVER_FIXTURES = {"postgres_url"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that needs PostgreSQL must not land in `make test-fast`: fail the collection if it is unmarked."""
    unmarked = [
        item.nodeid
        for item in items
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))
        and not (item.get_closest_marker("slow") or item.get_closest_marker("heavy"))
    ]
    if unmarked:
        raise pytest.UsageError(f"tests needing PostgreSQL must be marked heavy or slow: {', '.join(unmarked)}")


@pytest.fixture(scope="session")
def template_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Create the schema once (about 3 s); each test copies the file (milliseconds)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder = tmp_path_factory.mktemp("template-store")
    SqlAlchemyStore(f"sqlite:///{folder / 'mlflow.db'}", str(folder / "artifacts"))
    return folder / "mlflow.db"


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
    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture
def tracking_uri(tmp_path: Path, template_store: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A store of the test's own, for tests that change what is in it."""
    uri = new_store(tmp_path, template_store)
    use_store(monkeypatch, uri, tmp_path)
    yield uri
    end_active_runs()


@pytest.fixture
def client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri)


@pytest.fixture(scope="module")
def module_store(tmp_path_factory: pytest.TempPathFactory, template_store: Path) -> Iterator[tuple[str, Path]]:
    """A store shared by the tests of one module: (URI, folder). For what they only read (a chain made once);
    a test that writes to it keeps its own runs apart with `own_experiment`. A test of the same module that asks
    for `tracking_uri` gets its own store instead, for the length of that test."""
    folder = tmp_path_factory.mktemp("module-store")
    uri = new_store(folder, template_store)
    with pytest.MonkeyPatch.context() as patch:
        use_store(patch, uri, folder)
        yield uri, folder
        end_active_runs()


@pytest.fixture(scope="module")
def module_client(module_store: tuple[str, Path]) -> MlflowClient:
    return MlflowClient(module_store[0])


@pytest.fixture
def own_experiment(module_store: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, request) -> str:
    """An experiment of this test's own in the module's store (the registry stays shared): its id."""
    name = f"test-{request.node.name}"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", name)
    return MlflowClient(module_store[0]).create_experiment(name)


def small_config_with(overrides: dict[str, object]) -> PipelineConfig:
    """The tests' config with dotted overrides, e.g. {"evaluate.binary.thresholds.roc_auc.threshold": 1.01}."""
    return load_config(DEFAULT_CONFIG, overrides)


@pytest.fixture
def small_config() -> PipelineConfig:
    return load_config(DEFAULT_CONFIG)


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
