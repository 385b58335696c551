"""Who was champion when: every promotion and rollback of one registered model, read back from what evaluate and
rollback recorded (nothing here writes).

Reads:
- promotions: FINISHED evaluate runs of any experiment (deleted runs too: the alias moved all the same) tagged
  `pipeline.verdict` = promoted and `pipeline.model.name` = the model, plus the run that each promoted version names
  in `pipeline.evaluate_run` (older evaluate runs carry no model name). A run's `pipeline.promotion` (JSON from, to,
  by, at; set when it moved the champion alias) is the record. A run without it was made before that tag existed:
  it is dated by its end time (approximate), its user is the run's `mlflow.user`, the champion it replaced is the
  version's `pipeline.previous_champion` when that version's `pipeline.evaluate_run` is this very run (else unknown),
  and it is no event at all when it judged the version that already was the champion. The compare metric is the
  run's `evaluate.<task>.compare_metric` of the given config (`full_test_<metric>` when logged: engine dask), the
  task read from the preprocess run it recorded (`pipeline.task`); `champion_<metric>` is the replaced champion's.
- rollbacks: FINISHED rollback runs tagged `pipeline.model.name` = the model, or with no such tag (made before it
  existed) whose `config/resolved.yaml` names the model; their `rollback.from/to/by/at/reason` params. The model's
  `pipeline.last_rollback` tag stands in for a rollback whose run is gone.
- the model's champion alias now, to say when the recorded history does not end there (an alias moved by hand, or a
  step killed outright after moving it).

Events are ordered by the end of the run that recorded them (steps run one after another, so a run's end orders
its alias move); times are UTC.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from mlflow.entities import Run, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline.config import EvaluateConfig
from pipeline.contract import (
    LAST_ROLLBACK_TAG,
    MODEL_NAME_TAG,
    MODEL_VERSION_TAG,
    PREVIOUS_CHAMPION_TAG,
    PROMOTION_TAG,
    RESOLVED_CONFIG_ARTIFACT,
    STEP_TAG,
    TASK_TAG,
    VERDICT_REASON_TAG,
    VERDICT_TAG,
    upstream_tag,
    version_run_tag,
)
from pipeline.errors import ConfigError, UpstreamError
from pipeline.tracking.lookup import download_artifact, quoted

PROMOTED = "promoted"
ROLLED_BACK = "rolled back"
USER_TAG = "mlflow.user"
_ALREADY_CHAMPION = "already is the champion"  # evaluate's note when it judged the champion itself (no move)


def parse_time(text: str) -> datetime:
    """ISO 8601 (`2026-11-20T12:00`, `2026-11-20`, `...Z`, `...+01:00`) as an aware datetime; no zone = UTC."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ConfigError(f"--at expects an ISO 8601 time such as 2026-11-20T12:00 (UTC), got '{text}'") from exc
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def iso(when: datetime) -> str:
    """UTC, to the millisecond when there is one: `2026-11-20T12:00:00Z`, `2026-11-20T12:00:00.123Z`."""
    when = when.astimezone(UTC)
    spec = "milliseconds" if when.microsecond else "seconds"
    return when.isoformat(timespec=spec).replace("+00:00", "Z")


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass
class Event:
    """A move of the champion alias: `version` became the champion, replacing `from_version`."""

    kind: str  # PROMOTED or ROLLED_BACK
    version: str
    from_version: str | None
    at: datetime
    by: str | None
    run_id: str | None  # the run that recorded it (evaluate or rollback); None: only the model tag is left
    evaluate_run: str | None = None
    metric: str | None = None
    value: float | None = None
    champion_value: float | None = None  # the replaced champion's compare metric, on the same rows
    reason: str | None = None  # rollback: why
    unknown: list[str] = field(default_factory=list)  # fields the records do not hold (None there means unknown)
    approximate: list[str] = field(default_factory=list)  # fields read from a nearby record (the run's end time)
    order: float = 0.0  # sort key: the recording run's end (ms), else `at`
    legacy: bool = False  # a promotion recorded before `pipeline.promotion` existed

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.kind,
            "version": self.version,
            "from_version": self.from_version,
            "at": iso(self.at),
            "by": self.by,
            "run_id": self.run_id,
            "evaluate_run": self.evaluate_run,
            "metric": self.metric,
            "value": self.value,
            "champion_value": self.champion_value,
            "reason": self.reason,
            "unknown": self.unknown,
            "approximate": self.approximate,
        }


@dataclass
class History:
    name: str
    events: list[Event]
    champion: str | None  # where the champion alias points now
    notes: list[str]


