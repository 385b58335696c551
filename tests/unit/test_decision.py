"""The decision a classifier makes (pipeline/modeling/decision.py, pipeline/data/transform.decide): each threshold
rule against a brute-force scan, the constraints that cannot be met, calibration, class weights, the folds."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score
from sklearn.utils.class_weight import compute_sample_weight
from xgboost import XGBClassifier

from pipeline.config import CostConfig, ThresholdRule
from pipeline.data import transform
from pipeline.errors import ConfigError
from pipeline.modeling import decision
from tests.helpers import multiclass_scores, small_config_with

RULES = [
    ThresholdRule(optimize="f1"),
    ThresholdRule(optimize="balanced_accuracy"),
    ThresholdRule(optimize="youden"),
    ThresholdRule(cost=CostConfig(false_positive=1, false_negative=10)),
    ThresholdRule(cost=CostConfig(false_positive=5, false_negative=1)),
    ThresholdRule(precision_at_least=0.5),
    ThresholdRule(recall_at_least=0.8),
]


def imbalanced_scores(rows: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Positive-class probabilities of a noisy model on a 5%-positive table (with ties, as a tree model gives)."""
    rng = np.random.default_rng(seed)
    truth = rng.random(rows) < 0.05
    scores = np.clip(0.05 + 0.35 * truth + rng.normal(0, 0.15, rows), 0, 1)
    return truth, np.round(scores, 3)


def brute_force(rule: ThresholdRule, truth: np.ndarray, scores: np.ndarray) -> float:
    """The rule's best value over every threshold that changes an answer (each distinct score, and above all)."""
    values = []
    for threshold in [*np.unique(scores), 2.0]:
        answered = scores >= threshold
        tp, fp = int((answered & truth).sum()), int((answered & ~truth).sum())
        fn, tn = int(truth.sum()) - tp, int((~truth).sum()) - fp
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn)
        if rule.optimize == "f1":
            values.append(f1_score(truth, answered, zero_division=0.0))
        elif rule.optimize in ("balanced_accuracy", "youden"):
            youden = recall + tn / (tn + fp) - 1
            values.append(youden if rule.optimize == "youden" else (youden + 1) / 2)
        elif rule.cost is not None:
            values.append(-(fp * rule.cost.false_positive + fn * rule.cost.false_negative) / len(truth))
        elif rule.precision_at_least is not None:
            values.append(recall if tp + fp and precision >= rule.precision_at_least else -np.inf)
        else:
            values.append(precision if tp and recall >= rule.recall_at_least else -np.inf)
    return float(max(values))


@pytest.mark.parametrize("rule", RULES, ids=decision.describe_rule)
@pytest.mark.parametrize("seed", [0, 1])
def test_each_rule_picks_the_best_threshold_a_brute_force_scan_finds(rule, seed):
    truth, scores = imbalanced_scores(seed=seed)
    threshold, name, value = decision.choose_threshold(rule, truth, scores)
    best = brute_force(rule, truth, scores)
    assert (-value if name == "expected_cost" else value) == pytest.approx(best, abs=1e-12)
    # The threshold applied as the served model applies it (probability >= threshold) reaches that value.
    assert brute_force(rule, truth, np.where(scores >= threshold, 1.0, 0.0)) >= best - 1e-12
    assert 0.0 <= threshold <= 1.0 and threshold not in set(scores)  # half-way between scores, not on one


def test_f1_beats_the_half_cut_on_an_imbalanced_table():
    truth, scores = imbalanced_scores()
    threshold, _, value = decision.choose_threshold(ThresholdRule(optimize="f1"), truth, scores)
    assert threshold < 0.5 and value > f1_score(truth, scores >= 0.5)


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        (ThresholdRule(precision_at_least=1.0), "no threshold reaches precision >= 1 on the held-out predictions"),
        (ThresholdRule(recall_at_least=1.0), None),  # every row positive always reaches recall 1
    ],
)
def test_a_constraint_no_threshold_meets_is_one_line_naming_the_key(rule, fragment):
    truth, scores = imbalanced_scores()
    scores = np.where(truth, scores, np.maximum(scores, scores[truth].max()))  # a negative at the top score
    if fragment is None:
        assert decision.choose_threshold(rule, truth, scores)[2] > 0
        return
    with pytest.raises(ConfigError, match=fragment) as raised:
        decision.choose_threshold(rule, truth, scores)
    assert str(raised.value).startswith("decision.threshold:") and "\n" not in str(raised.value)


