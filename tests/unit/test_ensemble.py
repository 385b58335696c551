"""tune.ensemble: the trials' held-out predictions kept, Caruana's greedy selection over them, the selection score
per tune.metric, and how many rounds `auto` runs."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from pipeline.config import load_config
from pipeline.tuning import ensemble
from tests.helpers import TEST_CONFIG, multiclass_scores, small_config_with

GBTREE = "[5E-1]"  # a merge key: tree boosters with that intercept


def _probabilities(positive: list[float]) -> np.ndarray:
    positive_array = np.asarray(positive, dtype=float)
    return np.column_stack([1 - positive_array, positive_array])


def _library(truth, metric="logloss", rounds=10, **kwargs) -> ensemble.TrialLibrary:
    maximize = metric in ("auc", "aucpr")
    return ensemble.TrialLibrary(np.asarray(truth), None, metric, maximize=maximize, rounds=rounds, **kwargs)


def test_the_library_keeps_the_best_trials_best_first_for_losses_and_scores():
    losses = _library([0, 1], keep=2)
    for number, value in enumerate([0.5, 0.3, 0.4, 0.9, float("nan")]):
        losses.add(number, value, _probabilities([0.5, 0.5]), GBTREE)
    assert [(kept.number, kept.score) for kept in losses.ranked()] == [(1, 0.3), (2, 0.4)]  # NaN: never kept
    aucs = _library([0, 1], metric="auc", keep=2)
    for number, value in enumerate([0.5, 0.9, 0.7, 0.7]):
        aucs.add(number, value, _probabilities([0.5, 0.5]), GBTREE)
    assert [kept.number for kept in aucs.ranked()] == [1, 2]  # a tie keeps the earlier trial


def _complementary() -> ensemble.TrialLibrary:
    library = _library([0, 1, 0, 1])
    library.add(0, 0.40, _probabilities([0.1, 0.9, 0.6, 0.6]), GBTREE)  # too high on rows 2 and 3
    library.add(1, 0.45, _probabilities([0.4, 0.4, 0.1, 0.9]), GBTREE)  # too low on rows 0 and 1
    library.add(2, 0.90, _probabilities([0.9, 0.1, 0.9, 0.1]), GBTREE)  # wrong everywhere
    return library


def test_selection_averages_trials_whose_errors_cancel():
    selection = ensemble.select(_complementary(), first=0, allowed={0, 1, 2})
    assert selection is not None
    assert next(iter(selection.weights)) == 0  # the best trial comes first
    assert set(selection.weights) == {0, 1} and sum(selection.weights.values()) == pytest.approx(1.0)
    alone = log_loss([0, 1, 0, 1], _probabilities([0.1, 0.9, 0.6, 0.6]))
    assert selection.best_score == pytest.approx(alone)
    assert selection.score < alone


def test_selection_draws_only_on_complete_trials_that_merge_with_the_first():
    library = _complementary()
    assert ensemble.select(library, first=0, allowed={0, 2}).weights == {0: 1.0}  # trial 1 did not complete
    other = _library([0, 1, 0, 1])
    other.add(0, 0.40, _probabilities([0.1, 0.9, 0.6, 0.6]), GBTREE)
    other.add(1, 0.45, _probabilities([0.4, 0.4, 0.1, 0.9]), "[7.5E-1]")  # another intercept (scale_pos_weight)
    assert ensemble.select(other, first=0, allowed={0, 1}).weights == {0: 1.0}
    dart = _library([0, 1, 0, 1])
    dart.add(0, 0.40, _probabilities([0.1, 0.9, 0.6, 0.6]), None)  # dart or gblinear: never merged
    dart.add(1, 0.45, _probabilities([0.4, 0.4, 0.1, 0.9]), None)
    assert ensemble.select(dart, first=0, allowed={0, 1}).weights == {0: 1.0}


def test_selection_starts_from_the_studys_best_even_when_a_tie_ranks_another_first():
    library = _library([0, 1, 0, 1])
    library.add(0, 0.40, _probabilities([0.4, 0.4, 0.1, 0.9]), GBTREE)
    library.add(1, 0.40, _probabilities([0.1, 0.9, 0.6, 0.6]), GBTREE)  # parallel trials: 1 completed first
    assert next(iter(ensemble.select(library, first=1, allowed={0, 1}).weights)) == 1


def test_selection_keeps_the_best_trial_alone_when_nothing_helps_it():
    library = _library([0, 1, 0, 1], metric="auc", rounds=20)
    library.add(0, 1.0, _probabilities([0.1, 0.9, 0.2, 0.8]), GBTREE)
    library.add(1, 0.5, _probabilities([0.9, 0.1, 0.2, 0.8]), GBTREE)
    selection = ensemble.select(library, first=0, allowed={0, 1})
    assert selection is not None and selection.weights == {0: 1.0}
    assert ensemble.select(library, first=7, allowed={0, 1, 7}) is None  # the best ran elsewhere: not kept here


_MULTICLASS_TRUTH = [0, 1, 2, 2, 1, 0, 2]
_MULTICLASS = np.array(
    [
        [0.6, 0.3, 0.1],
        [0.2, 0.5, 0.3],
        [0.1, 0.2, 0.7],
        [0.3, 0.4, 0.3],
        [0.5, 0.3, 0.2],
        [0.4, 0.4, 0.2],
        [0.2, 0.2, 0.6],
    ]
)


@pytest.mark.parametrize(
    ("metric", "truth", "predicted", "expected"),
    [
        ("logloss", [0, 1], _probabilities([0.2, 0.7]), log_loss([0, 1], [0.2, 0.7])),
        ("auc", [0, 1, 1], _probabilities([0.2, 0.7, 0.1]), roc_auc_score([0, 1, 1], [0.2, 0.7, 0.1])),
        ("aucpr", [0, 1, 1], _probabilities([0.2, 0.7, 0.1]), average_precision_score([0, 1, 1], [0.2, 0.7, 0.1])),
        ("error", [0, 1, 1], _probabilities([0.2, 0.7, 0.1]), 1 / 3),
        ("rmse", [1.0, 3.0], np.array([2.0, 3.0]), np.sqrt(0.5)),
        ("mae", [1.0, 3.0], np.array([2.0, 3.0]), 0.5),
        ("mape", [1.0, 4.0], np.array([2.0, 3.0]), (1.0 + 0.25) / 2),
        ("rmsle", [0.0, 1.0], np.array([-0.5, 1.0]), np.sqrt(np.log1p(-0.5) ** 2 / 2)),  # above -1 is allowed
        ("logloss", [0, 2, 1], np.eye(3)[[0, 2, 1]] * 0.8 + 0.2 / 3, -np.log(0.8 + 0.2 / 3)),
        # XGBoost's multiclass auc weighs the classes by their shares; its aucpr does not
        (
            "auc",
            _MULTICLASS_TRUTH,
            _MULTICLASS,
            roc_auc_score(_MULTICLASS_TRUTH, _MULTICLASS, average="weighted", multi_class="ovr"),
        ),
        ("aucpr", _MULTICLASS_TRUTH, _MULTICLASS, average_precision_score(np.eye(3)[_MULTICLASS_TRUTH], _MULTICLASS)),
    ],
)
def test_score_is_the_tune_metric(metric, truth, predicted, expected):
    assert ensemble.score(metric, np.asarray(truth), predicted, None) == pytest.approx(expected)


def test_multiclass_auc_is_xgboosts_and_aucpr_near_it():
    import xgboost as xgb

    truth, probabilities = multiclass_scores(200, 0.3, seed=0)
    # no trees: XGBoost scores the given margins' softmax, these probabilities
    dmatrix = xgb.DMatrix(np.zeros((200, 1)), label=truth, base_margin=np.log(probabilities))
    for metric, tolerance in (("auc", 1e-9), ("aucpr", 0.01)):  # its aucpr interpolates unlike average precision
        booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "eval_metric": metric}, dmatrix, 0)
        xgboost_score = float(booster.eval(dmatrix).split(f"{metric}:")[1])
        assert ensemble.score(metric, truth, probabilities, None) == pytest.approx(xgboost_score, abs=tolerance)


def test_weights_count_in_the_score():
    truth, predicted = np.array([1.0, 3.0]), np.array([2.0, 3.0])
    assert ensemble.score("mae", truth, predicted, np.array([1.0, 0.0])) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("setting", "timeout_s", "rows", "expected"),
    [
        ("auto", 60, 1_000, ensemble.AUTO_ROUNDS),
        ("auto", 60, ensemble.AUTO_FINAL_MODEL_MAX_ROWS + 1, 1),  # a big table: the best trial alone, fits stay few
        ("auto", None, 1_000, 1),  # a count of trials alone keeps the chain's time
        ("none", 60, 1_000, 1),
        (5, None, 1_000, 5),  # a number is what the user asked for
    ],
)
def test_rounds(setting, timeout_s, rows, expected):
    tune = load_config(TEST_CONFIG, {"tune.ensemble": setting, "tune.timeout_s": timeout_s}).tune
    assert ensemble.rounds(tune, rows) == expected


@pytest.mark.parametrize(
    ("task", "columns"),
    [("binary", 2), ("multiclass", 3), ("regression", None)],
    ids=["binary", "multiclass", "regression"],
)
def test_the_objective_keeps_each_complete_trials_held_out_predictions_of_every_row(task, columns):
    import optuna
    import pandas as pd

    from pipeline.tuning import study

    rng = np.random.default_rng(1)
    x = rng.normal(size=300)
    target = {"binary": (rng.random(300) < 0.3), "multiclass": rng.integers(0, 3, 300), "regression": x * 2}[task]
    train = pd.DataFrame({"x": x, "target": target.astype("float64" if task == "regression" else "int64")})
    settings = {"tune.cv": 3, "tune.pruner.type": "none", "tune.ensemble": 5, "tune.max_boosting_rounds": 20}
    config = study.resolve_metric(small_config_with(settings), task)
    objective = study.make_objective(train, config, task)
    trials = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trials.optimize(objective, n_trials=3)
    library = objective.library
    assert library is not None and library.rounds == 5
    kept = library.ranked()
    assert sorted(k.number for k in kept) == [0, 1, 2]
    assert kept[0].number == trials.best_trial.number and kept[0].score == trials.best_value
    assert sorted(library.truth) == sorted(train["target"])  # the folds' held-out rows: each row once
    for k in kept:
        assert k.predicted.shape == ((300, columns) if columns else (300,))
        assert k.key is not None and k.key.startswith("[")  # gbtree: the first fold's intercept
        pooled = ensemble.score(library.metric, library.truth, k.predicted.astype(float), None)
        assert pooled == pytest.approx(trials.trials[k.number].value, rel=0.05)  # pooled vs mean of 3 folds
    none = study.make_objective(train, small_config_with({**settings, "tune.ensemble": "none"}), task)
    assert none.library is None  # nothing kept when nothing is selected


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

    library = _complementary()
    chosen, metrics = _ensemble(_study_of([0.40, 0.45, 0.90]), library)
    assert [(m["trial"], m["params"]) for m in chosen["members"]] == [
        (0, {"max_depth": 2, "n_estimators": 3}),
        (1, {"max_depth": 3, "n_estimators": 4}),
    ]
    assert metrics["ensemble_trials"] == 2 and metrics["ensemble_valid_logloss"] < 0.40


def test_when_the_best_trial_ran_elsewhere_the_model_is_that_trial_alone():
    from pipeline.steps.tune import _ensemble

    library = _library([0, 1])
    library.add(1, 0.45, _probabilities([0.4, 0.6]), GBTREE)  # trial 0, the best, ran in another process
    chosen, metrics = _ensemble(_study_of([0.40, 0.45]), library)
    assert chosen == {"members": [{"trial": 0, "weight": 1.0, "params": {"max_depth": 2, "n_estimators": 3}}]}
    assert metrics == {"ensemble_trials": 1.0}
    alone, _ = _ensemble(_study_of([0.40, 0.45]), None)  # nothing kept (ensemble none, or engine dask)
    assert alone == chosen
