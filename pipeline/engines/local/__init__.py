"""engine: local: each step's data and XGBoost work in the step's own process, on pandas DataFrames."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any


def session(config: Any) -> AbstractContextManager[None]:
    """Nothing to hold open across the chain's steps."""
    return nullcontext()
