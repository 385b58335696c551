"""The champion/challenger decision, with metric dicts standing in for evaluation results."""

from dataclasses import dataclass

from pipeline.config import EvaluateConfig, MetricGate, TaskGates, load_config
from pipeline.modeling.promotion import PROMOTED, REJECTED, build_thresholds, gate_lines
from pipeline.modeling.promotion import decide as decide_for_task
from tests.helpers import TEST_CONFIG


def gates(**sections) -> EvaluateConfig:
    """The tests' evaluate config with some sections replaced."""
    return load_config(TEST_CONFIG).evaluate.model_copy(update=sections)


@dataclass
class Metrics:
    metrics: dict


GATES = gates(
    binary=TaskGates(
        thresholds={"roc_auc": MetricGate(threshold=0.9), "log_loss": MetricGate(threshold=0.5)},
        compare_metric="roc_auc",
    )
)


def decide(config, candidate, baseline):
    """The binary task's decision (what most tests here check)."""
    return decide_for_task(config, "binary", candidate, baseline)


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
    assert (
        decide(
            config, Metrics({"roc_auc": 0.96, "log_loss": 0.2}), Metrics({"roc_auc": 0.95, "log_loss": 0.2})
        ).decision
        == REJECTED
    )
    assert (
        decide(config, Metrics({"roc_auc": 0.9, "log_loss": 0.2}), Metrics({"roc_auc": 0.8, "log_loss": 0.2})).decision
        == PROMOTED
    )


def test_a_gate_on_a_metric_the_evaluation_lacks_rejects():
    config = gates(binary=TaskGates(thresholds={"made_up_metric": MetricGate(threshold=0.5)}, compare_metric="roc_auc"))
    verdict = decide(config, Metrics({"roc_auc": 0.99}), None)
    assert verdict.decision == REJECTED
    assert "made_up_metric" in verdict.reason


def test_compare_metric_without_absolute_gate_still_compares():
    config = gates(binary=TaskGates(thresholds={}, compare_metric="f1_score"))
    thresholds = build_thresholds(config, "binary", with_baseline=True)
    assert thresholds["f1_score"].min_relative_change == 0.0
    assert thresholds["f1_score"].threshold is None
    assert build_thresholds(config, "binary", with_baseline=False) == {}


def test_regression_gates_know_that_errors_go_down():
    config = gates(
        regression=TaskGates(
            thresholds={"r2_score": MetricGate(threshold=0.3), "mean_absolute_error": MetricGate(threshold=50.0)},
            compare_metric="root_mean_squared_error",
        )
    )
    thresholds = build_thresholds(config, "regression", with_baseline=True)
    assert thresholds["r2_score"].greater_is_better and not thresholds["mean_absolute_error"].greater_is_better
    assert not thresholds["root_mean_squared_error"].greater_is_better
    good = Metrics({"r2_score": 0.5, "mean_absolute_error": 40.0, "root_mean_squared_error": 50.0})
    champion = Metrics({"r2_score": 0.6, "mean_absolute_error": 35.0, "root_mean_squared_error": 45.0})
    assert decide_for_task(config, "regression", good, None).decision == PROMOTED
    assert decide_for_task(config, "regression", good, champion).decision == REJECTED
    assert decide_for_task(config, "regression", champion, good).decision == PROMOTED
    too_wrong = Metrics({"r2_score": 0.5, "mean_absolute_error": 60.0, "root_mean_squared_error": 50.0})
    assert "mean_absolute_error" in decide_for_task(config, "regression", too_wrong, None).reason


def test_the_brier_score_can_be_a_gate_and_lower_is_better():
    config = gates(binary=TaskGates(thresholds={"brier_score": MetricGate(threshold=0.1)}, compare_metric="roc_auc"))
    assert not build_thresholds(config, "binary", with_baseline=False)["brier_score"].greater_is_better
    assert decide(config, Metrics({"brier_score": 0.05, "roc_auc": 0.9}), None).decision == PROMOTED
    rejected = decide(config, Metrics({"brier_score": 0.2, "roc_auc": 0.9}), None)
    assert rejected.decision == REJECTED and "brier_score" in rejected.reason


def test_the_cards_gate_lines_give_bound_value_and_outcome():
    lines = gate_lines(GATES, "binary", {"roc_auc": 0.95, "log_loss": 0.7})
    assert lines == ["- Gate `log_loss` <= 0.5: 0.7000, failed.", "- Gate `roc_auc` >= 0.9: 0.9500, passed."]
    assert gate_lines(GATES, "binary", {})[0] == "- Gate `log_loss` <= 0.5: not computed."
