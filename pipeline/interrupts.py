"""SIGTERM handling: orchestrators (Airflow, Prefect, CI) stop tasks with it, and the open run must end KILLED.

Outside `deferred()` the handler raises KeyboardInterrupt at once. Inside it (around XGBoost training, whose
native code calls back into Python), raising from the handler can be swallowed by ctypes or crash the process, so
the handler only records the signal: XGBoost's `stop_on_signal()` callback ends training at the next round and
`raise_if_requested()` raises from plain Python right after.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

_received: int | None = None
_deferring = 0


def _interrupt(signum: int, frame: object) -> None:
    global _received
    _received = signum
    if not _deferring:
        raise KeyboardInterrupt(f"stopped by signal {signum}")


def install() -> None:
    signal.signal(signal.SIGTERM, _interrupt)


@contextmanager
def deferred() -> Iterator[None]:
    """Within this block a SIGTERM is recorded, not raised; it is raised when the block ends."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
    raise_if_requested()


def raise_if_requested() -> None:
    if _received is not None:
        raise KeyboardInterrupt(f"stopped by signal {_received}")


def stop_on_signal():
    """An XGBoost callback that ends training at the next round once a SIGTERM was recorded (XGBoost is imported
    here, when a model is fitted, not when a command starts)."""
    from xgboost.callback import TrainingCallback

    class StopOnSignal(TrainingCallback):
        def after_iteration(self, model: object, epoch: int, evals_log: dict) -> bool:
            return _received is not None

    return StopOnSignal()


def was_interrupted(exc: BaseException) -> bool:
    """True when `exc` is, or was caused by, an interruption (Ctrl-C or SIGTERM)."""
    return isinstance(exc, KeyboardInterrupt) or _received is not None


def describe(exc: BaseException) -> str:
    return f"stopped by signal {_received}" if _received is not None else str(exc) or "stopped"
