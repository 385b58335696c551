"""train: fit the final XGBoost model with the tuned params, log it, register it as the challenger.

Reads:  `best_params.json` of the tune run (pinned, else the newest finished one) and `data/train.parquet`,
        `data/test.parquet`, `data/schema.json`, `data/raw_sample.parquet` and `data/feature_hook.py` of the
        preprocess run *that tune run used*.
Writes: metrics test_roc_auc, test_accuracy, test_f1, test_log_loss (classification) or test_rmse, test_mae,
        test_r2 (regression); the model (LoggedModel `model`: the pyfunc of modeling/served_model.py taking raw
        rows and answering with `prediction` and `probability_<label>` (or `prediction` alone for regression), with
        signature and input example (`data/raw_sample.parquet`); inside it the XGBoost model, the schema, the
        transform (data/transform.py) and the feature hook preprocess ran) registered under `registry.model_name`,
        alias `registry.challenger_alias` on the new version, with a description (kind, headline metric, features
        preprocess suspected of leakage and kept, the runs that made it); tags pipeline.model.name /
        pipeline.model.version; `plots/feature_importance.png` (gain) and, with the shap extra,
        `plots/shap_summary.png` (pipeline/modeling/plots.py).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
from loguru import logger
from mlflow.entities import Run
from xgboost import XGBModel

from pipeline.config import PipelineConfig
from pipeline.contract import (
    BEST_PARAMS_ARTIFACT,
    HEADLINE_METRIC,
    HOOK_ARTIFACT,
    MODEL_ARTIFACT,
    MODEL_NAME_TAG,
    MODEL_VERSION_TAG,
    RAW_SAMPLE_ARTIFACT,
    version_run_tag,
)
from pipeline.data.schema import Schema
from pipeline.engines import TrainWork, engine_for
from pipeline.modeling import plots
from pipeline.modeling.model import log_served_model
from pipeline.results import StepResult
from pipeline.tracking.lookup import download_artifact, read_json_artifact, read_parquet_artifact
from pipeline.tracking.notes import version_headline
from pipeline.tracking.registry import move_alias, register
from pipeline.tracking.runs import RunContext, StepRun, step_run
from pipeline.tracking.splits import schema_of_run


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
        work: TrainWork = engine_for(config, "train")
        model, metrics, held_out = work.fit(config, params, schema, preprocess_run)
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        drawer.draw(model, held_out, schema.classes)  # drawn aside while the model is logged
        model_info = _log_model(model, schema, preprocess_run)
        drawer.finish()
        headline = HEADLINE_METRIC[schema.task]
        described = version_headline(schema.task, metrics, headline, preprocess_run)  # and suspected leaks
        version = _register(active, model_info.model_uri, config, described)
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
