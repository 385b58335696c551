"""Tables on the cluster: reading the source as a Dask DataFrame, the feature hook and the schema applied partition
by partition, and the splits (made by `pipeline.data.splitting`) written to and read back from partitioned Parquet.

Nothing here collects a table: each function returns a lazy Dask DataFrame, or computes one small result (a digest,
a sample). Workers import `pipeline.data.transform` (the project installed on them, as on a LocalCluster) and get
the feature hook as its source text."""

from __future__ import annotations

import atexit
import functools
import hashlib
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from pipeline.config import DataConfig
from pipeline.contract import split_uri_tag
from pipeline.data import feature_hook, transform
from pipeline.data.schema import Schema, conform
from pipeline.data.sources import SKLEARN_PREFIX, checked_columns, load_source, loggable_source
from pipeline.errors import DataError, UpstreamError, first_line

# Rows of the first partition used to learn what the hook and the schema make of a partition (Dask's meta).
META_ROWS = 200
# A table read into this process (scikit-learn, SQL) is cut into partitions of at most this many rows (at least two):
# by its size, not the cluster's, so the split does not change with the number of workers.
PARTITION_ROWS = 100_000


def _is_parquet(source: str) -> bool:
    path = source.split("?")[0].rstrip("/")
    return path.endswith(".parquet") or (not _is_remote(source) and Path(path).is_dir())


def _is_remote(source: str) -> bool:
    return "://" in source