def test_the_served_answer_is_positive_exactly_when_the_probability_reaches_the_threshold():
    rng = np.random.default_rng(3)
    positive = np.r_[0.3, 0.29999, 0.30001, rng.random(200)]
    probabilities = np.column_stack([1 - positive, positive])
    frame = transform.answer(probabilities, ["no", "yes"], np.arange(len(positive)), {"threshold": 0.3})
    assert ((frame["prediction"] == "yes") == (frame["probability_yes"] >= 0.3)).all()
    assert frame["prediction"].iloc[:3].tolist() == ["yes", "no", "yes"]
    # No decision document (a model logged before it existed): the most probable label.
    assert (
        transform.answer(probabilities, ["no", "yes"], np.arange(len(positive)))["prediction"] == "yes"
    ).tolist() == (positive > 0.5).tolist()


def weighted_model_and_rows(seed: int = 0):
    """A class-weighted XGBoost model of a 5%-positive table, its out-of-fold predictions and a test split."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(6000, 4))
    truth = (rng.random(6000) < 1 / (1 + np.exp(-(-3.6 + 1.4 * x[:, 0] + x[:, 1])))).astype(int)
    (x_train, y_train), (x_test, y_test) = (x[:4500], truth[:4500]), (x[4500:], truth[4500:])
    weights = compute_sample_weight("balanced", y_train)
    params = {"n_estimators": 60, "max_depth": 3, "learning_rate": 0.1}
    out_of_fold = np.zeros((len(y_train), 2))
    for fold in range(5):
        held = np.arange(len(y_train)) % 5 == fold
        model = XGBClassifier(**params).fit(x_train[~held], y_train[~held], sample_weight=weights[~held])
        out_of_fold[held] = model.predict_proba(x_train[held])
    final = XGBClassifier(**params).fit(x_train, y_train, sample_weight=weights)
    held_out = decision.HeldOut(y_train, out_of_fold, "out-of-fold")
    return held_out, final.predict_proba(x_test), y_test


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibration_lowers_the_brier_score_of_a_class_weighted_model(method):
    held_out, test_probabilities, y_test = weighted_model_and_rows()
    calibration = decision.fit_calibration(method, held_out)
    calibrated, _ = transform.decide(test_probabilities, {"calibration": calibration})
    raw_brier = np.mean((test_probabilities[:, 1] - y_test) ** 2)
    calibrated_brier = np.mean((calibrated[:, 1] - y_test) ** 2)
    assert calibrated_brier < 0.8 * raw_brier, (raw_brier, calibrated_brier)
    # Weighting pushed the mean probability far above the positive share; calibration brings it back near it.
    assert abs(calibrated[:, 1].mean() - y_test.mean()) < 0.3 * abs(test_probabilities[:, 1].mean() - y_test.mean())
    assert np.allclose(calibrated.sum(axis=1), 1.0)


def test_isotonic_calibration_inside_the_model_is_scikit_learns():
    from sklearn.isotonic import IsotonicRegression

    held_out, test_probabilities, _ = weighted_model_and_rows(seed=1)
    (calibrator,) = decision.fit_calibration("isotonic", held_out)
    sklearn = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(
        held_out.probabilities[:, 1], held_out.truth
    )
    served, _ = transform.decide(test_probabilities, {"calibration": [calibrator]})
    assert served[:, 1] == pytest.approx(sklearn.predict(test_probabilities[:, 1]), abs=1e-12)


def test_multiclass_calibration_is_one_calibrator_per_class_and_rows_sum_to_one():
    truth, probabilities = multiclass_scores(900, 0.5, seed=5)
    calibration = decision.fit_calibration("sigmoid", decision.HeldOut(truth, probabilities, "test"))
    assert len(calibration) == 3
    calibrated, chosen = transform.decide(probabilities, {"calibration": calibration, "threshold": None})
    assert np.allclose(calibrated.sum(axis=1), 1.0) and (chosen == calibrated.argmax(axis=1)).all()


def test_balanced_weights_are_scikit_learns():
    truth = np.array([0] * 90 + [1] * 7 + [2] * 3)
    config = small_config_with({"train.class_weight": "balanced"})
    assert decision.sample_weights(config, truth, 3) == pytest.approx(compute_sample_weight("balanced", truth))
    assert decision.sample_weights(small_config_with({}), truth, 3) is None


def test_the_folds_never_predict_a_row_with_a_model_that_saw_it_and_time_folds_look_forward():
    truth = np.array([0, 1] * 50)
    for method, fold_count in (("random", 5), ("time", 4)):
        overrides = {"decision.folds": fold_count}
        if method == "time":
            overrides |= {"split.method": "time", "split.time_column": "day"}
        plan = decision.fold_plan(small_config_with(overrides), truth)
        predicted = np.concatenate([rows for _, rows in plan])
        assert len(plan) == fold_count and len(set(predicted)) == len(predicted)
        for fit, rows in plan:
            assert not set(fit) & set(rows)
            if method == "time":
                assert fit.max() < rows.min()  # each fold predicted by a model of the rows before it
    assert len(predicted) < len(truth)  # forward folds: the first rows have nothing before them


def test_too_few_rows_of_a_class_for_the_folds_is_one_line():
    with pytest.raises(ConfigError, match="decision.folds 5: the train split holds only 3 row"):
        decision.fold_plan(small_config_with({}), np.array([0] * 40 + [1] * 3))


@pytest.mark.parametrize(
    ("overrides", "task", "fragment"),
    [
        ({"decision.threshold": {"optimize": "f1"}}, "multiclass", "decision.threshold applies to binary tasks"),
        ({"decision.calibration": "isotonic"}, "regression", "decision.calibration applies to classification"),
        ({"train.class_weight": "balanced"}, "regression", "train.class_weight applies to classification"),
    ],
)
def test_settings_the_task_cannot_use_are_refused_naming_the_key(overrides, task, fragment):
    with pytest.raises(ConfigError, match=fragment):
        decision.check_for_task(small_config_with(overrides), task)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"optimize": "f1", "recall_at_least": 0.8}, "give exactly one of"),
        ({}, "give exactly one of"),
        (1.5, "no probability strictly between 0 and 1"),
        ({"optimize": "accuracy"}, "decision.threshold"),
        ({"cost": {"false_positive": 1}}, "false_negative"),
    ],
)
def test_a_bad_threshold_is_a_config_error_naming_the_key(value, fragment):
    with pytest.raises(ConfigError, match=fragment) as raised:
        small_config_with({"decision.threshold": value})
    assert "decision.threshold" in str(raised.value)


def test_the_document_records_the_choice_and_is_json():
    import json

    held_out, _, _ = weighted_model_and_rows()
    config = small_config_with({"decision.threshold": {"optimize": "f1"}, "decision.calibration": "isotonic"})
    document = decision.fit_decision(config.decision, "binary", held_out)
    assert json.loads(json.dumps(document)) == document
    assert document["objective"] == "f1" and 0 < document["threshold"] < 1 and document["objective_metric"] == "f1"
    params, metrics = decision.params_and_metrics(document)
    assert params["decision.calibration"] == "isotonic" and metrics == {"held_out_f1": document["objective_value"]}
    assert "answers the positive label at probability >= " in decision.describe(document)
    default = decision.describe(decision.fit_decision(small_config_with({}).decision, "binary", None))
    assert default == "Decision: answers the most probable label (decision.threshold 0.5)."
    assert decision.describe(decision.fit_decision(small_config_with({}).decision, "multiclass", None)) == ""


def recorded_fits(monkeypatch) -> list[tuple]:
    """Every model tune's objective builds, with the keyword arguments of its fit, in the order of the fits."""
    from pipeline.tuning import study

    fits: list[tuple] = []
    build_model = study.build_model

    def recording(*args, **kwargs):
        model = build_model(*args, **kwargs)
        fit = model.fit
        model.fit = lambda *a, **k: (fits.append((model, k)), fit(*a, **k))[1]
        return model

    monkeypatch.setattr(study, "build_model", recording)
    return fits


