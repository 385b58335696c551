"""One class per kind of data source (`data.source`): a local file, folder or glob (CSV or Parquet), a bundled
scikit-learn dataset (`sklearn:<name>`), a SQL database (a SQLAlchemy URL with `data.query` or `data.table`, read by
pipeline/data/sql_source.py), an http(s):// (or other) URL read by pandas, an s3:// object fetched by boto3.

Each source loads itself into pandas (`load`), reads itself as a lazy Dask DataFrame (`read_dask`, engine dask),
says what may be logged of it (`describe`: no password ever), what identifies its content for the cache
fingerprint (`digest`, docs/design.md "Fingerprint and reuse"; None where the content cannot be known) and the name
of its logged datasets (`dataset_name`). `source_for` picks the class for a config, `table_at` for a bare path or
URL (`--eval-data`); the kind itself is decided by `pipeline.data.source_text.source_kind`.

Reads: the source. Writes nothing (an s3:// object is downloaded to a temporary folder, removed once read).
pandas, Dask, scikit-learn, boto3 and SQLAlchemy are imported only when a source is read.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pipeline.data.digests import dataset_files, file_digest, files_digest
from pipeline.data.source_text import SKLEARN_PREFIX, SourceKind, source_kind
from pipeline.errors import DataError, first_line
from pipeline.masking import mask_source

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.config import DataConfig

SKLEARN_DATASETS = ("breast_cancer", "wine", "iris", "diabetes", "digits")
# A table read into this process (scikit-learn, SQL) is cut into partitions of at most this many rows (at least two)
# on engine dask: by its size, not the cluster's, so the split does not change with the number of workers.
PARTITION_ROWS = 100_000


class Source(ABC):
    """A data source of one kind."""

    kind: ClassVar[SourceKind]

    @abstractmethod
    def load(self) -> pd.DataFrame:
        """The whole table in this process, its columns as the source has them (checked by the caller)."""

    @abstractmethod
    def describe(self) -> str:
        """What params, tags and messages may show of the source: any password masked."""

    @abstractmethod
    def digest(self) -> str | None:
        """What identifies the source's content for the cache fingerprint; None when it cannot be known."""

    @abstractmethod
    def dataset_name(self) -> str:
        """The name of the logged datasets (`<name>-train`, `<name>-test`)."""

    def read_dask(self) -> Any:
        """The table as a lazy Dask DataFrame (columns unchecked); a reader's failure is a DataError naming the
        source."""
        try:
            return self._dask_frame()
        except ImportError as exc:  # s3:// without s3fs, say
            raise DataError(f"data source {self.describe()}: {first_line(exc)}") from exc
        except (OSError, ValueError) as exc:
            raise DataError(f"data source {self.describe()} cannot be read: {first_line(exc)}") from exc

    @abstractmethod
    def _dask_frame(self) -> Any: ...


