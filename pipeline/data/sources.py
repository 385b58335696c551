"""Tabular data I/O: loading the configured source (sklearn, CSV, Parquet; path or URL; a SQL database through
pipeline.data.sql_source), what of it may be logged, the split, digests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.config import DataConfig, SplitConfig, mask_source
from pipeline.errors import DataError, first_line

SKLEARN_PREFIX = "sklearn:"
# Rows from which a logged dataset's schema is inferred (see tracked_dataset).
SCHEMA_SAMPLE_ROWS = 10_000
SKLEARN_DATASETS = ("breast_cancer", "wine", "iris", "diabetes", "digits")


def _is_url(source: str) -> bool:
    return "://" in source


def read_table(source: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, by local path, http(s):// URL (pandas reads it) or s3:// URI (boto3 fetches
    it); errors name the source and what is wrong with it."""
    text = str(source)
    if text.startswith("s3://"):
        return _read_s3(text)
    url = _is_url(text)
    if not url and not Path(text).is_file():
        raise DataError(f"data file {text} not found")
    suffix = Path(text.split("?")[0]).suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(text)
        elif suffix == ".csv":
            frame = pd.read_csv(text)
            _check_csv_header(text)
        else:
            raise DataError(f"data file {text}: unsupported type '{suffix}' (use .csv or .parquet)")
    except ImportError as exc:
        raise DataError(f"data file {text}: {first_line(exc)}") from exc
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"data file {text} cannot be read: {first_line(exc)}") from exc
    if frame.empty:
        raise DataError(f"data file {text} holds no rows")
    return frame


def _read_s3(uri: str) -> pd.DataFrame:
    """An s3:// table, downloaded with boto3 (credentials and endpoint as for MLflow's S3 artifacts:
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, MLFLOW_S3_ENDPOINT_URL or AWS_ENDPOINT_URL for MinIO and the like)."""
    import os
    import tempfile
    from urllib.parse import urlsplit

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    parts = urlsplit(uri)
    endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL") or None
    with tempfile.TemporaryDirectory(prefix="s3-source-") as tmp:
        local = Path(tmp) / Path(parts.path).name
        try:
            boto3.client("s3", endpoint_url=endpoint).download_file(parts.netloc, parts.path.lstrip("/"), str(local))
        except (BotoCoreError, ClientError) as exc:
            raise DataError(f"data file {uri} cannot be downloaded: {first_line(exc)}") from exc
        return read_table(local)


def _check_csv_header(source: str) -> None:
    """pandas renames repeated CSV column names (`a`, `a.1`) without a word: refuse them instead."""
    header = pd.read_csv(source, nrows=1, header=None).iloc[0].astype(str).tolist()
    if duplicated := sorted({name for name in header if header.count(name) > 1}):
        raise DataError(f"data file {source} has duplicate column names: {', '.join(duplicated)}")


def _delimiter_hint(frame: pd.DataFrame) -> str:
    if len(frame.columns) == 1:
        for delimiter in (";", "\t", "|"):
            if delimiter in str(frame.columns[0]):
                return f"; the file seems to use {delimiter!r} between columns, but CSV input must use ','"
    return ""


def load_source(data: DataConfig, keep_ids: bool = False) -> pd.DataFrame:
    """Load the configured dataset as one frame holding the feature columns and the target column: id columns
    dropped (unless `keep_ids`), and only `data.features` kept when that list is given."""
    from pipeline.data.sql_source import is_sql_url

    if data.source.startswith(SKLEARN_PREFIX):
        frame = _load_sklearn(data.source.removeprefix(SKLEARN_PREFIX), data.target)
    elif is_sql_url(data.source):
        from pipeline.data.sql_source import read_sql

        frame = read_sql(data)
    else:
        frame = read_table(data.source)
    return checked_columns(frame, data, keep_ids)


