"""tune.ensemble: the trials' held-out predictions kept, Caruana's greedy selection over them, the selection score
per tune.metric, and how many rounds `auto` runs."""

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from pipeline.config import load_config
from pipeline.tuning import ensemble
from tests.helpers import TEST_CONFIG


def _probabilities(positive: list[float]) -> np.ndarray:
    positive_array = np.asarray(positive, dtype=float)
    return np.column_stack([1 - positive_array, positive_array])


def test_held_out_keeps_the_best_trials_best_first_for_losses_and_scores():
    losses = ensemble.HeldOut(np.array([0, 1]), None, "logloss", maximize=False, rounds=5, keep=2)
    for number, value in enumerate([0.5, 0.3, 0.4, 0.9]):
        losses.add(number, value, _probabilities([0.5, 0.5]))
    assert [(kept.number, kept.score) for kept in losses.ranked()] == [(1, 0.3), (2, 0.4)]
    aucs = ensemble.HeldOut(np.array([0, 1]), None, "auc", maximize=True, rounds=5, keep=2)
    for number, value in enumerate([0.5, 0.9, 0.7, 0.7]):
        aucs.add(number, value, _probabilities([0.5, 0.5]))
    assert [kept.number for kept in aucs.ranked()] == [1, 2]  # a tie keeps the earlier trial


def test_selection_averages_trials_whose_errors_cancel():
    truth = np.array([0, 1, 0, 1])
    held_out = ensemble.HeldOut(truth, None, "logloss", maximize=False, rounds=10)
    held_out.add(0, 0.40, _probabilities([0.1, 0.9, 0.6, 0.6]))  # wrong on rows 2 and 3's side: too high
    held_out.add(1, 0.45, _probabilities([0.4, 0.4, 0.1, 0.9]))  # wrong on rows 0 and 1
    held_out.add(2, 0.90, _probabilities([0.9, 0.1, 0.9, 0.1]))  # wrong everywhere
    selection = ensemble.select(held_out)
    assert selection is not None
    assert next(iter(selection.weights)) == 0  # the best trial comes first
    assert set(selection.weights) == {0, 1} and sum(selection.weights.values()) == pytest.approx(1.0)
    alone = log_loss(truth, _probabilities([0.1, 0.9, 0.6, 0.6]))
    assert selection.best_score == pytest.approx(alone)
    assert selection.score < alone


def test_selection_keeps_the_best_trial_alone_when_nothing_helps_it():
    truth = np.array([0, 1, 0, 1])
    held_out = ensemble.HeldOut(truth, None, "auc", maximize=True, rounds=20)
    held_out.add(0, 1.0, _probabilities([0.1, 0.9, 0.2, 0.8]))
    held_out.add(1, 0.5, _probabilities([0.9, 0.1, 0.2, 0.8]))
    selection = ensemble.select(held_out)
    assert selection is not None and selection.weights == {0: 1.0}
    assert ensemble.select(ensemble.HeldOut(truth, None, "auc", maximize=True, rounds=20)) is None  # no trial completed


@pytest.mark.parametrize(
    ("metric", "truth", "predicted", "expected"),
    [
        ("logloss", [0, 1], _probabilities([0.2, 0.7]), log_loss([0, 1], [0.2, 0.7])),
        ("auc", [0, 1, 1], _probabilities([0.2, 0.7, 0.1]), roc_auc_score([0, 1, 1], [0.2, 0.7, 0.1])),
        ("error", [0, 1, 1], _probabilities([0.2, 0.7, 0.1]), 1 / 3),
        ("rmse", [1.0, 3.0], np.array([2.0, 3.0]), np.sqrt(0.5)),
        ("mae", [1.0, 3.0], np.array([2.0, 3.0]), 0.5),
        ("mape", [1.0, 4.0], np.array([2.0, 3.0]), (1.0 + 0.25) / 2),
        ("logloss", [0, 2, 1], np.eye(3)[[0, 2, 1]] * 0.8 + 0.2 / 3, -np.log(0.8 + 0.2 / 3)),
    ],
)
def test_score_is_the_tune_metric(metric, truth, predicted, expected):
    assert ensemble.score(metric, np.asarray(truth), predicted, None) == pytest.approx(expected)


