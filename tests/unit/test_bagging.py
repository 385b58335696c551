"""train's bag: the members' average merged into one XGBoost model, and how many members a config asks for."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from xgboost import XGBClassifier, XGBRegressor

from pipeline.config import load_config
from pipeline.contract import TIMED_SEARCH_PARAM
from pipeline.modeling.bagging import (
    BAG_AUTO_ENSEMBLE_MODELS,
    BAG_AUTO_MAX_ROWS,
    BAG_AUTO_MODELS,
    average,
    bag_size,
    fit_plan,
    for_search,
)
from tests.helpers import TEST_CONFIG

SAMPLED = {"subsample": 0.7, "colsample_bytree": 0.8}


def _table(rows: int = 400) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    frame["shop"] = pd.Categorical(rng.choice(["north", "south", "east"], rows))
    frame.loc[rng.choice(rows, 30), "a"] = np.nan  # missing values take the trees' default branches
    signal = frame["a"].fillna(0) - frame["b"] + (frame["shop"] == "south") * 1.5
    return frame, signal


@pytest.mark.parametrize(
    ("estimator", "target", "extra"),
    [
        (XGBClassifier, lambda s: (s > 0).astype(int), {}),
        (XGBClassifier, lambda s: pd.cut(s, 3, labels=False), {}),
        (XGBRegressor, lambda s: s, {}),
    ],
    ids=["binary", "multiclass", "regression"],
)
def test_the_merged_model_scores_the_members_mean_margin(estimator, target, extra):
    x, signal = _table()
    y = target(signal)
    members = [
        estimator(n_estimators=8 + seed, max_depth=3, random_state=seed, enable_categorical=True, **SAMPLED).fit(x, y)
        for seed in range(3)
    ]
    expected = np.mean([member.predict(x, output_margin=True) for member in members], axis=0)
    rounds = sum(member.get_booster().num_boosted_rounds() for member in members)
    merged = average(members)
    assert isinstance(merged, estimator)
    assert merged.get_booster().num_boosted_rounds() == rounds
    np.testing.assert_allclose(merged.predict(x, output_margin=True), expected, atol=1e-5)
    if estimator is XGBClassifier:  # the estimator's own attributes survive the swapped booster
        assert merged.n_classes_ == len(np.unique(y))
        np.testing.assert_allclose(merged.predict_proba(x).sum(axis=1), 1.0, atol=1e-6)


def test_vector_leaf_trees_merge_too():
    x, signal = _table()
    x = x.drop(columns=["shop"])  # XGBoost's vector-leaf trees take no categorical features
    y = pd.cut(signal, 3, labels=False)
    members = [
        XGBClassifier(n_estimators=5, max_depth=2, random_state=seed, multi_strategy="multi_output_tree", **SAMPLED)
        .fit(x, y)
        for seed in range(2)
    ]  # fmt: skip
    expected = np.mean([member.predict(x, output_margin=True) for member in members], axis=0)
    np.testing.assert_allclose(average(members).predict(x, output_margin=True), expected, atol=1e-5)


def test_early_stopped_members_merge_up_to_their_best_iteration():
    """An early-stopped member predicts with its rounds up to best_iteration: the merge keeps those and no more, and
    the merged model (no best iteration of its own) predicts with all of them."""
    x, signal = _table()
    y = pd.cut(signal, 3, labels=False)
    fit, valid = slice(0, 300), slice(300, None)
    members = [
        XGBClassifier(
            n_estimators=200, learning_rate=0.5, early_stopping_rounds=3, random_state=seed, enable_categorical=True,
            **SAMPLED,
        ).fit(x[fit], y[fit], eval_set=[(x[valid], y[valid])], verbose=False)
        for seed in range(2)
    ]  # fmt: skip
    used = [member.best_iteration + 1 for member in members]
    assert all(count < member.get_booster().num_boosted_rounds() for count, member in zip(used, members, strict=True))
    expected = np.mean([member.predict(x, output_margin=True) for member in members], axis=0)
    merged = average(members)
    assert merged.get_booster().num_boosted_rounds() == sum(used)
    np.testing.assert_allclose(merged.predict(x, output_margin=True), expected, atol=1e-5)


def test_a_bag_of_one_is_the_model_itself():
    x, signal = _table(100)
    model = XGBRegressor(n_estimators=3).fit(x.drop(columns=["shop"]), signal)
    assert average([model]) is model


@pytest.mark.parametrize(
    ("bag", "params", "rows", "expected"),
    [
        ("auto", SAMPLED, 1_000, BAG_AUTO_MODELS),
        ("auto", SAMPLED, BAG_AUTO_MAX_ROWS, BAG_AUTO_MODELS),
        ("auto", SAMPLED, BAG_AUTO_MAX_ROWS + 1, 1),
        ("auto", SAMPLED, None, 1),  # a table on a cluster
        (4, SAMPLED, None, 4),
        (4, {"subsample": 1.0, "colsample_bytree": 1.0}, 1_000, 1),  # every member would be the same model
        (4, {}, 1_000, 1),
        (4, {"colsample_bynode": 0.5}, 1_000, 4),
        (4, {"subsample": None, "colsample_bytree": 0.5}, 1_000, 4),  # null in a config: XGBoost's default
        (4, {**SAMPLED, "booster": "dart"}, 1_000, 1),
    ],
)
def test_bag_size(bag, params, rows, expected):
    assert bag_size(bag, params, {"tree_method": "hist"}, rows) == expected


def _seeds_and_weights(plan) -> list[tuple[int, float]]:
    return [(fit.seed, round(fit.weight, 6)) for fit in plan]


def test_a_lone_trials_fits_count_up_from_the_configured_seed():
    # XGBoost's own default first: a bag of one is the model of before
    thirds = [(seed, 0.333333) for seed in range(3)]
    assert _seeds_and_weights(fit_plan(3, [(SAMPLED, 1.0)], {}, 1_000)) == thirds
    assert [fit.seed for fit in fit_plan(2, [({**SAMPLED, "max_depth": 3}, 1.0)], {"random_state": 7}, 1_000)] == [7, 8]
    assert _seeds_and_weights(fit_plan(4, [({}, 1.0)], {}, 1_000)) == [(0, 1.0)]  # nothing sampled: one model


def test_an_ensembles_trials_share_the_bag_by_weight_with_at_least_one_fit_each():
    deep, shallow, plain = {**SAMPLED, "max_depth": 6}, {**SAMPLED, "max_depth": 2}, {"max_depth": 4}
    plan = fit_plan(10, [(deep, 0.7), (shallow, 0.25), (plain, 0.05)], {}, 1_000)
    assert [fit.params["max_depth"] for fit in plan] == [6] * 7 + [2] * 2 + [4]  # 0.5 of a fit is still one
    assert [fit.seed for fit in plan] == [0, 1, 2, 3, 4, 5, 6, 0, 1, 0]
    assert sum(fit.weight for fit in plan) == pytest.approx(1.0)
    assert plan[0].weight == pytest.approx(0.1) and plan[7].weight == pytest.approx(0.125)
    assert [fit.weight for fit in fit_plan(1, [(deep, 0.7), (shallow, 0.3)], {}, 1_000)] == [0.7, 0.3]  # bag 1
    # auto: twenty fits for an ensemble (one per selection round), ten for a lone trial
    assert len(fit_plan("auto", [(deep, 0.55), (shallow, 0.45)], {}, 1_000)) == BAG_AUTO_ENSEMBLE_MODELS
    assert len(fit_plan("auto", [(deep, 1.0)], {}, 1_000)) == BAG_AUTO_MODELS
    assert len(fit_plan("auto", [(deep, 0.55), (shallow, 0.45)], {}, BAG_AUTO_MAX_ROWS + 1)) == 2


def test_models_of_different_params_merge_into_their_weighted_mean_margin():
    x, signal = _table()
    y = (signal > 0).astype(int)
    members = [
        XGBClassifier(n_estimators=12, max_depth=2, learning_rate=0.3, enable_categorical=True).fit(x, y),
        XGBClassifier(n_estimators=5, max_depth=6, reg_lambda=10.0, enable_categorical=True).fit(x, y),
        XGBClassifier(n_estimators=9, grow_policy="lossguide", max_leaves=5, enable_categorical=True).fit(x, y),
    ]
    weights = [0.5, 0.3, 0.2]
    expected = sum(w * m.predict(x, output_margin=True) for w, m in zip(weights, members, strict=True))
    np.testing.assert_allclose(average(members, weights).predict(x, output_margin=True), expected, atol=1e-5)


def test_models_with_different_intercepts_are_refused():
    x, signal = _table()
    members = [XGBRegressor(n_estimators=3, base_score=value).fit(x.drop(columns=["shop"]), signal) for value in (0, 1)]
    with pytest.raises(ValueError, match="different intercepts"):
        average(members)


@pytest.mark.parametrize(
    ("bag", "tune_params", "expected"),
    [
        ("auto", {TIMED_SEARCH_PARAM: "600"}, "auto"),  # against the clock: auto decides by the rows
        ("auto", {}, 1),  # n_trials alone: one model, the chain's time unchanged
        (3, {}, 3),  # a number is what the user asked for
    ],
)
def test_bag_auto_is_a_bag_only_after_a_search_against_the_clock(bag, tune_params, expected):
    config = load_config(TEST_CONFIG, {"train.bag": bag})
    tune_run = SimpleNamespace(data=SimpleNamespace(params={"max_depth": "3", **tune_params}))
    assert for_search(config, tune_run).train.bag == expected
