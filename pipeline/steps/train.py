"""train: fit the final XGBoost model with the tuned params, decide its operating point, log it, register it as
the challenger.

Reads:  `best_params.json` and `ensemble.json` (the trials to average, tune.ensemble; a tune run from before it
        has none: its best params alone) of the tune run (pinned, else the newest finished one) and
        `data/train.parquet`, `data/test.parquet`, `data/schema.json`, `data/raw_sample.parquet` and
        `data/feature_hook.py` of the preprocess run *that tune run used*.
Writes: metrics test_roc_auc, test_accuracy, test_f1, test_log_loss, test_brier_score (classification; binary
        also test_average_precision), computed on the answers the model gives (its calibration and threshold), or
        test_rmse, test_mae, test_r2 (regression); params the tuned ones, train.class_weight, and (classification)
        decision.calibration, decision.threshold and decision.objective, with the objective's value on the
        held-out predictions as metric held_out_<objective> (pipeline/modeling/decision.py); the model (LoggedModel
        `model`: the pyfunc of modeling/served_model.py taking raw rows and answering with `prediction` and
        `probability_<label>` (or `prediction` alone for regression), with signature and input example
        (`data/raw_sample.parquet`); inside it the XGBoost model, the schema, the decision, the transform
        (data/transform.py) and the feature hook preprocess ran) registered under `registry.model_name`, alias
        `registry.challenger_alias` on the new version, with a description (kind, headline metric, features
        preprocess suspected of leakage and kept, the decision, the runs that made it); tags pipeline.model.name /
        pipeline.model.version; `data/profile.json`, the reference profile of the training inputs and of the
        model's test-split output, also inside the model (pipeline/modeling/profile.py);
        `plots/feature_importance.png` (gain), `plots/calibration.png` (classification)
        and, with the shap extra, `plots/shap_summary.png` (pipeline/modeling/plots.py).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from loguru import logger
from mlflow.entities import Run
from xgboost import XGBModel

from pipeline.config import PipelineConfig
from pipeline.contract import (
    BEST_PARAMS_ARTIFACT,
    DATA_DIGEST_TAG,
    ENSEMBLE_ARTIFACT,
    HEADLINE_METRIC,
    HOOK_ARTIFACT,
    MODEL_ARTIFACT,
    MODEL_CARD_ARTIFACT,
    MODEL_CARD_TAG,
    MODEL_NAME_TAG,
    MODEL_VERSION_TAG,
    PROFILE_ARTIFACT,
    RAW_SAMPLE_ARTIFACT,
    version_run_tag,
)
from pipeline.data.schema import Schema
from pipeline.data.transform import answer as answer_frame
from pipeline.data.transform import decide
from pipeline.engines import Trained, TrainWork, engine_for
from pipeline.modeling import bagging, card, plots, profile
from pipeline.modeling.decision import check_for_task, fit_decision, params_and_metrics
from pipeline.modeling.decision import describe as describe_decision
from pipeline.modeling.metrics import test_metrics
from pipeline.modeling.model import log_served_model
from pipeline.results import StepResult
from pipeline.tracking.lookup import download_artifact, read_json_artifact, read_parquet_artifact
from pipeline.tracking.notes import version_headline
from pipeline.tracking.registry import move_alias, register
from pipeline.tracking.runs import RunContext, StepRun, step_run
from pipeline.tracking.splits import schema_of_run


def _log_model(model: XGBModel, schema: Schema, preprocess_run, decision: dict | None, reference: dict):
    """The model, with the raw sample and the feature hook of the preprocess run that made its training data, its
    decision document and its reference profile."""
    raw_sample = read_parquet_artifact(preprocess_run, RAW_SAMPLE_ARTIFACT)
    with tempfile.TemporaryDirectory(prefix="feature-hook-") as tmp:
        hook_file = download_artifact(preprocess_run, HOOK_ARTIFACT, Path(tmp)) if schema.hook else None
        return log_served_model(model, schema, MODEL_ARTIFACT, raw_sample, hook_file, decision, reference)


def _reference_profile(schema: Schema, trained: Trained, decision: dict | None) -> dict[str, Any]:
    """The training inputs' profile and the model's answer on the test split (modeling/profile.py)."""
    document = schema.to_dict()
    index = pd.RangeIndex(len(trained.test_predicted))
    if schema.is_classification:
        answer = answer_frame(np.asarray(trained.test_predicted), schema.classes, index, decision)
    else:
        answer = pd.DataFrame({"prediction": np.asarray(trained.test_predicted)}, index=index)
    return profile.profile(trained.profile_rows, document, answer)


def _decide(config: PipelineConfig, schema: Schema, trained: Trained) -> tuple[dict | None, dict[str, float]]:
    """The decision document (classification) and the test metrics of the answers the model will give."""
    decision = fit_decision(config.decision, schema.task, trained.held_out) if schema.is_classification else None
    metrics = test_metrics(trained.test_truth, trained.test_predicted, schema.task, decision)
    params: dict[str, Any] = {"train.class_weight": config.train.class_weight}
    if decision is not None:
        decision_params, decision_metrics = params_and_metrics(decision)
        params.update(decision_params)
        metrics.update(decision_metrics)
    if config.train.class_weight != "none" and config.decision.calibration == "none":
        logger.warning(
            "train.class_weight {}: the weights skew the probabilities towards the rare class; set "
            "decision.calibration (isotonic or sigmoid) to serve calibrated ones",
            config.train.class_weight,
        )
    mlflow.log_params(params)
    return decision, metrics


def _curves(schema: Schema, trained: Trained, decision: dict | None) -> list | None:
    """The test split's reliability curves of the probabilities the model serves (classification)."""
    if not schema.is_classification:
        return None
    probabilities, _ = decide(trained.test_predicted, decision)
    return plots.reliability(np.asarray(trained.test_truth).astype("int64"), probabilities, schema.classes)