class _ReadHere(Source):
    """A source only this process can read (a bundled dataset, a database): on engine dask it is loaded here and cut
    into partitions of PARTITION_ROWS."""

    def _dask_frame(self) -> Any:
        import dask.dataframe as dd

        table = self.load()
        return dd.from_pandas(table, npartitions=max(2, -(-len(table) // PARTITION_ROWS)), sort=False)


@dataclass(frozen=True)
class SklearnSource(_ReadHere):
    """`sklearn:<name>`: a dataset bundled with scikit-learn, its target column renamed to `data.target`."""

    kind: ClassVar[SourceKind] = "sklearn"
    name: str
    target: str

    def load(self) -> pd.DataFrame:
        if self.name not in SKLEARN_DATASETS:
            raise DataError(f"unknown scikit-learn dataset '{self.name}' (choose from {', '.join(SKLEARN_DATASETS)})")
        from sklearn import datasets

        bunch = getattr(datasets, f"load_{self.name}")(as_frame=True)
        return bunch.frame.rename(columns={"target": self.target})

    def describe(self) -> str:
        return f"{SKLEARN_PREFIX}{self.name}"

    def digest(self) -> str:
        return f"{SKLEARN_PREFIX}{self.name}"  # a bundled dataset changes only with scikit-learn

    def dataset_name(self) -> str:
        return self.name


@dataclass(frozen=True)
class SqlSource(_ReadHere):
    """A database: `data.source` a SQLAlchemy URL, the rows of `data.query` or of the whole `data.table`."""

    kind: ClassVar[SourceKind] = "sql"
    data: DataConfig

    def load(self) -> pd.DataFrame:
        from pipeline.data.sql_source import read_sql

        return read_sql(self.data)

    def describe(self) -> str:
        from pipeline.data.sql_source import describe_sql_source

        return describe_sql_source(self.data)

    def digest(self) -> str:
        from pipeline.data.sql_source import sql_digest

        return f"sql:{sql_digest(self.data)}"  # the rows, read once per process (sql_source hands them on)

    def dataset_name(self) -> str:
        return self.data.table or "sql-query"


@dataclass(frozen=True)
class TableFile(Source):
    """A CSV or Parquet table at a path or URL: Parquet also a folder of part files or a glob on engine dask."""

    location: str

    def describe(self) -> str:
        return mask_source(self.location)

    def dataset_name(self) -> str:
        return Path(self.location).stem

    def _dask_frame(self) -> Any:
        import dask.dataframe as dd

        location = self.location
        if location.split("?")[0].endswith(".csv") or ("*" in location and ".csv" in location):
            return dd.read_csv(location, blocksize="64MB", assume_missing=True)
        if location.split("?")[0].rstrip("/").endswith(".parquet") or self._is_folder() or "*" in location:
            return dd.read_parquet(location)
        self._check_exists()
        raise DataError(
            f"data source {self.describe()}: engine dask reads Parquet (a folder, file or glob) or CSV files"
        )

    def _is_folder(self) -> bool:
        """Whether the location is a folder (of Parquet part files): known only for a local one."""
        return False

    def _check_exists(self) -> None:
        """A DataError if the location is known not to exist (only a local one is looked at)."""


@dataclass(frozen=True)
class FileSource(TableFile):
    """A local CSV or Parquet file; on engine dask also a folder of Parquet files or a glob."""

    kind: ClassVar[SourceKind] = "files"

    def load(self) -> pd.DataFrame:
        if not Path(self.location).is_file():
            raise DataError(f"data file {self.location} not found")
        return _read_file(self.location, self.location)

    def digest(self) -> str | None:
        """The file's SHA-256; for a folder or glob, the hash of its files' names and contents (`files:`); None
        when no file is there."""
        files = dataset_files(self.location)
        if not files:
            return None
        if files == [Path(self.location)]:
            return file_digest(self.location)
        folder = Path(self.location) if Path(self.location).is_dir() else None  # a moved folder keeps its digest
        return f"files:{files_digest(files, folder)}"

    def _is_folder(self) -> bool:
        return Path(self.location.split("?")[0].rstrip("/")).is_dir()

    def _check_exists(self) -> None:
        if not Path(self.location).exists():
            raise DataError(f"data source {self.describe()} not found")


@dataclass(frozen=True)
class UrlSource(TableFile):
    """A CSV or Parquet file at an http(s):// (or other fsspec) URL, read by pandas; on engine dask by the workers."""

    kind: ClassVar[SourceKind] = "url"

    def load(self) -> pd.DataFrame:
        return _read_file(self.location, self.describe())

    def digest(self) -> None:
        return None  # what is behind a URL may change unseen: preprocess always runs


@dataclass(frozen=True)
class S3Source(TableFile):
    """An s3:// object, downloaded with boto3 (credentials and endpoint as for MLflow's S3 artifacts:
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, MLFLOW_S3_ENDPOINT_URL or AWS_ENDPOINT_URL for MinIO and the like);
    on engine dask read by the workers (s3fs)."""

    kind: ClassVar[SourceKind] = "s3"

    def load(self) -> pd.DataFrame:
        import os
        import tempfile
        from urllib.parse import urlsplit

        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        parts = urlsplit(self.location)
        endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL") or None
        with tempfile.TemporaryDirectory(prefix="s3-source-") as tmp:
            local = Path(tmp) / Path(parts.path).name
            try:
                boto3.client("s3", endpoint_url=endpoint).download_file(
                    parts.netloc, parts.path.lstrip("/"), str(local)
                )
            except (BotoCoreError, ClientError) as exc:
                raise DataError(f"data file {self.describe()} cannot be downloaded: {first_line(exc)}") from exc
            return FileSource(str(local)).load()

    def digest(self) -> None:
        return None  # an object may be replaced unseen: preprocess always runs


def source_for(data: DataConfig) -> Source:
    """The source `data` configures."""
    kind = source_kind(data.source)
    if kind == "sklearn":
        return SklearnSource(data.source.removeprefix(SKLEARN_PREFIX), data.target)
    if kind == "sql":
        return SqlSource(data)
    return table_at(data.source)


def table_at(location: str) -> TableFile:
    """The CSV or Parquet table at a bare path or URL (`--eval-data`, a `data.source` that is a file): s3:// fetched
    by boto3, another URL read by pandas, anything else a local path."""
    kind = source_kind(location)
    if kind == "s3":
        return S3Source(location)
    if kind in ("url", "sql"):  # a database URL holds no table file: pandas says what is wrong with it
        return UrlSource(location)
    return FileSource(location)  # `sklearn:<name>` is no file either: "not found"


def _read_file(location: str, shown: str) -> pd.DataFrame:
    """A CSV or Parquet file (by its suffix) read by pandas from a local path or a URL; errors name it as `shown`."""
    import pandas as pd

    suffix = Path(location.split("?")[0]).suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(location)
        elif suffix == ".csv":
            frame = pd.read_csv(location)
            _check_csv_header(location, shown)
        else:
            raise DataError(f"data file {shown}: unsupported type '{suffix}' (use .csv or .parquet)")
    except ImportError as exc:
        raise DataError(f"data file {shown}: {first_line(exc)}") from exc
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"data file {shown} cannot be read: {first_line(exc)}") from exc
    if frame.empty:
        raise DataError(f"data file {shown} holds no rows")
    return frame


def _check_csv_header(location: str, shown: str) -> None:
    """pandas renames repeated CSV column names (`a`, `a.1`) without a word: refuse them instead."""
    import pandas as pd

    header = pd.read_csv(location, nrows=1, header=None).iloc[0].astype(str).tolist()
    if duplicated := sorted({name for name in header if header.count(name) > 1}):
        raise DataError(f"data file {shown} has duplicate column names: {', '.join(duplicated)}")
