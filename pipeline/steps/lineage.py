"""lineage: print the chain behind a run or a registered model version (read-only; opens no run).

Reads:  the run (`run_id`) or the version (`version`, or the version holding `alias`, default the champion) and,
        through `pipeline.upstream.<step>` / `pipeline.<step>_run` tags, every run behind it.
Writes: nothing; prints the chain (see pipeline/tracking/lineage_view.py) and returns it as a result.
"""

from __future__ import annotations

from typing import Any

from mlflow.tracking import MlflowClient

from pipeline.config import PipelineConfig
from pipeline.errors import UpstreamError
from pipeline.tracking.lineage_view import describe
from pipeline.tracking.registry import alias_version


def run(
    config: PipelineConfig, *, run_id: str | None = None, alias: str | None = None, version: str | None = None
) -> dict[str, Any]:
    client, name = MlflowClient(), config.registry.model_name
    if not run_id and not version:
        alias = alias or config.registry.champion_alias
        if not (version := alias_version(client, name, alias)):
            raise UpstreamError(
                f"lineage: model '{name}' has no version with alias @{alias} (pass --run-id or --version)"
            )
    view = describe(client, run_id, name, version)
    print(view.pop("text"), flush=True)
    view.pop("markdown")
    return {"step": "lineage", "status": "FINISHED", **view}
