"""train: fit the final XGBoost model with the tuned params, log it, register it as the challenger.

Reads:  `best_params.json` of the tune run (pinned, else the newest finished one) and `data/train.parquet`,
        `data/test.parquet` of the preprocess run *that tune run used*.
Writes: metrics test_roc_auc, test_accuracy, test_f1, test_log_loss; the model (LoggedModel `model`: the pyfunc
        of served_model.py, answering with `prediction` and `probability_<class>`, with signature and input
        example, the XGBoost model inside as `artifacts/xgboost_model`) registered under `registry.model_name`,
        alias `registry.challenger_alias` on the new version; tags pipeline.model.name / pipeline.model.version.
"""

from __future__ import annotations

import time

import mlflow
import numpy as np
import pandas as pd
from loguru import logger
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

from pipeline import interrupts
from pipeline.config import PipelineConfig
from pipeline.data import features_and_target
from pipeline.lineage import MODEL_NAME_TAG, MODEL_VERSION_TAG, read_json_artifact, read_parquet_artifact
from pipeline.model import build_classifier, log_served_model
from pipeline.preprocess import TEST_ARTIFACT, TRAIN_ARTIFACT
from pipeline.results import StepResult
from pipeline.registry import move_alias, register
from pipeline.tracking import RunContext, StepRun, step_run
from pipeline.tune import BEST_PARAMS_ARTIFACT

MODEL_NAME_IN_RUN = "model"


def test_metrics(y_true: pd.Series, probabilities: np.ndarray) -> dict[str, float]:
    """Classification metrics on held-out data (binary: positive-class probability; multiclass: one-vs-rest)."""
    predicted = probabilities.argmax(axis=1)
    binary = probabilities.shape[1] == 2
    scores = probabilities[:, 1] if binary else probabilities
    return {
        "test_roc_auc": float(roc_auc_score(y_true, scores, multi_class="raise" if binary else "ovr")),
        "test_accuracy": float(accuracy_score(y_true, predicted)),
        "test_f1": float(f1_score(y_true, predicted, average="binary" if binary else "macro")),
        "test_log_loss": float(log_loss(y_true, probabilities)),
    }


def _read_inputs(tune_run, preprocess_run) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    return (read_json_artifact(tune_run, BEST_PARAMS_ARTIFACT), read_parquet_artifact(preprocess_run, TRAIN_ARTIFACT),
            read_parquet_artifact(preprocess_run, TEST_ARTIFACT))


def _register(active: StepRun, model_uri: str, config: PipelineConfig) -> str:
    """Register the logged model and point the challenger alias at the new version (both undone on failure)."""
    lineage = {f"pipeline.{step}_run": run_id for step, run_id in {"train": active.run_id, **active.upstream}.items()}
    version = register(active, model_uri, config.registry.model_name, lineage)
    move_alias(active, config.registry.model_name, config.registry.challenger_alias, version)
    return version


def run(
    config: PipelineConfig, *, upstream_run_id: str | None = None, context: RunContext = RunContext()
) -> StepResult:
    started = time.monotonic()
    with step_run("train", config, context) as active:
        tune_run = active.use_upstream(upstream_run_id)
        params, train, test = _read_inputs(tune_run, active.follow(tune_run, "preprocess"))
        x_train, y_train = features_and_target(train, config.data.target)
        x_test, y_test = features_and_target(test, config.data.target)
        logger.info("training on {} rows with {}", len(train), params)
        model = build_classifier(params, config.train.fixed_params, callbacks=[interrupts.StopOnSignal()])
        with interrupts.deferred():
            model.fit(x_train, y_train, verbose=False)
        metrics = test_metrics(y_test, model.predict_proba(x_test))
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        model_info = log_served_model(model, MODEL_NAME_IN_RUN, x_train.head(5))
        version = _register(active, model_info.model_uri, config)
        mlflow.set_tags({MODEL_NAME_TAG: config.registry.model_name, MODEL_VERSION_TAG: version})
        logger.info("test ROC AUC {:.4f}; registered {} version {} as @{}", metrics["test_roc_auc"],
                    config.registry.model_name, version, config.registry.challenger_alias)
    return StepResult("train", active.run_id, active.experiment_id, upstream=dict(active.upstream),
                      outputs={"model_uri": model_info.model_uri}, metrics=metrics,
                      model_name=config.registry.model_name, model_version=version,
                      duration_s=time.monotonic() - started)