@pytest.mark.parametrize("class_weight", ["none", "balanced"])
def test_tunes_trials_fit_and_early_stop_on_the_weights_train_fits_with(monkeypatch, class_weight):
    import optuna
    import pandas as pd

    from pipeline.tuning import study

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x": rng.normal(size=400), "target": (rng.random(400) < 0.1).astype("int64")})
    fits = recorded_fits(monkeypatch)
    config = small_config_with({"train.class_weight": class_weight})
    objective = study.make_objective(train, study.resolve_metric(config, "binary"), "binary")
    optuna.create_study().optimize(objective, n_trials=1)
    ((_, kwargs),) = fits
    if class_weight == "none":
        assert kwargs["sample_weight"] is None and kwargs["sample_weight_eval_set"] is None
        return
    weights, (valid_weights,) = kwargs["sample_weight"], kwargs["sample_weight_eval_set"]
    table = decision.class_weights(train["target"].to_numpy(), 2)  # the whole train split's shares
    assert set(np.round(weights, 9)) == {round(table[0], 9), round(table[1], 9)}
    assert set(np.round(valid_weights, 9)) <= set(np.round(weights, 9)) and table[1] > 4 * table[0]


def test_held_out_predictions_lacking_a_class_are_one_line_naming_the_folds():
    config = small_config_with({"decision.threshold": {"optimize": "f1"}, "decision.calibration": "sigmoid"})
    only_negatives = decision.HeldOut(np.zeros(50, dtype=int), np.full((50, 2), 0.5), "out-of-fold predictions")
    with pytest.raises(ConfigError, match="decision.folds: the out-of-fold predictions hold rows of 1 of the 2"):
        decision.fit_decision(config.decision, "binary", only_negatives)


