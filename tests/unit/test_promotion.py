"""The champion/challenger decision, with metric dicts standing in for evaluation results."""

from dataclasses import dataclass

from pipeline.config import EvaluateConfig, MetricGate
from pipeline.promotion import PROMOTED, REJECTED, build_thresholds, decide


@dataclass
class Metrics:
    metrics: dict


GATES = EvaluateConfig(thresholds={"roc_auc": MetricGate(threshold=0.9),
                                   "log_loss": MetricGate(threshold=0.5, greater_is_better=False)})


def test_first_model_passing_the_gates_is_promoted():
    verdict = decide(GATES, Metrics({"roc_auc": 0.95, "log_loss": 0.2}), None)
    assert verdict.decision == PROMOTED
    assert "no champion yet" in verdict.reason


def test_a_failed_gate_rejects_and_names_the_metric():
    verdict = decide(GATES, Metrics({"roc_auc": 0.95, "log_loss": 0.7}), None)
    assert verdict.decision == REJECTED
    assert "log_loss" in verdict.reason and "\n" not in verdict.reason


def test_a_champion_that_beats_the_challenger_keeps_its_place():
    verdict = decide(GATES, Metrics({"roc_auc": 0.95, "log_loss": 0.2}), Metrics({"roc_auc": 0.97, "log_loss": 0.2}))
    assert verdict.decision == REJECTED
    assert "roc_auc" in verdict.reason


def test_a_tie_with_the_champion_is_not_a_defeat():
    verdict = decide(GATES, Metrics({"roc_auc": 0.95, "log_loss": 0.2}), Metrics({"roc_auc": 0.95, "log_loss": 0.1}))
    assert verdict.decision == PROMOTED


def test_required_improvement_over_the_champion():
    config = GATES.model_copy(update={"min_relative_improvement": 0.05})
    assert decide(config, Metrics({"roc_auc": 0.96, "log_loss": 0.2}), Metrics({"roc_auc": 0.95, "log_loss": 0.2})).decision == REJECTED
    assert decide(config, Metrics({"roc_auc": 0.9, "log_loss": 0.2}), Metrics({"roc_auc": 0.8, "log_loss": 0.2})).decision == PROMOTED


def test_a_gate_on_a_metric_the_evaluation_lacks_rejects():
    config = EvaluateConfig(thresholds={"made_up_metric": MetricGate(threshold=0.5)})
    verdict = decide(config, Metrics({"roc_auc": 0.99}), None)
    assert verdict.decision == REJECTED
    assert "made_up_metric" in verdict.reason


def test_compare_metric_without_absolute_gate_still_compares():
    config = EvaluateConfig(thresholds={}, compare_metric="f1_score")
    thresholds = build_thresholds(config, with_baseline=True)
    assert thresholds["f1_score"].min_relative_change == 0.0
    assert thresholds["f1_score"].threshold is None
    assert build_thresholds(config, with_baseline=False) == {}
