"""Tabular data I/O: the configured source loaded and its columns checked (each kind of source, sklearn, CSV or
Parquet by path or URL, s3://, a SQL database, is a class of pipeline.data.source_kinds), what of it may be logged,
digests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.config import DataConfig
from pipeline.data.digests import digest
from pipeline.data.source_kinds import source_for, table_at
from pipeline.errors import DataError

# Rows from which a logged dataset's schema is inferred (see tracked_dataset).
SCHEMA_SAMPLE_ROWS = 10_000


def read_table(source: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, by local path, http(s):// URL (pandas reads it) or s3:// URI (boto3 fetches
    it); errors name the source and what is wrong with it."""
    return table_at(str(source)).load()


def _delimiter_hint(frame: pd.DataFrame) -> str:
    if len(frame.columns) == 1:
        for delimiter in (";", "\t", "|"):
            if delimiter in str(frame.columns[0]):
                return f"; the file seems to use {delimiter!r} between columns, but CSV input must use ','"
    return ""


def load_source(data: DataConfig, keep_ids: bool = False) -> pd.DataFrame:
    """Load the configured dataset as one frame holding the feature columns and the target column: id columns
    dropped (unless `keep_ids`), and only `data.features` kept when that list is given."""
    return checked_columns(source_for(data).load(), data, keep_ids)


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
    return source_for(data).describe()


def dataset_name(data: DataConfig) -> str:
    """The name of the logged datasets (`<name>-train`, `<name>-test`): a scikit-learn dataset's name, a file's
    stem, a database table's name, or `sql-query` for a query."""
    return source_for(data).dataset_name()


def _preview(columns: pd.Index, limit: int = 8) -> str:
    names = [str(c) for c in columns[:limit]]
    return ", ".join(names) + (", ..." if len(columns) > limit else "")


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
