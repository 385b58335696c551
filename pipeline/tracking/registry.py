"""Registry changes that a failed step takes back: new versions and moved aliases."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime

from loguru import logger
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline.config import RegistryConfig
from pipeline.contract import PREVIOUS_CHAMPION_TAG, PROMOTION_TAG
from pipeline.tracking.runs import StepRun


def utc_timestamp() -> str:
    """Now, as ISO 8601 in UTC to the millisecond (`2026-11-20T12:00:00.123Z`): when a promotion or rollback was."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version an alias points at, or None when the model or the alias does not exist."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def fill_model_aliases(client: MlflowClient, results) -> None:
    """Set each result's `model_aliases`: the aliases its model version holds now (for result files)."""
    for result in results:
        if result.model_name and result.model_version:
            try:
                result.model_aliases = sorted(client.get_model_version(result.model_name, result.model_version).aliases)
            except MlflowException:
                result.model_aliases = []


def move_alias(active: StepRun, name: str, alias: str, version: str) -> None:
    """Point `alias` at `version`; if the step fails afterwards the alias goes back where it was."""
    client = active.client
    previous = alias_version(client, name, alias)
    client.set_registered_model_alias(name, alias, version)
    active.on_failure(lambda: _restore_alias(client, name, alias, previous))


def _restore_alias(client: MlflowClient, name: str, alias: str, previous: str | None) -> None:
    if previous is None:
        client.delete_registered_model_alias(name, alias)
    else:
        client.set_registered_model_alias(name, alias, previous)


def register(active: StepRun, model_uri: str, name: str, tags: dict[str, str], headline: str = "") -> str:
    """Register a new version, described by `headline` and the runs that made it; deleted again if the step fails
    afterwards."""
    import mlflow

    version = str(mlflow.register_model(model_uri, name, tags=tags).version)
    active.on_failure(lambda: active.client.delete_model_version(name, version))
    lineage = ", ".join(
        f"{key.removeprefix('pipeline.').removesuffix('_run')} run {value}" for key, value in tags.items()
    )
    active.client.update_model_version(
        name, version, description=f"{headline} Made by the pipeline: {lineage}.".strip()
    )
    return version


PROMOTION_ATTEMPTS = 3


def promote(active: StepRun, registry: RegistryConfig, version: str) -> None:
    """Make `version` the champion; the champion it replaces keeps the previous-champion alias, and the new
    version records it in a tag, so `rollback` can walk back one promotion at a time. When the champion alias
    really moves, the step's run records the promotion (`pipeline.promotion`: from, to, by, at) for `history`.

    Two chains promoting to one model at the same moment can both create an alias row the store holds once; the
    loser reads the champion again (now the winner's version) and promotes over it, so neither chain fails and the
    winner's version is the previous champion."""
    for attempt in range(1, PROMOTION_ATTEMPTS + 1):
        try:
            _promote_once(active, registry, version)
            return
        except MlflowException as exc:
            if attempt == PROMOTION_ATTEMPTS or not _is_write_conflict(exc):
                raise
            logger.info(
                "another run moved {} aliases at the same time; reading the champion again", registry.model_name
            )


def _is_write_conflict(exc: MlflowException) -> bool:
    """True when the store refused a write because another writer created the same row first (a unique key):
    the SQLAlchemy store's IntegrityError, or its text when it came through a tracking server."""
    from sqlalchemy.exc import IntegrityError

    if isinstance(exc.__cause__, IntegrityError):
        return True
    text = str(exc).lower()
    return "unique constraint" in text or "duplicate key" in text


def _promote_once(active: StepRun, registry: RegistryConfig, version: str) -> None:
    previous = alias_version(active.client, registry.model_name, registry.champion_alias)
    if previous and previous != version:
        active.client.set_model_version_tag(registry.model_name, version, PREVIOUS_CHAMPION_TAG, previous)
        move_alias(active, registry.model_name, registry.previous_champion_alias, previous)
    move_alias(active, registry.model_name, registry.champion_alias, version)
    if previous != version:
        record = {"from": previous, "to": version, "by": getpass.getuser(), "at": utc_timestamp()}
        active.client.set_tag(active.run_id, PROMOTION_TAG, json.dumps(record))
        active.on_failure(lambda: active.client.delete_tag(active.run_id, PROMOTION_TAG))  # the move is undone too
