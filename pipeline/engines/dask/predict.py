"""predict on the dask engine: a Parquet dataset (a folder, file or glob) or CSV files scored partition by
partition on the cluster with the registered model's own code, written as partitioned Parquet. All or nothing: the
parts go to a hidden folder beside the output, renamed to it only when every partition is written.

Each worker loads the model once: from a copy downloaded here on a LocalCluster; on another cluster from the registry,
by its `models:/` URI and this process's tracking URI, so the workers must reach that tracking server (with its
credentials in their environment) and have this project installed. The output path is the workers' too: on a
remote cluster, a folder they all share."""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.config import PipelineConfig
from pipeline.engines.dask import tables
from pipeline.engines.dask.cluster import cluster_facts, cluster_faults, dask_client
from pipeline.errors import DataError, first_line
from pipeline.modeling.profile import Tally
from pipeline.tracking.runs import log_params


@functools.lru_cache(maxsize=4)
def _served(model_uri: str, tracking_uri: str) -> Any:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.pyfunc.load_model(model_uri).unwrap_python_model()


def _score(served: Any, part: pd.DataFrame, what: str) -> pd.DataFrame:
    from pipeline.modeling.scoring import score  # as the local engine scores a chunk, the same on every partition

    return score(served, part, what)


def _score_part(part: pd.DataFrame, model_uri: str, tracking_uri: str, what: str) -> pd.DataFrame:
    return _score(_served(model_uri, tracking_uri), part, what)


def read_rows(source: str):
    """The input rows as a lazy Dask DataFrame: CSV files (a path or glob ending in .csv), else Parquet."""
    import dask.dataframe as dd

    try:
        if source.endswith(".csv"):
            return dd.read_csv(source, blocksize="64MB", assume_missing=True)
        return dd.read_parquet(source)
    except (OSError, ValueError, ImportError) as exc:
        raise DataError(f"predict: input {source} cannot be read: {first_line(exc)}") from exc


def _tally_part(scored: pd.DataFrame, reference: dict, schema: dict) -> Tally:
    return Tally(reference).add(scored, schema)


@contextmanager
def scored_rows(served: Any, model_uri: str, source: str, local_cluster: bool, step: str) -> Iterator[Any]:
    """`source` scored partition by partition on the cluster (lazy), each worker loading the model once."""
    import mlflow

    rows, what = read_rows(source), f"{step} input {source}"
    meta = _score(served, tables.sample_rows(rows, 50), what).iloc[:0]
    with tempfile.TemporaryDirectory(prefix="predict-model-") as model_copy:
        uri = mlflow.artifacts.download_artifacts(model_uri, dst_path=model_copy) if local_cluster else model_uri
        yield rows.map_partitions(_score_part, uri, mlflow.get_tracking_uri(), what, meta=meta)


def partition_tallies(scored: Any, tally: Tally | None, schema: dict) -> list:
    """Each scored partition counted into the profile's bins (delayed, computed with the rest of the pass)."""
    import dask

    if tally is None:
        return []
    return [dask.delayed(_tally_part)(part, tally.reference, schema) for part in scored.to_delayed()]


def score_to_parquet(
    served: Any, model_uri: str, source: str, target: Path, local_cluster: bool, tally: Tally | None = None
) -> int:
    """Score `source` into the Parquet folder `target` (and count it into `tally`); the number of rows scored."""
    with scored_rows(served, model_uri, source, local_cluster, "predict") as scored:
        partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=".predict-"))
        partial.chmod(0o777 & ~_umask())  # mkdtemp's folder is private; the output is not
        try:
            write = scored.to_parquet(str(partial), write_index=False, compute=False)
            _, count, *tallies = tables.compute_together(
                write, scored.shape[0], *partition_tallies(scored, tally, served.schema)
            )
            _replace(partial, target)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    if not count:
        raise DataError(f"predict input {source} holds no rows")
    for counted in tallies:
        assert tally is not None  # tallies are only made with one
        tally.merge(counted)
    return int(count)


def _replace(partial: Path, target: Path) -> None:
    """Put the finished folder in the target's place (an older output is removed only once the new one is whole)."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    partial.rename(target)
    if old.exists():
        shutil.rmtree(old) if old.is_dir() else old.unlink()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def check_paths(source: str, target: Path) -> None:
    """The input may be a folder, a glob or an s3:// URI (read on the cluster); the output is a Parquet folder."""
    if target.suffix.lower() != ".parquet":
        raise DataError(f"predict: engine dask writes a Parquet folder: name the output *.parquet, not {target}")
    if not target.parent.is_dir():
        raise DataError(f"predict: output folder {target.parent} does not exist")


def score(
    config: PipelineConfig,
    served: Any,
    model_uri: str,
    source: str,
    target: Path,
    chunk_rows: int,
    tally: Tally | None = None,
) -> int:
    """Partition by partition on the cluster, into the Parquet folder `target` (not copied to the run's artifacts:
    its location is the param predict.output), each partition counted into `tally` in the same pass. `chunk_rows`
    does not apply: a partition is the unit."""
    with dask_client(config.dask) as client, cluster_faults("predict", client):
        log_params(cluster_facts(client, config.dask))
        try:
            local_cluster = not config.dask.scheduler
            return score_to_parquet(served, model_uri, source, target, local_cluster, tally)
        except OSError as exc:
            raise DataError(f"predict: cannot write {target}: {exc.strerror or first_line(exc)}") from exc
