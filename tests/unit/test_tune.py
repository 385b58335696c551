"""Tuning pieces: the search space, the best-params hand-off, and the nested trial runs."""

import optuna
import pandas as pd
import pytest
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from sklearn.datasets import make_classification

from pipeline.config import load_config
from pipeline.contract import STEP_TAG
from pipeline.errors import ConfigError, TrackingError
from pipeline.modeling.model import suggest_params
from pipeline.tuning.study import (
    BEST_ITERATION_ATTR,
    best_params,
    eval_metric,
    metric_direction,
    open_study,
    resolve_metric,
    run_trials,
)
from pipeline.tuning.trial_runs import TrialRunLogger
from pipeline.tuning.trial_writer import TrialRunWriter
from tests.helpers import TEST_CONFIG


def search(train, config, task="binary"):
    config = resolve_metric(config, task)
    study = open_study(config, "unit-test")
    run_trials(study, train, config, task, callbacks=[])
    return study


def test_the_tuning_metric_follows_the_task(small_config):
    assert resolve_metric(small_config, "binary").tune.metric == "logloss"
    assert resolve_metric(small_config, "regression").tune.metric == "rmse"
    assert eval_metric("logloss", "multiclass") == "mlogloss" and eval_metric("auc", "multiclass") == "auc"
    with_auc = small_config.model_copy(update={"tune": small_config.tune.model_copy(update={"metric": "auc"})})
    with pytest.raises(ConfigError, match="tune.metric 'auc' does not fit a regression task"):
        resolve_metric(with_auc, "regression")


@pytest.fixture
def tiny_train() -> pd.DataFrame:
    features, target = make_classification(n_samples=200, n_features=6, random_state=0)
    frame = pd.DataFrame(features, columns=[f"f{i}" for i in range(6)])
    return frame.assign(target=target)


def test_search_space_types_follow_the_config(small_config):
    trial = optuna.create_study().ask()
    params = suggest_params(trial, small_config.tune.search_space)
    assert set(params) == set(small_config.tune.search_space)
    assert isinstance(params["max_depth"], int)
    space = small_config.tune.search_space["learning_rate"]
    assert space.low <= params["learning_rate"] <= space.high


def test_a_conditional_dimension_is_drawn_only_under_its_choice():
    space = load_config(
        TEST_CONFIG,
        {
            "tune.search_space.max_leaves": {"low": 4, "high": 64, "log": True, "when": {"grow_policy": "lossguide"}},
            "tune.search_space.grow_policy": {"choices": ["depthwise", "lossguide"]},  # listed after: order is free
        },
    ).tune.search_space
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = [suggest_params(study.ask(), space) for _ in range(30)]
    assert {params["grow_policy"] for params in drawn} == {"depthwise", "lossguide"}
    for params in drawn:
        assert ("max_leaves" in params) == (params["grow_policy"] == "lossguide"), params
        assert 4 <= params.get("max_leaves", 4) <= 64


def test_best_params_carry_the_early_stopping_round_count(tiny_train, small_config):
    study = search(tiny_train, small_config)
    params = best_params(study)
    assert params["n_estimators"] == study.best_trial.user_attrs[BEST_ITERATION_ATTR] + 1
    assert 1 <= params["n_estimators"] <= small_config.tune.max_boosting_rounds
    assert {k: v for k, v in params.items() if k != "n_estimators"} == study.best_trial.params


def test_same_seed_same_search(tiny_train, small_config):
    assert best_params(search(tiny_train, small_config)) == best_params(search(tiny_train, small_config))


def test_trial_runs_are_children_with_the_trial_state(client):
    parent = client.create_run("0", tags={STEP_TAG: "tune"}).info.run_id
    study = optuna.create_study(direction="maximize")
    logger = TrialRunLogger(client, "0", parent, "auc")
    distributions = {"max_depth": optuna.distributions.IntDistribution(2, 8)}
    finished = [
        optuna.trial.create_trial(
            params={"max_depth": 3}, distributions=distributions, value=0.97, user_attrs={BEST_ITERATION_ATTR: 41}
        ),
        optuna.trial.create_trial(
            params={"max_depth": 7}, distributions=distributions, state=optuna.trial.TrialState.PRUNED
        ),
        optuna.trial.create_trial(
            params={"max_depth": 5}, distributions=distributions, state=optuna.trial.TrialState.FAIL
        ),
    ]
    for trial in finished:
        study.add_trial(trial)
    for trial in study.trials:
        logger(study, trial)
    children = client.search_runs(
        ["0"], f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent}'", order_by=["tags.`optuna.trial_number` ASC"]
    )
    assert [run.info.status for run in children] == ["FINISHED", "KILLED", "FAILED"]
    assert all(STEP_TAG not in run.data.tags for run in children)
    assert children[0].data.params == {"max_depth": "3"}
    assert children[0].data.metrics == {"valid_auc": 0.97, BEST_ITERATION_ATTR: 41.0}
    assert children[1].data.tags["optuna.trial_state"] == "PRUNED"


@pytest.mark.parametrize(
    ("metric", "direction"),
    [
        ("auc", "maximize"),
        ("aucpr", "maximize"),
        ("ndcg@5", "maximize"),
        ("logloss", "minimize"),
        ("error", "minimize"),
        ("rmse", "minimize"),
    ],
)
def test_study_direction_follows_the_metric(metric, direction):
    assert metric_direction(metric) == direction


def test_auc_study_is_maximised(tiny_train, small_config):
    config = small_config.model_copy(update={"tune": small_config.tune.model_copy(update={"metric": "auc"})})
    study = search(tiny_train, config)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert len(study.trials) == config.tune.n_trials
    assert study.best_value == max(trial.value for trial in study.trials)


def test_trial_runs_written_by_the_writer_process(client):
    parent = client.create_run("0", tags={STEP_TAG: "tune"}).info.run_id
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5))
    with TrialRunWriter(TrialRunLogger(client, "0", parent, "logloss")) as writer:
        for _ in range(3):
            writer(study, study.trials[0])
    assert writer.logged == 3
    assert len(client.search_runs(["0"], f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent}'")) == 3


def test_a_failed_trial_run_write_fails_the_step(client):
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5))
    writer = TrialRunWriter(TrialRunLogger(client, "999", "no-parent", "logloss"))  # no such experiment
    with pytest.raises(TrackingError, match="writing the nested trial runs failed"):
        with writer:
            writer(study, study.trials[0])


def test_a_dead_writer_fails_the_next_trial_at_once(client):
    import time

    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5))
    writer = TrialRunWriter(TrialRunLogger(client, "999", "no-parent", "logloss"))
    writer(study, study.trials[0])
    deadline = time.monotonic() + 30
    while writer._process.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(TrackingError, match="writing the nested trial runs failed: .*999"):
        writer(study, study.trials[0])


def test_the_search_starts_from_the_configured_points(tiny_train, small_config):
    point = {"max_depth": 7, "learning_rate": 0.2, "subsample": 0.9}
    config = small_config.model_copy(
        update={"tune": small_config.tune.model_copy(update={"start_points": [point], "n_trials": 2})}
    )
    trials = search(tiny_train, config).trials
    assert {name: trials[0].params[name] for name in point} == point
    assert set(trials[0].params) == set(config.tune.search_space)  # the dimensions it leaves out are sampled
    assert trials[1].params["max_depth"] != 7 or trials[1].params["learning_rate"] != 0.2
