"""rollback: move the champion alias back to the version it replaced, with a record of who, when and why.

Reads:  the registered model's aliases `registry.champion_alias` and `registry.previous_champion_alias`.
Writes: the champion alias on the previous champion; the previous-champion alias on *its* predecessor (tag
        `pipeline.previous_champion` of that version), or removed when none is recorded; tag
        `pipeline.rolled_back` (the reason) on the version rolled back from; tag `pipeline.last_rollback` (JSON:
        from, to, by, at, reason; `at` in UTC to the millisecond) on the registered model; a run tagged
        `pipeline.step` = `rollback`, `pipeline.model.name` and `pipeline.model.version` (the version rolled back
        to) with the same facts as params: one run per rollback, which `history` reads. Nothing changes when there
        is no previous champion.
"""

from __future__ import annotations

import getpass
import json

import mlflow
from loguru import logger
from mlflow.entities import Run

from pipeline.config import PipelineConfig
from pipeline.contract import (
    LAST_ROLLBACK_TAG,
    MODEL_NAME_TAG,
    MODEL_VERSION_TAG,
    PREVIOUS_CHAMPION_TAG,
    ROLLED_BACK_TAG,
)
from pipeline.errors import UpstreamError
from pipeline.results import StepResult
from pipeline.tracking.registry import alias_version, move_alias, utc_timestamp
from pipeline.tracking.runs import RunContext, step_run


def run(config: PipelineConfig, *, reason: str = "", context: RunContext = RunContext()) -> StepResult:
    registry = config.registry
    name = registry.model_name
    with step_run("rollback", config, context) as active:
        client = active.client
        current = alias_version(client, name, registry.champion_alias)
        previous = alias_version(client, name, registry.previous_champion_alias)
        if not current or not previous:
            raise UpstreamError(
                f"rollback: model '{name}' has no @{registry.previous_champion_alias} version to "
                f"go back to (champion: {current or 'none'})"
            )
        record = {
            "from": current,
            "to": previous,
            "by": getpass.getuser(),
            "at": utc_timestamp(),
            "reason": reason or "not given",
        }
        mlflow.set_tags({MODEL_NAME_TAG: name, MODEL_VERSION_TAG: previous})
        mlflow.log_params({f"rollback.{key}": value for key, value in record.items()})
        earlier = client.get_model_version(name, previous).tags.get(PREVIOUS_CHAMPION_TAG)
        move_alias(active, name, registry.champion_alias, previous)
        if earlier:
            move_alias(active, name, registry.previous_champion_alias, earlier)
        else:
            client.delete_registered_model_alias(name, registry.previous_champion_alias)
            active.on_failure(
                lambda: client.set_registered_model_alias(name, registry.previous_champion_alias, previous)
            )
        client.set_model_version_tag(name, current, ROLLED_BACK_TAG, record["reason"])
        client.set_registered_model_tag(name, LAST_ROLLBACK_TAG, json.dumps(record))
        logger.info(
            "rolled {} @{} back from version {} to {} ({})",
            name,
            registry.champion_alias,
            current,
            previous,
            record["reason"],
        )
    return active.result(model_name=name, model_version=previous)


def note(run: Run) -> list[str]:
    """The run's Description: which version the champion alias left and went back to, by whom and why."""
    params = run.data.params
    return [
        f"Rolled `{run.data.tags.get(MODEL_NAME_TAG, '?')}` back from version {params.get('rollback.from', '?')} to "
        f"{params.get('rollback.to', '?')} ({params.get('rollback.by', '?')}): {params.get('rollback.reason', '')}."
    ]