def test_weights_count_in_the_score():
    truth, predicted = np.array([1.0, 3.0]), np.array([2.0, 3.0])
    assert ensemble.score("mae", truth, predicted, np.array([1.0, 0.0])) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("setting", "timeout_s", "rows", "expected"),
    [
        ("auto", 60, 1_000, ensemble.AUTO_ROUNDS),
        ("auto", 60, ensemble.AUTO_MAX_ROWS + 1, 1),  # a big table: the best trial alone, fits stay few
        ("auto", None, 1_000, 1),  # a count of trials alone keeps the chain's time
        ("none", 60, 1_000, 1),
        (5, None, 1_000, 5),  # a number is what the user asked for
    ],
)
def test_rounds(setting, timeout_s, rows, expected):
    tune = load_config(TEST_CONFIG, {"tune.ensemble": setting, "tune.timeout_s": timeout_s}).tune
    assert ensemble.rounds(tune, rows) == expected


def test_the_objective_keeps_each_complete_trials_held_out_predictions_of_every_row():
    import optuna
    import pandas as pd

    from pipeline.tuning import study
    from tests.helpers import small_config_with

    rng = np.random.default_rng(1)
    train = pd.DataFrame({"x": rng.normal(size=300), "target": (rng.random(300) < 0.3).astype("int64")})
    settings = {"tune.cv": 3, "tune.pruner.type": "none", "tune.ensemble": 5, "tune.max_boosting_rounds": 20}
    config = study.resolve_metric(small_config_with(settings), "binary")
    objective = study.make_objective(train, config, "binary")
    trials = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trials.optimize(objective, n_trials=3)
    assert objective.held_out is not None and objective.held_out.rounds == 5
    kept = objective.held_out.ranked()
    assert sorted(k.number for k in kept) == [0, 1, 2]
    assert kept[0].number == trials.best_trial.number and kept[0].score == trials.best_value
    assert sorted(objective.held_out.truth) == sorted(train["target"])  # the folds' held-out rows: each row once
    for k in kept:
        assert k.predicted.shape == (300, 2)
        pooled = ensemble.score("logloss", objective.held_out.truth, k.predicted.astype(float), None)
        assert pooled == pytest.approx(trials.trials[k.number].value, abs=0.01)  # mean of 3 near-equal folds
    none = study.make_objective(train, small_config_with({**settings, "tune.ensemble": "none"}), "binary")
    assert none.held_out is None  # nothing kept when nothing is selected


def _study_of(values: list[float]):
    import optuna

    trials = optuna.create_study()
    space = {"max_depth": optuna.distributions.IntDistribution(2, 8)}
    for depth, value in enumerate(values, start=2):
        trials.add_trial(
            optuna.trial.create_trial(
                params={"max_depth": depth}, distributions=space, value=value, user_attrs={"best_iteration": depth}
            )
        )
    return trials


def test_tune_writes_the_selected_trials_with_their_params_and_round_counts():
    from pipeline.steps.tune import _ensemble

    truth = np.array([0, 1, 0, 1])
    held_out = ensemble.HeldOut(truth, None, "logloss", maximize=False, rounds=10)
    held_out.add(0, 0.40, _probabilities([0.1, 0.9, 0.6, 0.6]))
    held_out.add(1, 0.45, _probabilities([0.4, 0.4, 0.1, 0.9]))
    chosen, metrics = _ensemble(_study_of([0.40, 0.45]), held_out)
    assert [(m["trial"], m["params"]) for m in chosen["members"]] == [
        (0, {"max_depth": 2, "n_estimators": 3}),
        (1, {"max_depth": 3, "n_estimators": 4}),
    ]
    assert metrics["ensemble_trials"] == 2 and metrics["ensemble_valid_logloss"] < 0.40


def test_when_the_best_trial_ran_elsewhere_the_model_is_that_trial_alone():
    from pipeline.steps.tune import _ensemble

    held_out = ensemble.HeldOut(np.array([0, 1]), None, "logloss", maximize=False, rounds=10)
    held_out.add(1, 0.45, _probabilities([0.4, 0.6]))  # trial 0, the best, ran in another process: not kept here
    chosen, metrics = _ensemble(_study_of([0.40, 0.45]), held_out)
    assert chosen == {"members": [{"trial": 0, "weight": 1.0, "params": {"max_depth": 2, "n_estimators": 3}}]}
    assert metrics == {"ensemble_trials": 1.0}
    alone, _ = _ensemble(_study_of([0.40, 0.45]), None)  # nothing kept (ensemble none, or engine dask)
    assert alone == chosen