def _pages(fetch) -> list[Any]:
    """Every item of a paged MLflow search."""
    items: list[Any] = []
    token = None
    while True:
        page = fetch(token)
        items += list(page)
        token = page.token
        if not token:
            return items


def _search_runs(client: MlflowClient, filter_string: str) -> list[Run]:
    """Runs of every experiment (deleted ones too) matching `filter_string`."""
    experiments = _pages(
        lambda token: client.search_experiments(view_type=ViewType.ALL, max_results=1000, page_token=token)
    )
    ids = [experiment.experiment_id for experiment in experiments]
    runs: list[Run] = []
    for start in range(0, len(ids), 100):
        chunk = ids[start : start + 100]
        runs += _pages(
            lambda token, chunk=chunk: client.search_runs(
                chunk, filter_string, run_view_type=ViewType.ALL, max_results=1000, page_token=token
            )
        )
    return runs


def _finished(step: str, extra: str = "") -> str:
    return f"tags.`{STEP_TAG}` = '{step}' AND attributes.status = 'FINISHED'{extra}"


def _versions(client: MlflowClient, name: str) -> dict[str, dict[str, str]]:
    """Each version of the model: its tags."""
    found = _pages(
        lambda token: client.search_model_versions(f"name = {quoted(name)}", max_results=10000, page_token=token)
    )
    return {str(version.version): dict(version.tags) for version in found}


class _Tasks:
    """The task of an evaluate run, read from the preprocess run it recorded (once per preprocess run)."""

    def __init__(self, client: MlflowClient) -> None:
        self.client = client
        self.seen: dict[str, str | None] = {}

    def of(self, run: Run) -> str | None:
        preprocess = run.data.tags.get(upstream_tag("preprocess"))
        if not preprocess:
            return None
        if preprocess not in self.seen:
            try:
                self.seen[preprocess] = self.client.get_run(preprocess).data.tags.get(TASK_TAG)
            except MlflowException:
                self.seen[preprocess] = None
        return self.seen[preprocess]


def _promotion(
    run: Run, version: str, versions: dict[str, dict[str, str]], gates: EvaluateConfig, tasks: _Tasks
) -> Event | None:
    tags, metrics = run.data.tags, run.data.metrics
    event = Event(PROMOTED, version, None, _from_ms(run.info.end_time), None, run.info.run_id, run.info.run_id)
    event.order = float(run.info.end_time)
    try:
        record = json.loads(tags[PROMOTION_TAG]) if PROMOTION_TAG in tags else None
        at = parse_time(str(record["at"])) if isinstance(record, dict) else None
    except (ValueError, KeyError, ConfigError):  # a record that does not parse: read the run as an older one
        record, at = None, None
    if isinstance(record, dict) and at is not None:
        event.from_version, event.at = record.get("from"), at
        event.by = record.get("by") or tags.get(USER_TAG)
    else:  # recorded before pipeline.promotion existed
        if _ALREADY_CHAMPION in tags.get(VERDICT_REASON_TAG, ""):
            return None
        event.legacy = True
        event.approximate.append("at")
        event.by = tags.get(USER_TAG)
        version_tags = versions.get(version, {})
        if version_tags.get(version_run_tag("evaluate")) == run.info.run_id:
            event.from_version = version_tags.get(PREVIOUS_CHAMPION_TAG)
        else:  # a later evaluate run re-tagged the version: its previous champion may be another promotion's
            event.unknown.append("from_version")
    if not event.by:
        event.unknown.append("by")
    task = tasks.of(run)
    if task in ("binary", "multiclass", "regression"):
        event.metric = gates.gates(task).compare_metric
        event.value = metrics.get(f"full_test_{event.metric}", metrics.get(event.metric))
        event.champion_value = metrics.get(f"champion_{event.metric}")
    if event.value is None:
        event.unknown.append("value")
    return event


def _promotions(
    client: MlflowClient, name: str, versions: dict[str, dict[str, str]], gates: EvaluateConfig, notes: list[str]
) -> list[Event]:
    runs = {
        run.info.run_id: run
        for run in _search_runs(client, _finished("evaluate", f" AND tags.`{VERDICT_TAG}` = '{PROMOTED}'"))
        if run.data.tags.get(MODEL_NAME_TAG) == name
    }
    judged = {run_id: run.data.tags.get(MODEL_VERSION_TAG) for run_id, run in runs.items()}
    for version, tags in versions.items():  # evaluate runs older than their pipeline.model.name tag
        run_id = tags.get(version_run_tag("evaluate"))
        if tags.get(VERDICT_TAG) != PROMOTED or not run_id or run_id in runs:
            continue
        try:
            run = client.get_run(run_id)
        except MlflowException:
            notes.append(f"version {version} is tagged promoted by evaluate run {run_id}, which is gone: not listed")
            continue
        if run.info.status == "FINISHED" and run.data.tags.get(VERDICT_TAG) == PROMOTED:
            runs[run_id], judged[run_id] = run, version
    tasks = _Tasks(client)
    events = [
        _promotion(run, str(judged[run_id]), versions, gates, tasks) for run_id, run in runs.items() if judged[run_id]
    ]
    return [event for event in events if event is not None]


