"""train: fit the final XGBoost model with the tuned params, log it, register it as the challenger.

Reads:  `best_params.json` of the tune run (pinned, else the newest finished one) and `data/train.parquet`,
        `data/test.parquet`, `data/schema.json`, `data/raw_sample.parquet` and `data/feature_hook.py` of the
        preprocess run *that tune run used*.
Writes: metrics test_roc_auc, test_accuracy, test_f1, test_log_loss (classification) or test_rmse, test_mae,
        test_r2 (regression); the model (LoggedModel `model`: the pyfunc of modeling/served_model.py taking raw
        rows and answering with `prediction` and `probability_<label>` (or `prediction` alone for regression), with
        signature and input example (`data/raw_sample.parquet`); inside it the XGBoost model, the schema, the
        transform (data/transform.py) and the feature hook preprocess ran) registered under `registry.model_name`,
        alias `registry.challenger_alias` on the new version, with a description (kind, headline metric, the runs
        that made it); tags pipeline.model.name / pipeline.model.version; `plots/feature_importance.png` (gain) and,
        with the shap extra, `plots/shap_summary.png` (pipeline/modeling/plots.py).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from loguru import logger
from mlflow.entities import Run
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)
from xgboost import XGBModel

from pipeline import interrupts
from pipeline.config import PipelineConfig
from pipeline.contract import (
    BEST_PARAMS_ARTIFACT,
    HEADLINE_METRIC,
    HOOK_ARTIFACT,
    MODEL_ARTIFACT,
    MODEL_NAME_TAG,
    MODEL_VERSION_TAG,
    RAW_SAMPLE_ARTIFACT,
    TEST_ARTIFACT,
    TRAIN_ARTIFACT,
    version_run_tag,
)
from pipeline.data.schema import Schema, read_split, schema_of_run
from pipeline.data.sources import features_and_target
from pipeline.modeling import plots
from pipeline.modeling.model import build_model, log_served_model
from pipeline.results import StepResult
from pipeline.tracking.lookup import download_artifact, read_json_artifact, read_parquet_artifact
from pipeline.tracking.notes import version_headline
from pipeline.tracking.registry import move_alias, register
from pipeline.tracking.runs import RunContext, StepRun, log_params, step_run


def test_metrics(y_test, predicted: np.ndarray, task: str) -> dict[str, float]:
    """Held-out metrics of the task from the model's predictions (values, or class probabilities): regression
    RMSE, MAE, R2; classification ROC AUC, accuracy, F1, log loss."""
    if task == "regression":
        return {
            "test_rmse": float(root_mean_squared_error(y_test, predicted)),
            "test_mae": float(mean_absolute_error(y_test, predicted)),
            "test_r2": float(r2_score(y_test, predicted)),
        }
    return classification_metrics(y_test, predicted)


def classification_metrics(y_true: pd.Series, probabilities: np.ndarray) -> dict[str, float]:
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


def _fit_local(
    config: PipelineConfig, params: dict, schema: Schema, preprocess_run
) -> tuple[XGBModel, dict, pd.DataFrame]:
    train = read_split(preprocess_run, TRAIN_ARTIFACT, schema)
    x_test, y_test = features_and_target(read_split(preprocess_run, TEST_ARTIFACT, schema), config.data.target)
    logger.info("training a {} model on {} rows with {}", schema.task, len(train), params)
    model = build_model(schema.task, params, config.train.fixed_params, callbacks=[interrupts.stop_on_signal()])
    with interrupts.deferred():
        model.fit(*features_and_target(train, config.data.target), verbose=False)
    predicted = model.predict(x_test) if schema.task == "regression" else model.predict_proba(x_test)
    return model, test_metrics(y_test, predicted, schema.task), x_test


def _fit_on_cluster(
    config: PipelineConfig, params: dict, schema: Schema, preprocess_run
) -> tuple[XGBModel, dict, pd.DataFrame]:
    """The same model and metrics with xgboost.dask: fitted on the whole train split, scored on the whole test
    split, on the cluster; the held-out rows for the SHAP plot come from partitions spread over the test split."""
    from pipeline.dask_engine import boosting, tables
    from pipeline.dask_engine.cluster import cluster_facts, dask_client

    with dask_client(config.dask) as client:
        train = tables.read_split(preprocess_run, TRAIN_ARTIFACT, schema)
        log_params({**cluster_facts(client, config.dask), "dask.n_partitions": train.npartitions})
        logger.info(
            "training a {} model on the cluster ({} partitions) with {}", schema.task, train.npartitions, params
        )
        model = boosting.fit(client, train, config.data.target, schema.task, params, config, len(schema.classes))
        test = tables.read_split(preprocess_run, TEST_ARTIFACT, schema)
        predicted, y_test = boosting.predict(client, model, test, config.data.target)
        held_out = tables.spread_rows(test, plots.SHAP_ROWS).drop(columns=[config.data.target])
    return model, test_metrics(y_test, predicted, schema.task), held_out


def _log_model(model: XGBModel, schema: Schema, preprocess_run):
    """The model, with the raw sample and the feature hook of the preprocess run that made its training data."""
    raw_sample = read_parquet_artifact(preprocess_run, RAW_SAMPLE_ARTIFACT)
    with tempfile.TemporaryDirectory(prefix="feature-hook-") as tmp:
        hook_file = download_artifact(preprocess_run, HOOK_ARTIFACT, Path(tmp)) if schema.hook else None
        return log_served_model(model, schema, MODEL_ARTIFACT, raw_sample, hook_file)


def _register(active: StepRun, model_uri: str, config: PipelineConfig, headline: str) -> str:
    """Register the logged model and point the challenger alias at the new version (both undone on failure)."""
    lineage = {version_run_tag(step): run_id for step, run_id in {"train": active.run_id, **active.upstream}.items()}
    version = register(active, model_uri, config.registry.model_name, lineage, headline)
    move_alias(active, config.registry.model_name, config.registry.challenger_alias, version)
    return version


def run(
    config: PipelineConfig, *, upstream_run_id: str | None = None, context: RunContext = RunContext()
) -> StepResult:
    with step_run("train", config, context) as active, plots.Drawer() as drawer:
        tune_run = active.use_upstream(upstream_run_id)
        preprocess_run = active.follow(tune_run, "preprocess")
        params, schema = read_json_artifact(tune_run, BEST_PARAMS_ARTIFACT), schema_of_run(preprocess_run)
        fit = _fit_on_cluster if config.engine == "dask" else _fit_local
        model, metrics, held_out = fit(config, params, schema, preprocess_run)
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        drawer.draw(model, held_out, schema.classes)  # drawn aside while the model is logged
        model_info = _log_model(model, schema, preprocess_run)
        drawer.finish()
        headline = HEADLINE_METRIC[schema.task]
        version = _register(active, model_info.model_uri, config, version_headline(schema.task, metrics, headline))
        mlflow.set_tags({MODEL_NAME_TAG: config.registry.model_name, MODEL_VERSION_TAG: version})
        logger.info(
            "{} {:.4f}; registered {} version {} as @{}",
            headline,
            metrics[headline],
            config.registry.model_name,
            version,
            config.registry.challenger_alias,
        )
    return active.result(metrics=metrics, model_name=config.registry.model_name, model_version=version)


def note(run: Run) -> list[str]:
    """The run's Description: the test metrics and the version it registered."""
    tags, metrics = run.data.tags, run.data.metrics
    scores = ", ".join(f"{key} {value:.4f}" for key, value in sorted(metrics.items()) if key.startswith("test_"))
    return [
        f"Test metrics: {scores or 'none'}.",
        f"Registered `{tags.get(MODEL_NAME_TAG, '?')}` version {tags.get(MODEL_VERSION_TAG, '?')} as the challenger.",
    ]