def test_a_tiny_time_split_is_refused_naming_the_folds():
    config = small_config_with({"split.method": "time", "split.time_column": "day"})
    with pytest.raises(ConfigError, match="decision.folds 5: the train split holds only 4 rows"):
        decision.fold_plan(config, np.array([0, 1, 0, 1]))


def test_a_variant_config_replaces_the_threshold_rule_whole(tmp_path):
    from pipeline.config import load_config
    from tests.helpers import TEST_CONFIG

    (tmp_path / "pipeline.yaml").write_text(TEST_CONFIG.read_text())
    (tmp_path / "base.yaml").write_text("extends: pipeline.yaml\ndecision: {threshold: {optimize: f1}}\n")
    (tmp_path / "variant.yaml").write_text(
        "extends: base.yaml\ndecision: {threshold: {cost: {false_positive: 1, false_negative: 10}}}\n"
    )
    threshold = load_config(tmp_path / "variant.yaml").decision.threshold
    assert threshold == ThresholdRule(cost=CostConfig(false_positive=1, false_negative=10))


def test_with_tune_cv_a_trial_scores_the_mean_of_its_folds_and_their_mean_round(monkeypatch):
    import optuna
    import pandas as pd

    from pipeline.tuning import study

    rng = np.random.default_rng(1)
    train = pd.DataFrame({"x": rng.normal(size=500), "target": (rng.random(500) < 0.3).astype("int64")})
    fits = recorded_fits(monkeypatch)
    config = study.resolve_metric(small_config_with({"tune.cv": 3, "tune.pruner.type": "none"}), "binary")
    trials = optuna.create_study()
    trials.optimize(study.make_objective(train, config, "binary"), n_trials=1)
    assert len(fits) == 3  # one fit per fold
    (trial,) = trials.trials
    assert trial.value == pytest.approx(np.mean([model.best_score for model, _ in fits]))
    assert trial.user_attrs["best_iteration"] == round(np.mean([model.best_iteration for model, _ in fits]))


@pytest.mark.parametrize(("calibration", "warned"), [("none", True), ("isotonic", False)])
def test_class_weights_without_calibration_warn_that_the_probabilities_are_skewed(client, calibration, warned):
    from types import SimpleNamespace

    import mlflow
    from loguru import logger

    from pipeline.data.schema import Schema
    from pipeline.steps import train

    held_out, test_probabilities, y_test = weighted_model_and_rows()
    config = small_config_with({"train.class_weight": "balanced", "decision.calibration": calibration})
    schema = Schema(task="binary", target="y", columns={"x": "numeric"}, classes=[0, 1], positive_class=1)
    trained = SimpleNamespace(held_out=held_out, test_truth=y_test, test_predicted=test_probabilities)
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="WARNING")
    try:
        with mlflow.start_run():
            train._decide(config, schema, trained)
    finally:
        logger.remove(sink)
    assert any("skew the probabilities towards the rare class" in line for line in lines) == warned
