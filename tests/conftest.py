"""Shared fixtures and pytest hooks only: a private SQLite tracking store per test (copied from one prepared store)
and small configs. Plain helpers and constants live in tests/helpers.py; import those from there, never from here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipeline.config import PipelineConfig, load_config
from tests.helpers import DEFAULT_CONFIG, end_active_runs, fresh_postgres_database, new_store, use_store

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


@pytest.fixture
def small_config() -> PipelineConfig:
    return load_config(DEFAULT_CONFIG)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url
