"""The champion/challenger decision: gates from config checked by `mlflow.validate_evaluation_results`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models import MetricThreshold
from mlflow.models.evaluation.validation import ModelValidationFailedException

from pipeline.config import EvaluateConfig, lower_is_better

PROMOTED = "promoted"
REJECTED = "rejected"


class HasMetrics(Protocol):
    metrics: dict[str, float]


@dataclass(frozen=True)
class Verdict:
    decision: str
    reason: str

    @property
    def promoted(self) -> bool:
        return self.decision == PROMOTED


def build_thresholds(config: EvaluateConfig, task: str, with_baseline: bool) -> dict[str, MetricThreshold]:
    """The task's absolute gates, plus 'must not be beaten' on its compare_metric vs a baseline."""
    task_gates = config.gates(task)
    gates = {
        name: {"threshold": gate.threshold, "greater_is_better": gate.higher_is_better(name)}
        for name, gate in task_gates.thresholds.items()
    }
    if with_baseline:
        metric = task_gates.compare_metric
        compare = gates.setdefault(metric, {"greater_is_better": not lower_is_better(metric)})
        compare["min_relative_change"] = float(config.min_relative_improvement)
    return {name: MetricThreshold(**kwargs) for name, kwargs in gates.items()}


def decide(
    config: EvaluateConfig, task: str, candidate: HasMetrics, baseline: HasMetrics | None, note: str = ""
) -> Verdict:
    """Promote when every gate of the task passes; the reason names what failed or what was checked (`note`
    overrides the default remark on the champion, e.g. when the candidate already is the champion)."""
    thresholds = build_thresholds(config, task, with_baseline=baseline is not None)
    try:
        # It reads only `.metrics` of the results: any HasMetrics will do.
        mlflow.validate_evaluation_results(thresholds, candidate, baseline)  # type: ignore[arg-type]
    except ModelValidationFailedException as exc:
        return Verdict(REJECTED, " ".join(str(exc.message).split()))
    except MlflowException as exc:  # e.g. a gate on a metric the evaluation does not produce
        return Verdict(REJECTED, f"gate could not be checked: {exc.message}")
    checked = ", ".join(sorted(thresholds)) or "no gates configured"
    against = note or (" and the champion" if baseline is not None else " (no champion yet)")
    return Verdict(PROMOTED, f"passed {checked}{against}")


def gate_lines(config: EvaluateConfig, task: str, metrics: dict[str, float]) -> list[str]:
    """One Markdown line per absolute gate of the task: the metric, its bound, the value evaluated and the outcome
    (for the model card)."""
    lines = []
    for name, gate in sorted(config.gates(task).thresholds.items()):
        higher = gate.higher_is_better(name)
        value = metrics.get(name)
        if value is None:
            outcome = "not computed"
        else:
            passed = value >= gate.threshold if higher else value <= gate.threshold
            outcome = f"{value:.4f}, {'passed' if passed else 'failed'}"
        lines.append(f"- Gate `{name}` {'>=' if higher else '<='} {gate.threshold:g}: {outcome}.")
    return lines