def checked_columns(frame, data: DataConfig, keep_ids: bool = False):
    """The table's columns checked against the config (no duplicates, the target, the named id and feature
    columns) and selected as `load_source` says. `frame` is a pandas or a Dask DataFrame (only its columns are
    read), so both engines refuse a table with the same messages."""
    shown = loggable_source(data)
    if duplicated := sorted({str(c) for c in frame.columns[frame.columns.duplicated()]}):
        raise DataError(f"{shown} has duplicate column names: {', '.join(duplicated)}")
    if data.target not in frame.columns:
        raise DataError(
            f"target column '{data.target}' not in {shown} (columns: {_preview(frame.columns)}){_delimiter_hint(frame)}"
        )
    named = [*data.id_columns, *(data.features or [])]
    if missing := [c for c in named if c not in frame.columns]:
        raise DataError(
            f"{shown} has no column(s) {', '.join(missing)} (named in data.id_columns / "
            f"data.features; columns: {_preview(frame.columns)})"
        )
    if data.features:
        return frame[[*(data.id_columns if keep_ids else []), *data.features, data.target]]
    return frame if keep_ids else frame.drop(columns=data.id_columns)


def loggable_source(data: DataConfig) -> str:
    """`data.source` as params, tags and messages may show it: a database as its masked URL with the table or the
    query's start (pipeline.data.sql_source.describe_sql_source), a URL's password masked, anything else as written."""
    from pipeline.data.sql_source import describe_sql_source, is_sql_url

    return describe_sql_source(data) if is_sql_url(data.source) else mask_source(data.source)


def dataset_name(data: DataConfig) -> str:
    """The name of the logged datasets (`<name>-train`, `<name>-test`): a scikit-learn dataset's name, a file's
    stem, a database table's name, or `sql-query` for a query."""
    from pipeline.data.sql_source import is_sql_url

    if is_sql_url(data.source):
        return data.table or "sql-query"
    source = data.source
    return source.removeprefix(SKLEARN_PREFIX) if source.startswith(SKLEARN_PREFIX) else Path(source).stem


def _load_sklearn(name: str, target: str) -> pd.DataFrame:
    if name not in SKLEARN_DATASETS:
        raise DataError(f"unknown scikit-learn dataset '{name}' (choose from {', '.join(SKLEARN_DATASETS)})")
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    return bunch.frame.rename(columns={"target": target})


def _preview(columns: pd.Index, limit: int = 8) -> str:
    names = [str(c) for c in columns[:limit]]
    return ", ".join(names) + (", ..." if len(columns) > limit else "")


def split_frame(
    frame: pd.DataFrame, target: str, split: SplitConfig, classification: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`pipeline.data.splitting.test_split` under its old name and argument order, for pipeline/steps/preprocess.py
    until it imports that (then delete this: it puts splitting.py in every step's fingerprint)."""
    from pipeline.data.splitting import test_split

    return test_split(frame, split, target, classification)


def features_and_target(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.Series]:
    if target not in frame.columns:
        raise DataError(
            f"target column '{target}' is not in the prepared data (was data.target changed after "
            "preprocess ran? rerun preprocess)"
        )
    return frame.drop(columns=[target]), frame[target]


def require_columns(frame: pd.DataFrame, required: list[str], what: str) -> None:
    """Raise a DataError naming every required column that `frame` lacks."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{what} lacks {len(missing)} column(s) the model needs: {', '.join(missing)}")


def digest(frame: pd.DataFrame) -> str:
    """A content hash of a frame (values and column order, not the index)."""
    return str(pd.util.hash_pandas_object(frame, index=False).sum())


def splits_digest(train_digest: str, test_digest: str) -> str:
    """The prepared data's identity (tag pipeline.data_digest, part of tune's study name): which rows went to which
    split, not only which rows there are (the engines split the same table differently)."""
    import hashlib

    return hashlib.sha256(f"train:{train_digest};test:{test_digest}".encode()).hexdigest()[:20]


def tracked_dataset(frame: pd.DataFrame, *, source, targets: str, name: str):
    """`mlflow.data.from_pandas`, with the schema MLflow records inferred from the first rows only: MLflow infers it
    from every row, which took 85 s of a 103 s preprocess on 1,000,000 rows x 30 features (benchmarks/scale.py).
    The digest is this module's content hash (MLflow's own took 4 s per split there). Row count, digest and source
    stay those of the whole frame."""
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.types.utils import _infer_schema

    dataset = from_pandas(frame, source=source, targets=targets, name=name, digest=digest(frame)[-8:])
    if len(frame) > SCHEMA_SAMPLE_ROWS:
        dataset.__dict__["schema"] = _infer_schema(frame.head(SCHEMA_SAMPLE_ROWS))  # fills the cached_property
    return dataset