def read_source(data: DataConfig):
    """The configured source as a lazy Dask DataFrame: a Parquet dataset (a folder, a file or a glob; local or
    s3://) or a CSV file or glob read on the cluster; a scikit-learn dataset or a database read here and split into
    partitions of PARTITION_ROWS. Columns are checked as for the local engine (target, id columns, features)."""
    import dask.dataframe as dd

    from pipeline.data.sql_source import is_sql_url

    source, shown = data.source, loggable_source(data)
    try:
        if source.startswith(SKLEARN_PREFIX) or is_sql_url(source):
            table = load_source(data, keep_ids=True)
            frame = dd.from_pandas(table, npartitions=max(2, -(-len(table) // PARTITION_ROWS)), sort=False)
        elif source.split("?")[0].endswith(".csv") or ("*" in source and ".csv" in source):
            frame = dd.read_csv(source, blocksize="64MB", assume_missing=True)
        elif _is_parquet(source) or "*" in source:
            frame = dd.read_parquet(source)
        elif not _is_remote(source) and not Path(source).exists():
            raise DataError(f"data source {shown} not found")
        else:
            raise DataError(f"data source {shown}: engine dask reads Parquet (a folder, file or glob) or CSV files")
    except ImportError as exc:  # s3:// without s3fs, say
        raise DataError(f"data source {shown}: {first_line(exc)}") from exc
    except (OSError, ValueError) as exc:
        raise DataError(f"data source {shown} cannot be read: {first_line(exc)}") from exc
    return checked_columns(frame, data, keep_ids=True)


@functools.lru_cache(maxsize=8)
def _hook_from_source(text: str) -> transform.Hook:
    folder = Path(tempfile.gettempdir()) / "pipeline-feature-hooks"
    folder.mkdir(exist_ok=True)
    path = folder / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.py"
    if not path.exists():
        path.write_text(text)
    return transform.load_hook(path)


def _hooked_part(part: pd.DataFrame, hook_text: str | None, what: str) -> pd.DataFrame:
    return feature_hook.apply(part, _hook_from_source(hook_text) if hook_text else None, what)


def sample_rows(frame, rows: int = META_ROWS) -> pd.DataFrame:
    """The first rows of the first partition that has any (computed)."""
    heads = frame.map_partitions(pd.DataFrame.head, rows, meta=frame._meta)  # frame.head warns of a short one
    sample = heads.partitions[0].compute()
    return sample if len(sample) else heads.compute().head(rows)


def spread_rows(frame, rows: int, parts: int = 5) -> pd.DataFrame:
    """About `rows` rows (computed): the first rows of up to `parts` partitions spread evenly over the frame, so a
    table ordered by time or by source file is not seen through its first partition only; reads those partitions."""
    count = min(parts, frame.npartitions)
    picks = sorted({int(round(number)) for number in np.linspace(0, frame.npartitions - 1, count)})
    each = -(-rows // len(picks))
    chosen = frame.partitions[picks]
    return chosen.map_partitions(pd.DataFrame.head, each, meta=frame._meta).compute().head(rows)


def apply_hook(frame, hook_file: Path | None, what: str):
    """The feature hook run on every partition (the frame as it is without one)."""
    if hook_file is None:
        return frame
    text = hook_file.read_text()
    meta = _hooked_part(sample_rows(frame), text, what).iloc[:0]
    return frame.map_partitions(_hooked_part, text, what, meta=meta)


def _conformed_part(part: pd.DataFrame, document: dict, what: str, options: dict) -> pd.DataFrame:
    return conform(part, Schema.from_dict(document), what, **options)


def conform_partitions(frame, schema: Schema, what: str, **options: Any):
    """`pipeline.data.schema.conform` on every partition (the same options), with the category sets of training:
    partitions typed alike, which XGBoost's Dask interface needs for categorical columns."""
    document = schema.to_dict()
    meta = _conformed_part(sample_rows(frame), document, what, options).iloc[:0]
    return frame.map_partitions(_conformed_part, document, what, options, meta=meta)


def _part_digest(part: pd.DataFrame) -> pd.Series:
    return pd.Series([int(pd.util.hash_pandas_object(part, index=False).sum())], dtype=object)


def _combined_digest(parts: list[pd.Series]) -> str:
    return str(sum(int(value) for part in parts for value in part) % 2**64)


def digest(frame):
    """A lazy content hash equal to `pipeline.data.sources.digest` of the same rows as one frame (a sum of row
    hashes modulo 2**64, whatever the partitioning)."""
    import dask

    parts = frame.map_partitions(_part_digest, meta=(None, object)).to_delayed()
    return dask.delayed(_combined_digest)(parts)


def compute_together(*wanted: Any) -> tuple:
    """Compute Parquet writes (graphs) with counts or digests of the same data in one pass over it: worth Dask
    materialising the expressions, which it warns of."""
    import dask

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Computing mixed collections")
        return dask.compute(*wanted)


def local_path(uri: str) -> Path | None:
    """The local folder of a file: URI or plain path; None for any other scheme."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return Path(parts.path)
    return Path(uri) if not parts.scheme or len(parts.scheme) == 1 else None  # C:\ on Windows


def read_split(run, artifact: str, schema: Schema, **options: Any):
    """A split a preprocess run wrote, as a lazy Dask DataFrame typed by the schema (by default the target as
    class indexes, what XGBoost learns): from the location the run recorded (`data.output_uri`), else from its
    artifacts, read in place when they are local folders, else downloaded first."""
    import dask.dataframe as dd

    name = Path(artifact).stem
    location = run.data.tags.get(split_uri_tag(name)) or _artifact_location(run, artifact)
    what = f"{artifact} of preprocess run {run.info.run_id}"
    try:
        frame = dd.read_parquet(location)
    except (OSError, ValueError) as exc:
        raise UpstreamError(f"{what} cannot be read from {location}: {first_line(exc)}") from exc
    return conform_partitions(frame, schema, what, **({"with_target": True, "encoded": True} | options))


def _artifact_location(run, artifact: str) -> str:
    from pipeline.tracking.lookup import download_artifact

    folder = local_path(f"{run.info.artifact_uri.rstrip('/')}/{artifact}")
    if folder is not None and folder.exists():
        return str(folder)
    download = Path(tempfile.mkdtemp(prefix="dask-split-"))
    atexit.register(shutil.rmtree, download, ignore_errors=True)  # the Dask graph reads it lazily
    return str(download_artifact(run, artifact, download))