def _trials(tune_run: Run, params: dict[str, Any]) -> list[tuple[dict[str, Any], float]]:
    """The trials the final model averages, with their weights: ensemble.json's members (tune.ensemble), or the
    best params alone for a tune run from before ensemble.json (it has no metric ensemble_trials)."""
    if "ensemble_trials" not in tune_run.data.metrics:
        return [(params, 1.0)]
    members = read_json_artifact(tune_run, ENSEMBLE_ARTIFACT)["members"]
    return [(member["params"], float(member["weight"])) for member in members]


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
        config = bagging.for_search(config, tune_run)
        check_for_task(config, schema.task)
        work: TrainWork = engine_for(config, "train")
        trials = _trials(tune_run, params)
        trained = work.fit(config, trials, schema, preprocess_run)
        mlflow.log_params(params)
        decision, metrics = _decide(config, schema, trained)
        mlflow.log_metrics(metrics)
        curves = _curves(schema, trained, decision)
        drawer.draw(trained.model, trained.held_out_rows, schema.classes, curves, members=trained.members)
        reference = _reference_profile(schema, trained, decision)
        mlflow.log_dict(reference, PROFILE_ARTIFACT)
        model_info = _log_model(trained.model, schema, preprocess_run, decision, reference)
        drawer.finish()
        headline = HEADLINE_METRIC[schema.task]
        described = version_headline(schema.task, metrics, headline, preprocess_run)  # and suspected leaks
        card_uri = f"runs:/{active.run_id}/{MODEL_CARD_ARTIFACT}"
        described = f"{described} {describe_decision(decision)} Model card: `{card_uri}`.".replace("  ", " ")
        version = _register(active, model_info.model_uri, config, described)
        mlflow.set_tags({MODEL_NAME_TAG: config.registry.model_name, MODEL_VERSION_TAG: version})
        facts = card.CardFacts(
            model_name=config.registry.model_name,
            version=version,
            intended_use=config.registry.description,
            schema=schema,
            preprocess_params=dict(preprocess_run.data.params),
            preprocess_metrics=dict(preprocess_run.data.metrics),
            data_digest=preprocess_run.data.tags.get(DATA_DIGEST_TAG, "?"),
            tuned_params=params,
            test_metrics={k: v for k, v in metrics.items() if k.startswith("test_")},
            headline=headline,
            interval=card.bootstrap_interval(trained.test_truth, trained.test_predicted, schema.task, decision),
            decision=decision,
            runs={"train": active.run_id, **active.upstream},
            trial_weights=[weight for _, weight in trials],
            fits=trained.members,
        )
        mlflow.log_text(card.render(facts), MODEL_CARD_ARTIFACT)
        active.client.set_model_version_tag(config.registry.model_name, version, MODEL_CARD_TAG, card_uri)
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
    lines = [f"Test metrics: {scores or 'none'}."]
    params = run.data.params
    if (threshold := params.get("decision.threshold")) is not None:
        lines.append(
            f"Decision: positive label at probability >= {threshold} ({params.get('decision.objective', '?')}), "
            f"calibration {params.get('decision.calibration', 'none')}, class weights "
            f"{params.get('train.class_weight', 'none')}."
        )
    if int(params.get("train.ensemble", 1)) > 1:
        lines.append(
            f"Model: the weighted average of {params['train.bag']} fits of {params['train.ensemble']} trials' params "
            "(tune.ensemble, the tune run's ensemble.json; train.bag)."
        )
    elif int(params.get("train.bag", 1)) > 1:
        lines.append(f"Model: the average of {params['train.bag']} fits of the tuned params (train.bag).")
    lines.append(
        f"Registered `{tags.get(MODEL_NAME_TAG, '?')}` version {tags.get(MODEL_VERSION_TAG, '?')} as the challenger."
    )
    return lines
