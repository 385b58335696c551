"""The Dask cluster a step works on: the configured scheduler, or a LocalCluster started and stopped by the step.

What can go wrong here is said in one line: the dask extra not installed (ConfigError, exit 2), a scheduler that
does not answer within `dask.timeout_s` (ClusterError, exit 4, the address masked)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from loguru import logger

from pipeline.config import DaskConfig
from pipeline.errors import ClusterError, ConfigError, first_line
from pipeline.masking import mask_source

EXTRA_HINT = "pip install -e '.[dask]' (dask, distributed)"


def require_dask() -> None:
    """A ConfigError naming the package to install when the dask extra is missing."""
    for module in ("dask.dataframe", "distributed", "xgboost.dask"):
        try:
            __import__(module)
        except ImportError as exc:
            raise ConfigError(
                f"engine: dask needs the dask extra ({first_line(exc)}): {EXTRA_HINT}, or set engine: local"
            ) from exc


def describe_scheduler(dask: DaskConfig) -> str:
    """The scheduler as runs may record it: credentials masked; a LocalCluster as such."""
    if not dask.scheduler:
        return f"LocalCluster({dask.n_workers} workers x {dask.threads_per_worker} threads, {dask.memory_limit})"
    return mask_source(dask.scheduler)


# Clients open in this process by config, and the sessions (`shared_clusters`) that keep them open.
_OPEN: dict[DaskConfig, Any] = {}
_SESSIONS: list[ExitStack] = []


@contextmanager
def shared_clusters() -> Iterator[None]:
    """Clusters opened inside stay open until the end: `main`'s steps share one cluster, started by the first
    step that needs it (none when every step is reused)."""
    with ExitStack() as stack:
        _SESSIONS.append(stack)
        try:
            yield
        finally:
            _SESSIONS.pop()


@contextmanager
def dask_client(dask: DaskConfig) -> Iterator[Any]:
    """A distributed Client on the configured cluster, closed (and a LocalCluster stopped) on the way out; the
    client already open in this process for the same config, when there is one."""
    if dask in _OPEN:
        yield _OPEN[dask]
        return
    if _SESSIONS:
        _OPEN[dask] = _SESSIONS[-1].enter_context(_connect(dask))
        _SESSIONS[-1].callback(_OPEN.pop, dask, None)
        yield _OPEN[dask]
        return
    with _connect(dask) as client:
        _OPEN[dask] = client
        try:
            yield client
        finally:
            del _OPEN[dask]


@contextmanager
def _connect(dask: DaskConfig) -> Iterator[Any]:
    require_dask()
    from distributed import Client, LocalCluster

    shown = describe_scheduler(dask)
    if dask.scheduler:
        try:
            client = Client(dask.scheduler, timeout=dask.timeout_s)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler {shown} within {dask.timeout_s:g} s ({first_line(exc)}): "
                "check dask.scheduler, or set it to null for a local cluster"
            ) from exc
        with client:
            logger.info("dask: {} workers on {}", len(client.scheduler_info()["workers"]), shown)
            yield client
        return
    import dask as dask_library

    # No spilling to disk: XGBoost's task pins every partition it trains on, so writing them out frees nothing while
    # it runs (measured: the same peak), and each later trial read them all back. The limit still holds: Dask pauses
    # a worker at 80 % of it and restarts one at 95 %.
    with dask_library.config.set({"distributed.worker.memory.target": False, "distributed.worker.memory.spill": False}):
        cluster = LocalCluster(
            n_workers=dask.n_workers,
            threads_per_worker=dask.threads_per_worker,
            memory_limit=dask.memory_limit,
            dashboard_address=None,
            silence_logs=40,  # workers' INFO lines (start-up) stay out of the step's log
        )
    with cluster, Client(cluster) as client:
        logger.info("dask: {}", shown)
        yield client


def cluster_facts(client: Any, dask: DaskConfig) -> dict[str, Any]:
    """What a run records about the cluster it ran on."""
    return {"engine": "dask", "dask.scheduler": describe_scheduler(dask), "dask.n_workers": n_workers(client)}


def n_workers(client: Any) -> int:
    return len(client.scheduler_info()["workers"])


# How long a failed step waits for a nanny's report that it restarted its worker for memory (the nanny sends it as it
# stops the worker; XGBoost's peers may fail first).
MEMORY_REPORT_WAIT_S = 2.0


def _memory_restarts(client: Any, since: float) -> list[dict]:
    """The nannies' reports of workers they restarted for going over the memory limit since `since`."""
    if client is None:
        return []
    deadline = time.monotonic() + MEMORY_REPORT_WAIT_S
    while True:
        try:
            events = client.get_events("worker-restart-memory")
        except Exception:  # noqa: BLE001 - the scheduler itself gone: no report to read
            return []
        found = [event for stamp, event in events if stamp >= since]
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.25)


def _over_memory(what: str, restarts: list[dict]) -> ClusterError:
    seen = f" (a worker reached {max(event['rss'] for event in restarts) / 2**20:,.0f} MiB)" if restarts else ""
    return ClusterError(
        f"{what} failed on the Dask cluster: a worker went over dask.memory_limit and was restarted{seen}. "
        "XGBoost holds each worker's share of the split in memory: raise dask.memory_limit, add workers, or train "
        "tune's trials on a sample (tune.sample_rows)"
    )


@contextmanager
def cluster_faults(what: str, client: Any = None) -> Iterator[None]:
    """XGBoost's and Dask's errors during `what` as one line (ClusterError, exit 4): a worker killed or cut off
    breaks XGBoost's collective (its peers fail within `dask.timeout_s`), Dask reports a worker lost. With the
    `client`, a worker its nanny restarted for memory is named as such, whichever error its peers saw."""
    from distributed.client import FutureCancelledError
    from distributed.comm import CommClosedError
    from distributed.scheduler import KilledWorker
    from xgboost.core import XGBoostError

    since = time.time()
    try:
        yield
    except (XGBoostError, KilledWorker, CommClosedError, FutureCancelledError, ValueError) as exc:
        replaced = type(exc) is ValueError  # XGBoostError is a ValueError too: only Dask's plain one counts here
        if replaced and "Invalid worker address" not in str(exc):
            raise  # not a cluster fault
        restarts = _memory_restarts(client, since)
        if restarts or replaced or isinstance(exc, KilledWorker):
            # Dask restarts a worker that goes over its memory limit and gives up on a task after a few restarts;
            # xgboost.dask, which pins its tasks to workers, fails at once when one of them was replaced.
            raise _over_memory(what, restarts) from exc
        reasons = [line.strip("- ") for line in str(exc).splitlines() if line.startswith("- [")]
        reason = reasons[0].split("]: ", 1)[-1] if reasons else first_line(exc)
        raise ClusterError(
            f"{what} failed on the Dask cluster ({type(exc).__name__}: {reason}): a worker was lost or failed; "
            "see the workers' logs, then rerun"
        ) from exc
