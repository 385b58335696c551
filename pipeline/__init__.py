"""An MLflow 3 pipeline for tabular models: preprocess -> tune -> train -> evaluate.

Python API (imports are lazy, so `import pipeline` stays cheap and has no side effects):
    from pipeline import load_config, run_chain
    result = run_chain(load_config("configs/pipeline.yaml"))
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_config", "run_chain"]


def __getattr__(name: str) -> Any:
    if name == "load_config":
        from pipeline.config import load_config

        return load_config
    if name == "run_chain":
        from pipeline.steps.chain import run_chain

        return run_chain
    raise AttributeError(name)
