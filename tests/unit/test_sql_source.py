"""A SQL database as the data source, without a server: URL recognition, secrets, what is logged, config rules."""

import pandas as pd
import pytest

from pipeline.config import DataConfig, load_config, loggable_config
from pipeline.data.sources import dataset_name, load_source, loggable_source
from pipeline.data.sql_source import (
    describe_sql_source,
    expand_secrets,
    is_sql_url,
    sql_digest,
    with_psycopg,
)
from pipeline.errors import ConfigError, DataError
from pipeline.masking import mask_url
from tests.helpers import DEFAULT_CONFIG

PG = "postgresql://analyst:${PGPASSWORD}@db.example.com:5432/sales"


@pytest.mark.parametrize(
    ("source", "sql"),
    [
        ("postgresql://u:p@h:5432/db", True),
        ("postgresql+psycopg://u@h/db", True),
        ("postgres://u@h/db", True),
        ("mysql+pymysql://u:p@h/db", True),
        ("mariadb://u@h/db", True),
        ("sqlite:///path.db", True),
        ("sqlite:////abs/path.db", True),
        ("mssql+pyodbc://u:p@dsn", True),
        ("oracle+oracledb://u:p@h/db", True),
        ("https://example.com/data.csv", False),
        ("http://example.com/data.csv", False),
        ("s3://bucket/data.parquet", False),
        ("sklearn:breast_cancer", False),
        ("examples/churn.csv", False),
        ("/data/postgresql.csv", False),
        ("postgresql.csv", False),
    ],
)
def test_is_sql_url(source, sql):
    assert is_sql_url(source) is sql


def test_secrets_are_expanded_only_from_the_environment(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "s3cr@t/x")  # characters that would break a URL need no escaping
    monkeypatch.setenv("PGHOST", "db.internal")
    assert (
        expand_secrets("postgresql://analyst:${PGPASSWORD}@${PGHOST}:5432/sales")
        == "postgresql://analyst:s3cr%40t%2Fx@db.internal:5432/sales"
    )
    assert expand_secrets("sqlite:///plain.db") == "sqlite:///plain.db"


def test_an_unset_variable_names_itself_and_the_key(monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    with pytest.raises(ConfigError, match=r"data.source: environment variable PGPASSWORD is not set") as error:
        expand_secrets(PG)
    assert "\n" not in str(error.value)


def test_plain_postgresql_urls_use_psycopg_3():
    from sqlalchemy.engine import make_url

    assert with_psycopg(make_url("postgresql://u@h/db")).drivername == "postgresql+psycopg"
    assert with_psycopg(make_url("postgres://u@h/db")).drivername == "postgresql+psycopg"
    assert with_psycopg(make_url("postgresql+pg8000://u@h/db")).drivername == "postgresql+pg8000"
    assert with_psycopg(make_url("sqlite:///a.db")).drivername == "sqlite"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (PG, "postgresql://analyst:***@db.example.com:5432/sales"),
        ("postgresql://analyst:hunter22@db/sales", "postgresql://analyst:***@db/sales"),
        ("postgresql://${PGUSER}:${PGPASSWORD}@${PGHOST}/sales", "postgresql://${PGUSER}:***@${PGHOST}/sales"),
        ("postgresql://analyst:hun@ter22@db/sales", "postgresql://***@db"),  # an unescaped @: nothing of it shown
        ("postgresql://analyst:hunter22@db:port/sales", "postgresql://***"),  # unparsable: the scheme only
    ],
)
def test_mask_url_hides_passwords_and_keeps_variables_unexpanded(url, shown):
    assert mask_url(url) == shown


def test_describe_names_the_table_or_the_query_start_never_the_password(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "hunter22")
    table = DataConfig.whole_table(source=PG, table="public.orders", target="churned")
    assert describe_sql_source(table) == "postgresql://analyst:***@db.example.com:5432/sales table public.orders"
    query = DataConfig.whole_table(
        source=PG, query="SELECT a,\n       b\nFROM t  WHERE x = 1" + " " * 10 + "AND y" * 100, target="churned"
    )
    described = describe_sql_source(query)
    assert described.startswith("postgresql://analyst:***@db.example.com:5432/sales query: SELECT a, b FROM t WHERE")
    assert described.endswith("...") and len(described.split(" query: ")[1]) == 203
    for shown in (described, loggable_source(query)):
        assert "hunter22" not in shown and "${PGPASSWORD}" not in shown


