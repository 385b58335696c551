"""train on engine local: the final model fitted on the whole train split in this process (`train.bag` models of
the tuned params, shared out among the trials of tune.ensemble, averaged into one) and its predictions of the test
split (the held-out rows for the plots are the test split's features); with `decision` learnt from data, first
the out-of-fold predictions of the train split (`decision.folds` models of the same plan of fits). Logs params
`train.bag` (the models averaged) and `train.ensemble` (the trials they come from)."""

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
from pipeline.modeling.bagging import Fit, describe, fit_bag, fit_plan
from pipeline.modeling.decision import HeldOut, describe_plan, fold_plan, sample_weights
from pipeline.modeling.model import build_model, usable_cores
from pipeline.tracking.splits import read_split


def _fit(config: PipelineConfig, plan: list[Fit], task: str, x: pd.DataFrame, y: np.ndarray, weights) -> XGBModel:
    """The plan's models fitted on (x, y), averaged into one (modeling/bagging.py)."""

    def fit_one(fit: Fit) -> XGBModel:
        model = build_model(
            task,
            {**fit.params, "random_state": fit.seed},
            config.train.fixed_params,
            callbacks=[interrupts.stop_on_signal()],
        )
        with interrupts.deferred():
            return model.fit(x, y, sample_weight=weights, verbose=False)

    return fit_bag(fit_one, plan)


def out_of_fold(config: PipelineConfig, plan: list[Fit], schema: Schema, x: pd.DataFrame, y: pd.Series) -> HeldOut:
    """Each fold of the train split predicted by the plan's models (like the final one) fitted on the other
    folds."""
    truth = y.to_numpy()
    probabilities = np.full((len(truth), len(schema.classes)), np.nan)
    folds = fold_plan(config, truth)
    for number, (fit_rows, predict_rows) in enumerate(folds, start=1):
        logger.info(
            "decision: fold {}/{} ({} rows fit, {} predicted)", number, len(folds), len(fit_rows), len(predict_rows)
        )
        weights = sample_weights(config, truth[fit_rows], len(schema.classes))
        model = _fit(config, plan, schema.task, x.iloc[fit_rows], truth[fit_rows], weights)
        probabilities[predict_rows] = model.predict_proba(x.iloc[predict_rows])
    predicted = ~np.isnan(probabilities[:, 0])  # forward folds leave the first rows unpredicted
    return HeldOut(truth[predicted], probabilities[predicted], describe_plan(config, int(predicted.sum())))


def fit(config: PipelineConfig, trials: list[tuple[dict, float]], schema: Schema, preprocess_run: Run) -> Trained:
    # XGBoost on the CPU gives the same model for the same thread count: recorded, so `reproduce` can use it again.
    threads = int(config.train.fixed_params.get("n_jobs") or usable_cores())
    mlflow.log_param("train.threads", threads)
    trials = [({**params, "n_jobs": threads}, weight) for params, weight in trials]
    x, y = features_and_target(read_split(preprocess_run, TRAIN_ARTIFACT, schema), config.data.target)
    x_test, y_test = features_and_target(read_split(preprocess_run, TEST_ARTIFACT, schema), config.data.target)
    plan = fit_plan(config.train.bag, trials, config.train.fixed_params, len(x))
    count = len(plan)
    mlflow.log_params({"train.bag": count, "train.ensemble": len(trials)})
    needs_held_out = config.decision.needs_held_out and schema.is_classification
    held_out = out_of_fold(config, plan, schema, x, y) if needs_held_out else None
    logger.info("training a {} model on {} rows {}", schema.task, len(x), describe(trials, plan))
    weights = sample_weights(config, y.to_numpy(), len(schema.classes))
    model = _fit(config, plan, schema.task, x, y.to_numpy(), weights)
    predicted = model.predict(x_test) if schema.task == "regression" else model.predict_proba(x_test)
    return Trained(model, y_test.to_numpy(), predicted, x_test, held_out, x, count)
