"""train on engine local: the final model fitted on the whole train split in this process (`train.bag` models of
the tuned params averaged into one) and its predictions of the test split (the held-out rows for the plots are the
test split's features); with `decision` learnt from data, first the out-of-fold predictions of the train split
(`decision.folds` models of the same params, each a bag of the same size). Logs param `train.bag` (the models
averaged)."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from loguru import logger
from mlflow.entities import Run
from xgboost import XGBModel

from pipeline import interrupts
from pipeline.config import PipelineConfig
from pipeline.contract import TEST_ARTIFACT, TRAIN_ARTIFACT
from pipeline.data.schema import Schema
from pipeline.data.sources import features_and_target
from pipeline.engines import Trained
from pipeline.modeling.bagging import fit_bag, member_seeds
from pipeline.modeling.decision import HeldOut, describe_plan, fold_plan, sample_weights
from pipeline.modeling.model import build_model, usable_cores
from pipeline.tracking.splits import read_split


def _fit(
    config: PipelineConfig, params: dict, task: str, x: pd.DataFrame, y: np.ndarray, weights, seeds: list[int]
) -> XGBModel:
    """The bag of `seeds` models of `params` fitted on (x, y), averaged into one (modeling/bagging.py)."""

    def fit_one(seed: int) -> XGBModel:
        model = build_model(
            task, {**params, "random_state": seed}, config.train.fixed_params, callbacks=[interrupts.stop_on_signal()]
        )
        with interrupts.deferred():
            return model.fit(x, y, sample_weight=weights, verbose=False)

    return fit_bag(fit_one, seeds)


def out_of_fold(
    config: PipelineConfig, params: dict, schema: Schema, x: pd.DataFrame, y: pd.Series, seeds: list[int]
) -> HeldOut:
    """Each fold of the train split predicted by a model (a bag of `seeds`, like the final one) of the same params
    fitted on the other folds."""
    truth = y.to_numpy()
    probabilities = np.full((len(truth), len(schema.classes)), np.nan)
    plan = fold_plan(config, truth)
    for number, (fit_rows, predict_rows) in enumerate(plan, start=1):
        logger.info(
            "decision: fold {}/{} ({} rows fit, {} predicted)", number, len(plan), len(fit_rows), len(predict_rows)
        )
        weights = sample_weights(config, truth[fit_rows], len(schema.classes))
        model = _fit(config, params, schema.task, x.iloc[fit_rows], truth[fit_rows], weights, seeds)
        probabilities[predict_rows] = model.predict_proba(x.iloc[predict_rows])
    predicted = ~np.isnan(probabilities[:, 0])  # forward folds leave the first rows unpredicted
    return HeldOut(truth[predicted], probabilities[predicted], describe_plan(config, int(predicted.sum())))


def fit(config: PipelineConfig, params: dict, schema: Schema, preprocess_run: Run) -> Trained:
    # XGBoost on the CPU gives the same model for the same thread count: recorded, so `reproduce` can use it again.
    threads = int(config.train.fixed_params.get("n_jobs") or usable_cores())
    mlflow.log_param("train.threads", threads)
    params = {**params, "n_jobs": threads}
    x, y = features_and_target(read_split(preprocess_run, TRAIN_ARTIFACT, schema), config.data.target)
    x_test, y_test = features_and_target(read_split(preprocess_run, TEST_ARTIFACT, schema), config.data.target)
    seeds = member_seeds(config.train.bag, params, config.train.fixed_params, len(x))
    count = len(seeds)
    mlflow.log_param("train.bag", count)
    needs_held_out = config.decision.needs_held_out and schema.is_classification
    held_out = out_of_fold(config, params, schema, x, y, seeds) if needs_held_out else None
    bagged = f", averaging {count} models (train.bag)" if count > 1 else ""
    logger.info("training a {} model on {} rows with {}{}", schema.task, len(x), params, bagged)
    weights = sample_weights(config, y.to_numpy(), len(schema.classes))
    model = _fit(config, params, schema.task, x, y.to_numpy(), weights, seeds)
    predicted = model.predict(x_test) if schema.task == "regression" else model.predict_proba(x_test)
    return Trained(model, y_test.to_numpy(), predicted, x_test, held_out, x, count)
