"""train on engine dask: the same model and metrics with xgboost.dask, fitted on the whole train split and scored on
the whole test split on the cluster; the held-out rows for the SHAP plot come from partitions spread over the test
split. Logs params `dask.*` (the cluster) and `dask.n_partitions`."""

from __future__ import annotations

import pandas as pd
from loguru import logger
from mlflow.entities import Run
from xgboost import XGBModel

from pipeline.config import PipelineConfig
from pipeline.contract import TEST_ARTIFACT, TRAIN_ARTIFACT
from pipeline.data.schema import Schema
from pipeline.engines.dask import boosting, tables
from pipeline.engines.dask.cluster import cluster_facts, dask_client
from pipeline.modeling import plots
from pipeline.modeling.metrics import test_metrics
from pipeline.tracking.runs import log_params


def fit(
    config: PipelineConfig, params: dict, schema: Schema, preprocess_run: Run
) -> tuple[XGBModel, dict, pd.DataFrame]:
    with dask_client(config.dask) as client:
        train = tables.read_split_on_cluster(preprocess_run, TRAIN_ARTIFACT, schema)
        log_params({**cluster_facts(client, config.dask), "dask.n_partitions": train.npartitions})
        logger.info(
            "training a {} model on the cluster ({} partitions) with {}", schema.task, train.npartitions, params
        )
        model = boosting.fit(client, train, config.data.target, schema.task, params, config, len(schema.classes))
        test = tables.read_split_on_cluster(preprocess_run, TEST_ARTIFACT, schema)
        predicted, y_test = boosting.predict(client, model, test, config.data.target)
        held_out = tables.spread_rows(test, plots.SHAP_ROWS).drop(columns=[config.data.target])
    return model, test_metrics(y_test, predicted, schema.task), held_out
