"""What a step hands back to its caller (CLI, chain, orchestrator): a small JSON-friendly record."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StepResult:
    step: str
    run_id: str
    experiment_id: str
    status: str = "FINISHED"
    upstream: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    model_name: str | None = None
    model_version: str | None = None
    verdict: str | None = None
    verdict_reason: str | None = None
    duration_s: float = 0.0
    reused: bool = False  # an earlier run with the same fingerprint, not computed again
    model_aliases: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_result(result: dict[str, Any], path: str | Path) -> None:
    """Write a result atomically so an orchestrator never reads half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    partial.replace(path)
