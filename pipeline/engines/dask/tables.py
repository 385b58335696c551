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
from pipeline.data import feature_hook, transform
from pipeline.data.schema import Schema, conform
from pipeline.data.source_kinds import source_for
from pipeline.data.sources import checked_columns
from pipeline.errors import UpstreamError, first_line
from pipeline.tracking.lookup import download_artifact
from pipeline.tracking.splits import recorded_location, split_name

# Rows of the first partition used to learn what the hook and the schema make of a partition (Dask's meta).
META_ROWS = 200


def read_source(data: DataConfig):
    """The configured source as a lazy Dask DataFrame: a Parquet dataset (a folder, a file or a glob; local or
    s3://) or a CSV file or glob read on the cluster; a scikit-learn dataset or a database read here and split into
    partitions (pipeline.data.source_kinds, `Source.read_dask`). Columns are checked as for the local engine
    (target, id columns, features)."""
    return checked_columns(source_for(data).read_dask(), data, keep_ids=True)


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


def read_split_on_cluster(run, artifact: str, schema: Schema, **options: Any):
    """A split a preprocess run wrote, as a lazy Dask DataFrame typed by the schema (by default the target as class
    indexes, what XGBoost learns; `options` as for `pipeline.data.schema.conform`): from the location the run
    recorded (`data.output_uri`), else from its artifacts, read in place when they are local folders, else
    downloaded first."""
    import dask.dataframe as dd

    location = recorded_location(run, artifact) or _artifact_folder(run, artifact)
    what = split_name(run, artifact)
    try:
        frame = dd.read_parquet(location)
    except (OSError, ValueError) as exc:
        raise UpstreamError(f"{what} cannot be read from {location}: {first_line(exc)}") from exc
    return conform_partitions(frame, schema, what, **({"with_target": True, "encoded": True} | options))


def _artifact_folder(run, artifact: str) -> str:
    folder = local_path(f"{run.info.artifact_uri.rstrip('/')}/{artifact}")
    if folder is not None and folder.exists():
        return str(folder)
    download = Path(tempfile.mkdtemp(prefix="dask-split-"))
    atexit.register(shutil.rmtree, download, ignore_errors=True)  # the Dask graph reads it lazily
    return str(download_artifact(run, artifact, download))


def _sampled_part(part: pd.DataFrame, rows: int, seed: int, partition_info: dict | None = None) -> pd.DataFrame:
    """At most `rows` rows of one partition, drawn from a generator seeded by (seed, partition number); Dask passes
    `partition_info`. The seed sequence differs from the split's (`pipeline.data.splitting`), so the draws do too."""
    if len(part) <= rows:
        return part
    number = partition_info["number"] if partition_info else 0
    return part.iloc[np.sort(np.random.default_rng([seed, number, 2]).choice(len(part), rows, replace=False))]


def sample_and_count(frame, rows: int, seed: int) -> tuple[pd.DataFrame, int]:
    """A seeded sample of at most `rows` rows (computed: up to rows / partitions rows of each partition, drawn at
    random in it) and the frame's row count, in one pass over the data."""
    import dask

    each = -(-rows // frame.npartitions)
    sample, count = dask.compute(frame.map_partitions(_sampled_part, each, seed, meta=frame._meta), frame.shape[0])
    return sample, int(count)


def _hashed_part(part: pd.DataFrame, modulus: int) -> pd.Series:
    hashes = pd.util.hash_pandas_object(part, index=False).to_numpy()
    return pd.Series(hashes[hashes % modulus == 0], dtype="uint64")


def _joined_hashes(parts: list[pd.Series]) -> np.ndarray:
    return np.concatenate([part.to_numpy() for part in parts]) if parts else np.zeros(0, dtype=np.uint64)


def hashed_rows(frame, modulus: int = 1):
    """The 64-bit row hashes (`pipeline.data.leakage.row_hashes`) of the rows whose hash is a multiple of `modulus`,
    lazy (a Delayed array, as `digest`: dask.compute returns a DataFrame collection's result out of order among
    Delayed ones): every row with 1, about one in `modulus` otherwise, and identical rows of either split always
    alike (so test rows also in the train split are counted on that share)."""
    import dask

    parts = frame.map_partitions(_hashed_part, modulus, meta=pd.Series(dtype="uint64")).to_delayed()
    return dask.delayed(_joined_hashes)(parts)
