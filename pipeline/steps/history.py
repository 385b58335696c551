"""history: every promotion and rollback of a registered model in time order, or who was champion at a time
(read-only; opens no run).

Reads:  the registered model (`name`, default `registry.model_name`): its versions' tags, its `pipeline.last_rollback`
        tag and champion alias, and the evaluate and rollback runs that moved the champion alias (see
        pipeline/tracking/promotion_log.py for what each field comes from, and what older records leave unknown).
Writes: nothing; returns the events (or, with `at`, the champion at that time and since when) as a result, which
        `render` turns into a compact table.
"""

from __future__ import annotations

from typing import Any

from mlflow.tracking import MlflowClient

from pipeline.config import PipelineConfig
from pipeline.tracking.promotion_log import ROLLED_BACK, champion_at, iso, parse_time, read_history


def run(config: PipelineConfig, *, name: str | None = None, at: str | None = None) -> dict[str, Any]:
    """The model's history; with `at` (ISO 8601, no zone = UTC) the champion at that time instead."""
    when = parse_time(at) if at else None  # a bad time is a ConfigError before the store is read
    name = name or config.registry.model_name
    history = read_history(MlflowClient(), name, config.registry.champion_alias, config.evaluate)
    result: dict[str, Any] = {"step": "history", "status": "FINISHED", "model_name": name, "notes": history.notes}
    if when is None:
        return {**result, "champion": history.champion, "events": [event.to_dict() for event in history.events]}
    made, next_event = champion_at(history.events, when)
    return {
        **result,
        "at": iso(when),
        "champion": made.version if made else None,
        "since": iso(made.at) if made else None,
        "until": iso(next_event.at) if made and next_event else None,
        "event": made.to_dict() if made else None,
        "first_promotion": history.events[0].to_dict() if history.events else None,
    }


def _cell(event: dict[str, Any], key: str, value: Any) -> str:
    if key in event["unknown"]:
        return "?"
    if value is None or value == "":
        return "—"
    return f"~{value}" if key in event["approximate"] else str(value)


def _score(event: dict[str, Any]) -> str:
    if event["metric"] is None or event["value"] is None:
        return "?" if event["event"] != ROLLED_BACK else "—"
    against = f" (champion {event['champion_value']:.4g})" if event["champion_value"] is not None else ""
    return f"{event['metric']} {event['value']:.4g}{against}"


def _how(event: dict[str, Any]) -> str:
    """How a champion came to be: by which rollback or promotion, replacing which version."""
    by = event["by"] or "?"
    if event["event"] == ROLLED_BACK:
        origin = _cell(event, "from_version", event["from_version"])
        return f"rollback from version {origin} by {by}: {event['reason'] or 'no reason recorded'}"
    replaced = event["from_version"]
    replacing = (
        "replacing an unknown version"
        if "from_version" in event["unknown"]
        else (f"replacing version {replaced}" if replaced else "the first champion")
    )
    return f"promoted by {by} in evaluate run {event['evaluate_run']}, {replacing}"


def _table(result: dict[str, Any]) -> list[str]:
    header = ("at", "event", "version", "from", "by", "evaluate run", "compare metric", "reason")
    rows = [
        (
            _cell(event, "at", event["at"]),
            event["event"],
            event["version"],
            _cell(event, "from_version", event["from_version"]),
            _cell(event, "by", event["by"]),
            _cell(event, "evaluate_run", event["evaluate_run"]),
            _score(event),
            event["reason"] or "",
        )
        for event in result["events"]
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    champion = result["champion"]
    return [
        f"promotions and rollbacks of {result['model_name']} (times in UTC; ~ approximate, ? not recorded):",
        *(
            "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]
        ),
        f"champion now: version {champion}" if champion else "champion now: none",
    ]


def render(result: dict[str, Any]) -> str:
    """The result for people: a table of events, or one line saying who was champion at the time asked."""
    name = result["model_name"]
    if "at" not in result:
        lines = _table(result) if result["events"] else [f"{name} has never been promoted"]
    elif result["first_promotion"] is None:
        lines = [f"{name} has never been promoted"]
    elif result["event"] is None:
        first = result["first_promotion"]["at"]
        lines = [f"{name} at {result['at']} (UTC): no champion yet; the first promotion was at {first}"]
    else:
        event = result["event"]
        since = _cell(event, "at", result["since"])
        until = f"until {result['until']}" if result["until"] else "still the champion"
        lines = [
            f"{name} at {result['at']} (UTC): version {result['champion']}, champion since {since} "
            f"({_how(event)}); {until}"
        ]
    return "\n".join(lines + [f"note: {note}" for note in result["notes"]])
