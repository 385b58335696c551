"""preprocess: load the configured dataset, settle the task and labels, split, run the feature hook, type the columns.

Reads:  the source named by `data.source` in the config (scikit-learn dataset, CSV or Parquet file or URL, SQL);
        the feature hook file `features.hook`.
Writes: artifacts `data/train.parquet`, `data/test.parquet` (the model inputs typed by the schema, then the target
        with its original labels), `data/schema.json` (raw input columns, date columns and their parts, model input
        columns and kinds, category sets, class labels in model order and the positive class, and the columns
        dropped: all missing, constant, id-like, row numbers), `data/raw_sample.parquet` (5 raw training rows
        without the target: the registered model's input example), `data/feature_hook.py` (the hook that ran);
        dataset inputs `<dataset>-train` (context `training`) and `<dataset>-test` (context `testing`); param
        data.task and tag pipeline.task (the task used); params data.classes (JSON list: class index i is the i-th
        label), data.positive_class, data.datetime_columns, data.row_numbers (the row-number columns dropped);
        metrics n_rows, n_features, n_categorical, n_train, n_test, n_rows_no_target (rows left out before the
        split: their target is empty). The leakage guards (pipeline/data/leakage.py): `data/leakage.json` (each
        feature's score alone, the threshold, the action, the sample size, the test rows also in the train split;
        logged on the FAILED run too when data.leakage.action: fail refuses), metrics n_suspect_features and
        n_test_rows_in_train, params data.suspect_features and data.leakage.action (when a feature is suspect).
"""

from __future__ import annotations

import json

import mlflow
from loguru import logger
from mlflow.entities import Run

from pipeline.config import PipelineConfig
from pipeline.contract import (
    DATA_DIGEST_TAG,
    LEAKAGE_ACTION_PARAM,
    LEAKAGE_ARTIFACT,
    SCHEMA_ARTIFACT,
    SOURCE_DIGEST_TAG,
    SUSPECT_FEATURES_PARAM,
    TASK_TAG,
)
from pipeline.data.leakage import Leakage, LeakageRefused
from pipeline.data.schema import schema_document
from pipeline.data.sources import loggable_source
from pipeline.engines import PreprocessWork, engine_for
from pipeline.results import StepResult
from pipeline.tracking.notes import number
from pipeline.tracking.reuse import input_digest
from pipeline.tracking.runs import RunContext, log_params, step_run


def run(config: PipelineConfig, *, context: RunContext = RunContext()) -> StepResult:
    with step_run("preprocess", config, context) as active:
        work: PreprocessWork = engine_for(config, "preprocess")
        try:
            done = work.prepare_and_log(config, active.run_id)
        except LeakageRefused as refused:  # data.leakage.action: fail; the scores show why
            mlflow.log_metrics(_log_leakage(refused.found))
            raise
        schema = done.schema
        logger.info(
            "{} task: {} rows, {} features ({} categorical) -> train {} / test {}",
            schema.task,
            done.n_train + done.n_test,
            len(schema.features),
            len(schema.categories),
            done.n_train,
            done.n_test,
        )
        # The label mapping: class index i of the model is the i-th label (also in data/schema.json).
        classes = json.dumps(schema.classes)[:6000] if schema.classes else None
        log_params(
            {
                "data.source": loggable_source(config.data),
                "data.target": config.data.target,
                "data.task": schema.task,
                "data.classes": classes,
                "data.positive_class": schema.positive_class,
                "data.datetime_columns": ", ".join(schema.datetime_columns) or None,
                "data.row_numbers": ", ".join(done.report.get("row_number", [])) or None,
                "split.test_size": config.split.test_size,
                "split.seed": config.split.seed,
                "split.method": config.split.method,
                **(done.span_params or {}),  # split.train_end, split.test_start (time), data.date_range.<column>
            }
        )
        metrics: dict[str, float] = {
            "n_rows": done.n_train + done.n_test,
            "n_features": len(schema.features),
            "n_categorical": len(schema.categories),
            "n_train": done.n_train,
            "n_test": done.n_test,
            "n_rows_no_target": done.n_rows_no_target,
            **_log_leakage(done.leakage),
        }
        mlflow.log_metrics(metrics)
        mlflow.log_dict(schema_document(schema, done.report), SCHEMA_ARTIFACT)
        # The source's digest goes into the fingerprint (skip-if-done); the prepared data's digest names tune's
        # study (same data, same study); the task tells downstream steps what to fit.
        source_digest = input_digest("preprocess", config, {})
        active.data_digest = source_digest or f"not-cached:{active.run_id}"
        mlflow.set_tags({DATA_DIGEST_TAG: done.data_digest, TASK_TAG: schema.task})
        if source_digest:  # what `reproduce` checks the source against (a URL's content cannot be known)
            mlflow.set_tag(SOURCE_DIGEST_TAG, source_digest)
    return active.result(metrics={k: float(v) for k, v in metrics.items()})


