"""A PostgreSQL table as the data source, against the machine's server (127.0.0.1:5432, trust auth): preprocess
through the CLI, the content digest the cache keys on, and every failure as one line with its exit code and no
password anywhere."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
import yaml

from pipeline import cli
from pipeline.config import load_config
from pipeline.contract import ERROR_TAG, STEP_TAG
from pipeline.data.sources import load_source
from pipeline.tracking.cache import source_digest
from tests.helpers import DEFAULT_CONFIG
from tests.integration.helpers import free_port

PASSWORD = "hunter2-not-logged"  # trust auth ignores it; it must never show in a param, tag, artifact or message
pytestmark = pytest.mark.heavy  # a PostgreSQL server


@pytest.fixture
def database(postgres_url, monkeypatch):
    """A fresh database with table `customers` (a number, a text category, a 0/1 target), and its URL with the
    password in ${PIPELINE_TEST_PGPASSWORD}."""
    monkeypatch.setenv("PIPELINE_TEST_PGPASSWORD", PASSWORD)
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE customers (id serial PRIMARY KEY, tenure double precision, plan text, churned integer)"
        )
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO customers (tenure, plan, churned) VALUES (%s, %s, %s)",
                [(float(i), ("basic", "plus", "pro")[i % 3], i % 2) for i in range(40)],
            )
    return postgres_url.replace("postgresql://postgres@", "postgresql://postgres:${PIPELINE_TEST_PGPASSWORD}@")


def overrides(source: str, **data: str) -> dict[str, str]:
    return {
        "data.source": source,
        "data.target": "churned",
        "data.task": "binary",
        **{f"data.{key}": value for key, value in data.items()},
    }


def run_preprocess(source: str, **data: str) -> int:
    sets = [arg for key, value in overrides(source, **data).items() for arg in ("--set", f"{key}={value}")]
    return cli.main(["preprocess", "--config", str(DEFAULT_CONFIG), *sets])


def only_run(client):
    (run,) = client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'preprocess'")
    return run


def error_lines(capfd) -> list[str]:
    return [line for line in capfd.readouterr().err.splitlines() if " ERROR " in line]


def test_preprocess_reads_a_table_and_logs_no_password(client, database, capfd):
    assert run_preprocess(database, table="customers") == 0
    run = only_run(client)
    assert run.info.status == "FINISHED"
    assert run.data.params["data.source"].startswith("postgresql://postgres:")
    assert run.data.metrics["n_rows"] == 40
    resolved = yaml.safe_load(Path(client.download_artifacts(run.info.run_id, "config/resolved.yaml")).read_text())
    assert resolved["data"]["source"].startswith("postgresql://postgres:***@127.0.0.1:5432/")
    assert resolved["data"]["table"] == "customers"
    logged = [str(run.data.params), str(run.data.tags), str(resolved), capfd.readouterr().err]
    assert not [text for text in logged if PASSWORD in text]


def test_a_query_loads_and_the_digest_follows_the_rows(database):
    config = load_config(DEFAULT_CONFIG, overrides(database, query="SELECT tenure, plan, churned FROM customers"))
    frame = load_source(config.data)
    assert frame.columns.tolist() == ["tenure", "plan", "churned"] and len(frame) == 40
    before = source_digest(config.data)
    assert before.startswith("sql:") and source_digest(config.data) == before  # the content, not the read
    with psycopg.connect(database.replace("${PIPELINE_TEST_PGPASSWORD}", PASSWORD), autocommit=True) as connection:
        connection.execute("UPDATE customers SET plan = 'gold' WHERE id = 7")
    assert source_digest(config.data) != before


def test_main_reuses_preprocess_until_a_row_changes(client, database):
    def preprocess_runs() -> set[str]:
        return {run.info.run_id for run in client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'preprocess'")}

    sets = [arg for key, value in overrides(database, table="customers").items() for arg in ("--set", f"{key}={value}")]
    chain = ["main", "--config", str(DEFAULT_CONFIG), *sets]
    assert cli.main(chain) == 0 and cli.main(chain) == 0
    assert len(preprocess_runs()) == 1
    with psycopg.connect(database.replace("${PIPELINE_TEST_PGPASSWORD}", PASSWORD), autocommit=True) as connection:
        connection.execute("UPDATE customers SET tenure = 100 WHERE id = 3")
    assert cli.main(chain) == 0
    assert len(preprocess_runs()) == 2


def test_the_fingerprint_read_is_handed_to_preprocess(database, monkeypatch):
    from pipeline.data import sql_source

    config = load_config(DEFAULT_CONFIG, overrides(database, table="customers"))
    reads = []
    fetch = sql_source.fetch
    monkeypatch.setattr(sql_source, "fetch", lambda data: reads.append(1) or fetch(data))
    digest = source_digest(config.data)  # main: the fingerprint
    load_source(config.data)  # preprocess: the rows
    assert source_digest(config.data) == digest  # preprocess: its own fingerprint
    assert len(reads) == 1
    load_source(config.data)  # a later load in the same process reads afresh
    assert len(reads) == 2


# (case, data.source ({base}: the fresh database's URL with the password variable), data.query or data.table,
# exit code, words the one error line must hold)
BAD_SOURCES = [
    (
        "unparseable URL",
        "postgresql://postgres:${PIPELINE_TEST_PGPASSWORD}@127.0.0.1:port/x",
        {"table": "t"},
        2,
        "is not a valid database URL",
    ),
    (
        "closed port",
        "postgresql://postgres:${PIPELINE_TEST_PGPASSWORD}@127.0.0.1:{port}/x",
        {"table": "t"},
        4,
        "cannot reach the database postgresql://postgres:***@127.0.0.1:",
    ),
    ("missing database", "{base}_missing", {"table": "customers"}, 4, "does not exist"),
    ("syntax error", "{base}", {"query": "SELEC tenure FROM customers"}, 2, 'syntax error at or near "SELEC"'),
    ("unknown table", "{base}", {"table": "no_such_table"}, 2, 'relation "no_such_table" does not exist'),
    ("empty result", "{base}", {"query": "SELECT * FROM customers WHERE tenure < 0"}, 2, "holds no rows"),
    (
        "unset variable",
        "postgresql://postgres:${PIPELINE_TEST_UNSET}@127.0.0.1:5432/x",
        {"table": "t"},
        2,
        "environment variable PIPELINE_TEST_UNSET is not set",
    ),
]


@pytest.mark.parametrize(("case", "source", "data", "code", "words"), BAD_SOURCES, ids=[c[0] for c in BAD_SOURCES])
def test_a_bad_source_fails_in_one_line_without_the_password(
    client, database, capfd, monkeypatch, case, source, data, code, words
):
    monkeypatch.delenv("PIPELINE_TEST_UNSET", raising=False)
    source = source.replace("{base}", database).replace("{port}", str(free_port()))
    started = time.monotonic()
    assert run_preprocess(source, **data) == code
    assert time.monotonic() - started < 60
    errors = error_lines(capfd)
    assert len(errors) == 1 and words in errors[0], errors
    run = only_run(client)
    assert run.info.status == "FAILED"
    tag = run.data.tags[ERROR_TAG]
    assert words in tag and "\n" not in tag and PASSWORD not in tag and PASSWORD not in errors[0]
