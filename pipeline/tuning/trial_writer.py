"""Nested trial runs written by a forked process, so the search does not wait for the tracking store.

A trial's run costs ~14 ms of CPU-bound SQLAlchemy work (measured, SQLite). Written in the tuning process it
stretches every trial, and a thread does not help (it needs the GIL that XGBoost's callbacks need). A forked
writer already has MLflow imported (a spawned one spends seconds importing it) and uses a core that small XGBoost
fits leave idle. After the fork it drops the database connections and HTTP sessions it inherited, as SQLAlchemy
and requests require. `close()` waits for every trial run, so the tune run ends FINISHED only after its children.
Only on Linux (fork is unsafe with macOS system libraries); elsewhere the runs are written inline. The writer ignores
SIGTERM/SIGINT sent to the process group: it ends when the tuning process says stop or is gone, so a trial run is
never cut in half. If it dies, the next trial fails the step at once instead of queueing into a dead pipe.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys

import optuna
from loguru import logger

from pipeline.errors import TrackingError
from pipeline.tuning.trial_runs import TrialRunLogger

_STOP = "stop"


def _forget_inherited_connections() -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.utils import request_utils

    for engine in list(SqlAlchemyStore._engine_map.values()):
        engine.dispose(close=False)
    request_utils._cached_get_request_session.cache_clear()


def _write_trial_runs(
    writer: TrialRunLogger, trials: multiprocessing.Queue, errors: multiprocessing.Queue, parent_pid: int
) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    code = 0
    try:
        _forget_inherited_connections()
        _drain(writer, trials, parent_pid)
    except Exception as exc:  # noqa: BLE001 - reported to the tuning process, which fails the run
        errors.put(f"{type(exc).__name__}: {exc}".splitlines()[0])
        code = 1
    finally:
        errors.close()
        errors.join_thread()  # the error message is in the pipe before this process ends
        # Skip the interpreter's shutdown: atexit hooks and thread state inherited through fork from other
        # libraries in the tuning process (a Prefect task runner, seen here) made a clean writer exit with 1.
        os._exit(code)


def _drain(writer: TrialRunLogger, trials: multiprocessing.Queue, parent_pid: int) -> None:
    while True:
        try:
            item = trials.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent_pid:  # the tuning process died (SIGKILL): nothing more will come
                return
            continue
        if item == _STOP:
            return
        writer.write(*item)


class TrialRunWriter:
    """Optuna callback handing each finished trial to a writer process; use it as a context manager."""

    def __init__(self, writer: TrialRunLogger) -> None:
        self.logged = 0
        self._inline = writer if not sys.platform.startswith("linux") else None
        if self._inline:
            return
        context = multiprocessing.get_context("fork")
        self._trials, self._errors = context.Queue(), context.Queue()
        self._process = context.Process(
            target=_write_trial_runs,
            name="trial-run-writer",
            daemon=True,
            args=(writer, self._trials, self._errors, os.getpid()),
        )
        self._process.start()

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self._inline:
            self._inline(study, trial)
        elif not self._process.is_alive():
            self._abandon()
            raise TrackingError(f"writing the nested trial runs failed: {self._failure()}")
        else:
            self._trials.put((study.study_name, trial))
        self.logged += 1

    def __enter__(self) -> TrialRunWriter:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, traceback: object) -> None:
        if exc is None:
            self.close()
        elif not self._inline:  # failing anyway: write what is queued if quick, never hide the step's error
            self._stop(timeout_s=10)

    def close(self, timeout_s: float = 300.0) -> None:
        """Wait until every queued trial run is written; a failed write fails the step."""
        if self._inline:
            return
        if not self._stop(timeout_s):
            raise TrackingError(f"trial runs still not written after {timeout_s:.0f} s: is the tracking store slow?")
        failure = self._failure()
        if failure:
            raise TrackingError(f"writing the nested trial runs failed: {failure}")
        logger.debug("{} trial runs written", self.logged)

    def _stop(self, timeout_s: float) -> bool:
        """Ask the writer to finish and wait; True when it ended by itself."""
        if self._process.is_alive():
            self._trials.put(_STOP)
            self._process.join(timeout=timeout_s)
        ended = not self._process.is_alive()
        if not ended:
            self._process.terminate()
            self._process.join(timeout=5)
        if not ended or self._process.exitcode or not self._errors.empty():
            self._abandon()
        return ended

    def _failure(self) -> str:
        try:
            return self._errors.get_nowait()
        except queue.Empty:
            return f"writer exited with code {self._process.exitcode}" if self._process.exitcode else ""

    def _abandon(self) -> None:
        """Drop trials still queued for a writer that is gone, so this process can exit (no join on a full pipe)."""
        self._trials.cancel_join_thread()