def _log_leakage(found: Leakage | None) -> dict[str, float]:
    """`data/leakage.json` and, when some feature is suspect, params naming them and the action; its metrics."""
    if found is None:
        return {}
    mlflow.log_dict(found.document(), LEAKAGE_ARTIFACT)
    if found.suspects:
        log_params({SUSPECT_FEATURES_PARAM: ", ".join(found.suspects)[:6000], LEAKAGE_ACTION_PARAM: found.action})
    metrics = {"n_suspect_features": float(len(found.suspects))}
    if found.n_test_rows_in_train is not None:
        metrics["n_test_rows_in_train"] = float(found.n_test_rows_in_train)
    return metrics


def note(run: Run) -> list[str]:
    """The run's Description: rows, split sizes, features, the label order, and what was left out: rows without a
    target, row-number columns."""
    params, metrics = run.data.params, run.data.metrics
    lines = [
        f"{params.get('data.task', '?')} task on {number(metrics.get('n_rows', 0))} rows of "
        f"`{params.get('data.source', '?')}`: {number(metrics.get('n_train', 0))} train / "
        f"{number(metrics.get('n_test', 0))} test, {number(metrics.get('n_features', 0))} features "
        f"({number(metrics.get('n_categorical', 0))} categorical)."
    ]
    if params.get("data.classes"):
        lines.append(f"Labels in class order: {params['data.classes']}; positive: {params.get('data.positive_class')}.")
    if params.get("split.method") == "time":
        lines.append(
            f"Split in time order: train up to {params.get('split.train_end')}, test from "
            f"{params.get('split.test_start')}."
        )
    if no_target := metrics.get("n_rows_no_target"):
        share = no_target / (no_target + metrics.get("n_rows", 0))
        lines.append(
            f"Left out {number(no_target)} rows ({share:.1%}) whose target `{params.get('data.target', '?')}` is "
            "empty (data.missing_target: drop)."
        )
    if params.get("data.row_numbers"):
        lines.append(
            f"Dropped as row numbers (unique integers growing with the file's row order, which give away the target "
            f"of a sorted table): {params['data.row_numbers']}; list them in data.features to keep them."
        )
    if suspects := params.get(SUSPECT_FEATURES_PARAM):
        if params.get(LEAKAGE_ACTION_PARAM) == "drop":
            lines.append(f"Dropped as suspected leakage (each alone predicts the target almost perfectly): {suspects}.")
        else:
            lines.append(
                f"**Suspected leakage**, kept: {suspects} alone predict(s) the target almost perfectly (scores in "
                f"`{LEAKAGE_ARTIFACT}`; data.leakage.action: drop or fail acts on it)."
            )
    if in_train := metrics.get("n_test_rows_in_train"):
        lines.append(f"{number(in_train)} test rows also appear in the train split (the same features and target).")
    return lines
