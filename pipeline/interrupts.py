"""SIGTERM handling: orchestrators (Airflow, Prefect, CI) stop tasks with it, and the open run must end KILLED.

The handler raises KeyboardInterrupt. Raised inside native code (an XGBoost callback) Python may swallow it and
the library fails with its own error instead, so the received signal is also remembered and checked on failure.
"""

from __future__ import annotations

import signal

_received: int | None = None


def _interrupt(signum: int, frame: object) -> None:
    global _received
    _received = signum
    raise KeyboardInterrupt(f"stopped by signal {signum}")


def install() -> None:
    signal.signal(signal.SIGTERM, _interrupt)


def was_interrupted(exc: BaseException) -> bool:
    """True when `exc` is, or was caused by, an interruption (Ctrl-C or SIGTERM)."""
    return isinstance(exc, KeyboardInterrupt) or _received is not None


def describe(exc: BaseException) -> str:
    return f"stopped by signal {_received}" if _received is not None else str(exc) or "stopped"
