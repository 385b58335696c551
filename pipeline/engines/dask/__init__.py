"""engine: dask: each step's data and XGBoost work on a Dask cluster (the configured `dask.scheduler`, or a
LocalCluster the step starts and stops), one module per step named after it, as pipeline/engines/__init__.py says.
Needs the `dask` extra."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any


def session(config: Any) -> AbstractContextManager[None]:
    """`main`'s steps share one cluster, started by the first step that needs it (none when all are reused)."""
    from pipeline.engines.dask.cluster import shared_clusters

    return shared_clusters()
