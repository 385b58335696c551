"""monitor on engine dask: the input (a Parquet dataset, or CSV files) scored partition by partition on the cluster
with the registered model's own code, each partition counted into the model's profile bins on its worker, the
counts merged here; nothing is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.engines.dask import tables
from pipeline.engines.dask.cluster import cluster_facts, cluster_faults, dask_client
from pipeline.engines.dask.predict import partition_tallies, scored_rows
from pipeline.errors import DataError
from pipeline.modeling.profile import Tally
from pipeline.tracking.runs import log_params


def check_input(source: str) -> None:
    """A local input must exist (a folder, a glob or an s3:// URI is read on the cluster)."""
    if "://" not in source and "*" not in source and not Path(source).exists():
        raise DataError(f"monitor: input {source} not found")


def count(config: PipelineConfig, served: Any, model_uri: str, source: str, chunk_rows: int, tally: Tally) -> int:
    """Count the input into `tally` on the cluster; the number of rows. `chunk_rows` does not apply."""
    with dask_client(config.dask) as client, cluster_faults("monitor", client):
        log_params(cluster_facts(client, config.dask))
        with scored_rows(served, model_uri, source, not config.dask.scheduler, "monitor") as scored:
            counted = tables.compute_together(*partition_tallies(scored, tally, served.schema))
    for part in counted:
        tally.merge(part)
    if not tally.rows:
        raise DataError(f"monitor input {source} holds no rows")
    return tally.rows