def _config_model_name(run: Run) -> str | None:
    """The registered model named in a run's config/resolved.yaml, or None when it cannot be read."""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            resolved = yaml.safe_load(download_artifact(run, RESOLVED_CONFIG_ARTIFACT, Path(tmp)).read_text())
        return str(resolved["registry"]["model_name"])
    except (UpstreamError, OSError, yaml.YAMLError, KeyError, TypeError):
        return None


def _rollback(run: Run) -> Event | None:
    params, tags = run.data.params, run.data.tags
    to, origin = params.get("rollback.to") or tags.get(MODEL_VERSION_TAG), params.get("rollback.from")
    if not to:
        return None
    event = Event(ROLLED_BACK, to, origin, _from_ms(run.info.end_time), None, run.info.run_id)
    event.order = float(run.info.end_time)
    try:
        event.at = parse_time(params["rollback.at"])
    except (KeyError, ConfigError):
        event.approximate.append("at")
    event.by = params.get("rollback.by") or tags.get(USER_TAG)
    event.reason = params.get("rollback.reason")
    event.unknown += [key for key, value in (("from_version", origin), ("by", event.by)) if not value]
    return event


def _rollbacks(client: MlflowClient, name: str, last_rollback: str | None, notes: list[str]) -> list[Event]:
    events, unattributed = [], 0
    for run in _search_runs(client, _finished("rollback")):
        model = run.data.tags.get(MODEL_NAME_TAG)
        if model is None:  # made before rollback runs named their model
            model = _config_model_name(run)
            unattributed += model is None
        if model == name and (event := _rollback(run)):
            events.append(event)
    if unattributed:
        notes.append(f"{unattributed} rollback run(s) name no model and have no readable config: left out")
    lost = _lost_rollback(last_rollback, events)
    if lost:
        events.append(lost)
        notes.append(
            f"the rollback to version {lost.version} at {iso(lost.at)} is known only from the model's "
            f"{LAST_ROLLBACK_TAG} tag: its run is gone"
        )
    return events


def _lost_rollback(last_rollback: str | None, events: list[Event]) -> Event | None:
    """The model's last-rollback record as an event, when no rollback run matches it (its run was deleted)."""
    try:
        record = json.loads(last_rollback) if last_rollback else None
        at = parse_time(str(record["at"])) if isinstance(record, dict) and record.get("to") else None
    except (ValueError, KeyError, ConfigError):
        return None
    if at is None or not isinstance(record, dict):
        return None
    origin, to = record.get("from"), str(record["to"])
    if any((event.from_version, event.version, event.at) == (origin, to, at) for event in events):
        return None
    event = Event(ROLLED_BACK, to, origin, at, record.get("by"), None, reason=record.get("reason"))
    event.order = at.timestamp() * 1000
    return event


def read_history(client: MlflowClient, name: str, champion_alias: str, gates: EvaluateConfig) -> History:
    """Every promotion and rollback of the registered model `name`, in order; an UpstreamError if there is no such
    model."""
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        raise UpstreamError(f"history: no registered model '{name}' in this tracking store") from exc
    notes: list[str] = []
    versions = _versions(client, name)
    events = _promotions(client, name, versions, gates, notes) + _rollbacks(
        client, name, model.tags.get(LAST_ROLLBACK_TAG), notes
    )
    events.sort(key=lambda event: event.order)
    kept, champion = [], None
    for event in events:
        if event.legacy and event.version == champion:  # re-judged the champion of the moment: nothing moved
            continue
        kept.append(event)
        champion = event.version
    aliases = {alias: str(version) for alias, version in model.aliases.items()}
    now = aliases.get(champion_alias)
    if now != champion:
        points = f"version {now}" if now else "no version"
        ends = f"ends with version {champion}" if champion else "holds no promotion"
        notes.append(
            f"@{champion_alias} points at {points}, but the recorded history {ends}: the alias was moved outside "
            "the pipeline, or a step was killed outright after moving it"
        )
    return History(name, kept, now, notes)


def champion_at(events: Iterable[Event], when: datetime) -> tuple[Event | None, Event | None]:
    """The event that made the champion of `when` (None: there was none yet), and the next one (None: still it)."""
    current: Event | None = None
    for event in events:
        if event.at > when:
            return current, event
        current = event
    return current, None
