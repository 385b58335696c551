"""One class per kind of data source (pipeline/data/source_kinds.py): the kind each text picks, what is logged of it
(no password), and digests equal to those the cache fingerprint has always used (computed here from first
principles: hashlib over the files, pandas' row hash over a table)."""

import hashlib
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import DataConfig
from pipeline.data.source_kinds import (
    FileSource,
    S3Source,
    SklearnSource,
    SqlSource,
    UrlSource,
    source_for,
    table_at,
)
from pipeline.data.source_text import source_kind
from pipeline.errors import DataError
from pipeline.tracking.cache import source_digest


def _data(source: str, **settings) -> DataConfig:
    return DataConfig.whole_table(source=source, target="y", **settings)


@pytest.mark.parametrize(
    ("source", "settings", "kind", "cls"),
    [
        ("sklearn:wine", {}, "sklearn", SklearnSource),
        ("sqlite:///tables.db", {"table": "t"}, "sql", SqlSource),
        ("postgresql+psycopg://u:pw@h/db", {"query": "SELECT 1"}, "sql", SqlSource),
        ("https://example.com/x.csv", {}, "url", UrlSource),
        ("http://example.com/x.parquet?v=2", {}, "url", UrlSource),
        ("s3://bucket/in/x.parquet", {}, "s3", S3Source),
        ("examples/churn.csv", {}, "files", FileSource),
        ("data/table.parquet", {}, "files", FileSource),
        ("data/*.parquet", {}, "files", FileSource),
        ("/data/postgresql.csv", {}, "files", FileSource),
    ],
)
def test_the_source_text_picks_the_class(source, settings, kind, cls):
    assert source_kind(source) == kind
    picked = source_for(_data(source, **settings))
    assert type(picked) is cls and picked.kind == kind


def test_a_bare_path_or_url_is_a_table_file():
    assert type(table_at("s3://bucket/x.csv")) is S3Source
    assert type(table_at("https://example.com/x.csv")) is UrlSource
    assert type(table_at("eval.parquet")) is FileSource


@pytest.mark.parametrize(
    ("source", "settings", "shown"),
    [
        (
            "postgresql://analyst:hunter22@db/sales",
            {"table": "orders"},
            "postgresql://analyst:***@db/sales table orders",
        ),
        (
            "mysql://analyst:hunter22@db/sales",
            {"query": "SELECT  *\n FROM t"},
            "mysql://analyst:***@db/sales query: SELECT * FROM t",
        ),
        ("https://u:hunter22@example.com/x.csv", {}, "https://u:***@example.com/x.csv"),
        ("s3://key:hunter22@bucket/x.parquet", {}, "s3://key:***@bucket/x.parquet"),
        ("https://example.com/a%20b.csv?x=1", {}, "https://example.com/a%20b.csv?x=1"),
        ("examples/churn.csv", {}, "examples/churn.csv"),
        ("sklearn:wine", {}, "sklearn:wine"),
    ],
)
def test_describe_never_shows_a_password(source, settings, shown):
    described = source_for(_data(source, **settings)).describe()
    assert described == shown and "hunter22" not in described


def test_a_url_error_names_the_url_without_its_password():
    with pytest.raises(
        DataError, match=r"^data file https://u:\*\*\*@example.com/x.txt: unsupported type '.txt'"
    ) as caught:
        source_for(_data("https://u:hunter22@example.com/x.txt")).load()
    assert "hunter22" not in str(caught.value)


@pytest.mark.parametrize(
    ("source", "settings", "name"),
    [
        ("sklearn:wine", {}, "wine"),
        ("sqlite:///tables.db", {"table": "orders"}, "orders"),
        ("sqlite:///tables.db", {"query": "SELECT 1"}, "sql-query"),
        ("examples/churn.csv", {}, "churn"),
        ("https://example.com/data/rows.parquet", {}, "rows"),
        ("s3://bucket/in/rows.parquet", {}, "rows"),
    ],
)
def test_dataset_names(source, settings, name):
    assert source_for(_data(source, **settings)).dataset_name() == name


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_files_digest_is_its_sha256(tmp_path):
    path = tmp_path / "rows.csv"
    pd.DataFrame({"a": [1, 2], "y": [0, 1]}).to_csv(path, index=False)
    assert source_digest(_data(str(path))) == _sha256(path)
    assert source_for(_data(str(path))).digest() == _sha256(path)


def test_a_folders_digest_hashes_its_files_relative_names_and_contents(tmp_path):
    folder = tmp_path / "table.parquet"
    (folder / "part").mkdir(parents=True)
    pd.DataFrame({"a": [1.0], "y": [0]}).to_parquet(folder / "p0.parquet")
    pd.DataFrame({"a": [2.0], "y": [1]}).to_parquet(folder / "part" / "p1.parquet")
    (folder / ".hidden").write_text("left out")
    combined = hashlib.sha256()
    for name in ("p0.parquet", "part/p1.parquet"):
        combined.update(f"{name}\0{_sha256(folder / name)}\n".encode())
    assert source_digest(_data(str(folder))) == f"files:{combined.hexdigest()}"
    pattern = f"{folder}/**/*.parquet"  # a glob: the files' names as the glob gives them
    combined = hashlib.sha256()
    for path in (folder / "p0.parquet", folder / "part" / "p1.parquet"):
        combined.update(f"{path.as_posix()}\0{_sha256(path)}\n".encode())
    assert source_digest(_data(pattern)) == f"files:{combined.hexdigest()}"
    assert source_digest(_data(str(tmp_path / "nothing-here.csv"))) is None


def test_a_sqlite_tables_digest_hashes_its_rows(tmp_path):
    rows = [(1.0, "a", 0), (2.0, "b", 1)]
    with sqlite3.connect(tmp_path / "db.sqlite") as connection:
        connection.execute("CREATE TABLE t (x REAL, name TEXT, y INTEGER)")
        connection.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    expected = pd.DataFrame.from_records(rows, columns=["x", "name", "y"], coerce_float=True)
    row_hash = str(pd.util.hash_pandas_object(expected, index=False).sum())
    assert source_digest(_data(f"sqlite:///{tmp_path / 'db.sqlite'}", table="t")) == f"sql:{row_hash}"


def test_a_bundled_datasets_digest_is_its_name_and_a_urls_is_unknown():
    assert source_digest(_data("sklearn:wine")) == "sklearn:wine"
    assert source_digest(_data("http://example.com/rows.csv")) is None
    assert source_digest(_data("https://example.com/rows.csv")) is None
    assert source_digest(_data("s3://bucket/rows.parquet")) is None


def test_engine_dask_names_a_local_file_it_cannot_read(tmp_path):
    pytest.importorskip("dask.dataframe")
    with pytest.raises(DataError, match=r"nope\.txt not found"):
        source_for(_data(str(tmp_path / "nope.txt"))).read_dask()
    (tmp_path / "rows.txt").write_text("a,y\n1,0\n")
    with pytest.raises(DataError, match="engine dask reads Parquet"):
        source_for(_data(str(tmp_path / "rows.txt"))).read_dask()
    frame = source_for(_data("sklearn:wine")).read_dask()
    assert frame.npartitions == 2 and len(frame) == 178
