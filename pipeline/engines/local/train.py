"""train on engine local: the final model fitted on the whole train split in this process, scored on the test
split (the held-out rows for the plots are the test split's features)."""

from __future__ import annotations

import pandas as pd
from loguru import logger
from mlflow.entities import Run
from xgboost import XGBModel

from pipeline import interrupts
from pipeline.config import PipelineConfig
from pipeline.contract import TEST_ARTIFACT, TRAIN_ARTIFACT
from pipeline.data.schema import Schema
from pipeline.data.sources import features_and_target
from pipeline.modeling.metrics import test_metrics
from pipeline.modeling.model import build_model
from pipeline.tracking.splits import read_split


def fit(
    config: PipelineConfig, params: dict, schema: Schema, preprocess_run: Run
) -> tuple[XGBModel, dict, pd.DataFrame]:
    train = read_split(preprocess_run, TRAIN_ARTIFACT, schema)
    x_test, y_test = features_and_target(read_split(preprocess_run, TEST_ARTIFACT, schema), config.data.target)
    logger.info("training a {} model on {} rows with {}", schema.task, len(train), params)
    model = build_model(schema.task, params, config.train.fixed_params, callbacks=[interrupts.stop_on_signal()])
    with interrupts.deferred():
        model.fit(*features_and_target(train, config.data.target), verbose=False)
    predicted = model.predict(x_test) if schema.task == "regression" else model.predict_proba(x_test)
    return model, test_metrics(y_test, predicted, schema.task), x_test
