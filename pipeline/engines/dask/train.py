"""train on engine dask: the same model with xgboost.dask, fitted on the whole train split and predicting the whole
test split on the cluster (the predictions gathered here: 8 bytes per row and class); the held-out rows for the
SHAP plot come from partitions spread over the test split. With `decision` learnt from data, first the out-of-fold
predictions of the train split, each fold's model fitted on the cluster. `train.bag` models (auto: one, the table
is a cluster's) are fitted in turn and averaged into one, shared out among the trials of the tune run's ensemble.json
when it holds several (an ensemble chosen by a tune on engine local). Logs params `dask.*` (the cluster),
`dask.n_partitions`, `train.bag` (the models averaged) and `train.ensemble` (the trials they come from)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from loguru import logger
from mlflow.entities import Run

from pipeline.config import PipelineConfig
from pipeline.contract import TEST_ARTIFACT, TRAIN_ARTIFACT
from pipeline.data.schema import Schema
from pipeline.engines import Trained
from pipeline.engines.dask import boosting, tables
from pipeline.engines.dask.cluster import cluster_facts, cluster_faults, dask_client
from pipeline.errors import ConfigError
from pipeline.modeling import plots
from pipeline.modeling.bagging import Fit, describe, fit_bag, fit_plan
from pipeline.modeling.decision import HeldOut, describe_plan
from pipeline.tracking.runs import log_params

FOLD_COLUMN = "__decision_fold"
PROFILE_ROWS = 1_000_000  # train rows the reference profile's bins are drawn from (modeling/profile.py)


def _with_fold(part: pd.DataFrame, folds: int, seed: int, partition_info: Any = None) -> pd.DataFrame:
    """Random folds: each row's fold drawn from a generator seeded by the split seed and the partition."""
    number = (partition_info or {}).get("number", 0)
    drawn = np.random.default_rng([seed, number]).integers(0, folds, len(part))
    return part.assign(**{FOLD_COLUMN: drawn})


def _with_chunk(part: pd.DataFrame, offsets: list[int], n_rows: int, folds: int, partition_info: Any = None):
    """Forward folds: the train split (stored in time order) cut into folds + 1 chunks by global row position."""
    position = offsets[(partition_info or {}).get("number", 0)] + np.arange(len(part))
    return part.assign(**{FOLD_COLUMN: position * (folds + 1) // max(n_rows, 1)})


def _fold_plan(client: Any, train, config: PipelineConfig) -> list:
    """(rows to fit, rows to predict) per fold, as the local engine's `decision.fold_plan`: random folds seeded by
    the split seed (not stratified: at the dask engine's sizes every fold holds every class), or forward folds."""
    folds = config.decision.folds
    meta = train._meta.assign(**{FOLD_COLUMN: np.array([], dtype="int64")})
    if config.split.method != "time":
        framed = train.map_partitions(_with_fold, folds, config.split.seed, meta=meta)
        plan = [(framed[framed[FOLD_COLUMN] != k], framed[framed[FOLD_COLUMN] == k]) for k in range(folds)]
    else:
        with cluster_faults("counting the train split's rows", client):
            lengths = train.map_partitions(len).compute().tolist()
        offsets = np.r_[0, np.cumsum(lengths)[:-1]].astype(int).tolist()
        framed = train.map_partitions(_with_chunk, offsets, sum(lengths), folds, meta=meta)
        plan = [(framed[framed[FOLD_COLUMN] < k], framed[framed[FOLD_COLUMN] == k]) for k in range(1, folds + 1)]
    return [(fit.drop(columns=[FOLD_COLUMN]), predict.drop(columns=[FOLD_COLUMN])) for fit, predict in plan]


def _fit(client: Any, rows, config: PipelineConfig, plan: list[Fit], schema: Schema, weights, what: str):
    """The plan's models fitted on the cluster on `rows`, averaged into one."""
    target, n_classes = config.data.target, len(schema.classes)
    return fit_bag(
        lambda fit: boosting.fit(
            client,
            rows,
            target,
            schema.task,
            {**fit.params, "random_state": fit.seed},
            config,
            n_classes,
            weights,
            what,
        ),
        plan,
        what,
    )


def out_of_fold(client: Any, train, config: PipelineConfig, plan: list[Fit], schema: Schema, weights) -> HeldOut:
    """Each fold of the train split predicted by the plan's models (like the final one) fitted on the cluster on
    the rows the fold plan gives it (see pipeline/modeling/decision.py)."""
    target, n_classes = config.data.target, len(schema.classes)
    folds = _fold_plan(client, train, config)
    truths: list[np.ndarray] = []
    predictions: list[np.ndarray] = []
    for number, (fit_rows, predict_rows) in enumerate(folds, start=1):
        with cluster_faults("counting the classes of a fold", client):
            if int(fit_rows[target].nunique().compute()) < n_classes:
                continue  # a forward fold whose earlier rows lack a class stays unpredicted (as on engine local)
        logger.info("decision: fold {}/{} on the cluster", number, len(folds))
        model = _fit(client, fit_rows, config, plan, schema, weights, "a decision fold's fit")
        predicted, truth = boosting.predict(client, model, predict_rows, target)
        assert truth is not None  # a target was asked for
        predictions.append(predicted)
        truths.append(truth)
    if not predictions:
        raise ConfigError(
            f"decision.folds {config.decision.folds}: no fold of the train split could be predicted; lower "
            "decision.folds, or set decision.threshold to a number and calibration: none"
        )
    truth = np.concatenate(truths).astype("int64")
    return HeldOut(truth, np.concatenate(predictions), describe_plan(config, len(truth)))


def fit(config: PipelineConfig, trials: list[tuple[dict, float]], schema: Schema, preprocess_run: Run) -> Trained:
    target, n_classes = config.data.target, len(schema.classes)
    with dask_client(config.dask) as client:
        train = tables.read_split_on_cluster(preprocess_run, TRAIN_ARTIFACT, schema)
        log_params({**cluster_facts(client, config.dask), "dask.n_partitions": train.npartitions})
        weights = boosting.class_weight_table(client, config, train, target, n_classes)
        plan = fit_plan(config.train.bag, trials, config.train.fixed_params, rows=None)
        count = len(plan)
        log_params({"train.bag": count, "train.ensemble": len(trials)})
        held_out = None
        if config.decision.needs_held_out and schema.is_classification:
            held_out = out_of_fold(client, train, config, plan, schema, weights)
        logger.info(
            "training a {} model on the cluster ({} partitions) {}",
            schema.task,
            train.npartitions,
            describe(trials, plan),
        )
        model = _fit(client, train, config, plan, schema, weights, "train's fit")
        test = tables.read_split_on_cluster(preprocess_run, TEST_ARTIFACT, schema)
        predicted, y_test = boosting.predict(client, model, test, target)
        held_out_rows = tables.spread_rows(test, plots.SHAP_ROWS).drop(columns=[target])
        profile_rows = _profile_sample(client, train, config, preprocess_run).drop(columns=[target])
    return Trained(model, y_test, predicted, held_out_rows, held_out, profile_rows, count)


def _profile_sample(client: Any, train, config: PipelineConfig, preprocess_run: Run) -> pd.DataFrame:
    """A random sample of at most PROFILE_ROWS train rows, gathered here for the reference profile."""
    n_train = int(preprocess_run.data.metrics.get("n_train", 0)) or PROFILE_ROWS
    sampled = (
        train.sample(frac=PROFILE_ROWS / n_train, random_state=config.split.seed) if n_train > PROFILE_ROWS else train
    )
    with cluster_faults("sampling the train split for the reference profile", client):
        return sampled.compute()