def test_loggable_source_and_dataset_name_of_other_sources():
    assert (
        loggable_source(DataConfig.whole_table(source="https://u:pw123@h/x.csv", target="t")) == "https://u:***@h/x.csv"
    )
    assert (
        loggable_source(DataConfig.whole_table(source="https://h/a%20b.csv?x=1", target="t"))
        == "https://h/a%20b.csv?x=1"
    )
    assert loggable_source(DataConfig.whole_table(source="examples/churn.csv", target="t")) == "examples/churn.csv"
    assert dataset_name(DataConfig.whole_table(source="examples/churn.csv", target="t")) == "churn"
    assert dataset_name(DataConfig.whole_table(source="sklearn:wine", target="t")) == "wine"
    assert dataset_name(DataConfig.whole_table(source=PG, table="orders", target="t")) == "orders"
    assert dataset_name(DataConfig.whole_table(source=PG, query="SELECT 1", target="t")) == "sql-query"


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"data.source": PG}, "needs exactly one of `data.query` and `data.table`"),
        ({"data.source": PG, "data.query": "SELECT 1", "data.table": "t"}, "(both are set)"),
        ({"data.source": "examples/churn.csv", "data.query": "SELECT 1"}, "`data.query` applies only when"),
        ({"data.table": "orders"}, "`data.table` applies only when"),
    ],
)
def test_config_needs_one_of_query_or_table_for_a_database_only(overrides, words):
    with pytest.raises(ConfigError) as error:
        load_config(DEFAULT_CONFIG, overrides)
    assert words in str(error.value) and "`data`" in str(error.value) and "\n" not in str(error.value)


def test_the_logged_config_masks_the_source():
    config = load_config(
        DEFAULT_CONFIG, {"data.source": "postgresql://analyst:hunter22@db/sales", "data.table": "orders"}
    )
    assert config.data.source == "postgresql://analyst:hunter22@db/sales"  # the config itself keeps it
    assert loggable_config(config)["data"]["source"] == "postgresql://analyst:***@db/sales"


def _sqlite(tmp_path, rows: list[tuple[float, str, int]]) -> str:
    import sqlite3

    with sqlite3.connect(tmp_path / "db.sqlite") as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS t (x REAL, name TEXT, y INTEGER)")
        connection.execute("DELETE FROM t")
        connection.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    return f"sqlite:///{tmp_path / 'db.sqlite'}"


def test_a_sqlite_table_loads_and_its_digest_follows_its_rows(tmp_path):
    url = _sqlite(tmp_path, [(1.0, "a", 0), (2.0, "b", 1)])
    data = DataConfig.whole_table(source=url, table="t", target="y")
    frame = load_source(data)
    assert frame.columns.tolist() == ["x", "name", "y"] and len(frame) == 2
    before = sql_digest(data)
    _sqlite(tmp_path, [(1.0, "a", 0), (3.0, "b", 1)])
    assert sql_digest(data) != before
    with pytest.raises(DataError, match="holds no rows"):
        load_source(DataConfig.whole_table(source=url, query="SELECT * FROM t WHERE y > 5", target="y"))
    with pytest.raises(DataError, match=r"database file .*nope.db not found"):
        load_source(DataConfig.whole_table(source=f"sqlite:///{tmp_path / 'nope.db'}", table="t", target="y"))
    assert not (tmp_path / "nope.db").exists()


def test_a_query_that_writes_changes_nothing(tmp_path):
    url = _sqlite(tmp_path, [(1.0, "a", 0)])
    with pytest.raises(DataError, match="data.query on sqlite:///.* failed"):
        load_source(DataConfig.whole_table(source=url, query="DELETE FROM t", target="y"))
    assert len(load_source(DataConfig.whole_table(source=url, table="t", target="y"))) == 1


def test_dates_arrive_as_datetimes():
    import datetime

    from pipeline.data.sql_source import _with_dates

    frame = _with_dates(pd.DataFrame({"d": [datetime.date(2024, 1, 2), None], "s": ["a", "b"]}))
    assert pd.api.types.is_datetime64_any_dtype(frame["d"]) and not pd.api.types.is_datetime64_any_dtype(frame["s"])
