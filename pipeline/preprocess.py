"""preprocess: load the configured dataset, derive features, settle the task and schema, split train and test.

Reads:  the source named by `data.source` in the config (scikit-learn dataset, CSV or Parquet file or URL).
Writes: artifacts `data/train.parquet`, `data/test.parquet` (features typed by the schema, then the target),
        `data/schema.json` (task, feature columns and kinds, category sets, class labels, and the all-missing
        columns dropped / constant columns found); dataset inputs `<dataset>-train` (context `training`) and
        `<dataset>-test` (context `testing`); param data.task and tag pipeline.task (the task used); metrics
        n_rows, n_features, n_categorical, n_train, n_test.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import mlflow
import pandas as pd
from loguru import logger

from pipeline.cache import source_digest
from pipeline.config import PipelineConfig
from pipeline.data import SKLEARN_PREFIX, digest, load_source, split_frame, tracked_dataset
from pipeline.features import derive_features
from pipeline.lineage import DATA_DIGEST_TAG, TASK_TAG, read_parquet_artifact
from pipeline.results import StepResult
from pipeline.schema import (SCHEMA_ARTIFACT, Schema, build_schema, check_target, conform, report_columns,
                             resolve_task, schema_document)
from pipeline.tracking import RunContext, log_params, step_run

TRAIN_ARTIFACT = "data/train.parquet"
TEST_ARTIFACT = "data/test.parquet"


def read_split(run, artifact: str, schema: Schema) -> pd.DataFrame:
    """A split logged by a preprocess run, typed by its schema (categories exactly as in training)."""
    frame = read_parquet_artifact(run, artifact)
    return conform(frame, schema, f"{artifact} of preprocess run {run.info.run_id}", with_target=True)


def dataset_name(source: str) -> str:
    return source.removeprefix(SKLEARN_PREFIX) if source.startswith(SKLEARN_PREFIX) else Path(source).stem


def prepare(config: PipelineConfig) -> tuple[pd.DataFrame, pd.DataFrame, Schema, dict[str, list[str]]]:
    """Load, derive features, settle task and schema, split: the step's work without any tracking."""
    data, what = config.data, f"data source {config.data.source}"
    frame = load_source(data)
    task = resolve_task(data.task, frame[data.target], what)
    classes = check_target(frame[data.target], task, what)
    if config.features.derived:
        frame = derive_features(frame)
    report = report_columns(frame, data.target, what)
    frame = frame.drop(columns=report["all_missing"])
    schema = build_schema(frame, data.target, task, classes, what)
    train, test = split_frame(conform(frame, schema, what, with_target=True), data.target, config.split,
                              classification=schema.is_classification)
    return train, test, schema, report


def dataset_source(artifact_uri: str):
    """The source to record for a logged split. MLflow resolves local paths and s3:// URIs itself, but not the
    `mlflow-artifacts:/` URIs of a server that proxies artifacts: those are files the tracking server serves over
    HTTP, at the address recorded here (credentials never included)."""
    if not artifact_uri.startswith("mlflow-artifacts:"):
        return artifact_uri
    from urllib.parse import urlsplit

    from mlflow.data.http_dataset_source import HTTPDatasetSource

    server = urlsplit(mlflow.get_tracking_uri())
    host = f"{server.hostname}:{server.port}" if server.port else server.hostname
    path = urlsplit(artifact_uri).path.lstrip("/")
    return HTTPDatasetSource(f"{server.scheme}://{host}{server.path.rstrip('/')}/api/2.0/mlflow-artifacts/artifacts/"
                             f"{path}")


def _log_splits(train: pd.DataFrame, test: pd.DataFrame, config: PipelineConfig) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        for frame, artifact in ((train, TRAIN_ARTIFACT), (test, TEST_ARTIFACT)):
            frame.to_parquet(Path(tmp) / Path(artifact).name, index=False)
        mlflow.log_artifacts(tmp, "data")
    name = dataset_name(config.data.source)
    outputs = {}
    for frame, artifact, split, context in ((train, TRAIN_ARTIFACT, "train", "training"),
                                            (test, TEST_ARTIFACT, "test", "testing")):
        outputs[split] = mlflow.get_artifact_uri(artifact)
        dataset = tracked_dataset(frame, source=dataset_source(outputs[split]), targets=config.data.target,
                                  name=f"{name}-{split}")
        mlflow.log_input(dataset, context=context)
    return outputs


def run(config: PipelineConfig, *, context: RunContext = RunContext()) -> StepResult:
    started = time.monotonic()
    with step_run("preprocess", config, context) as active:
        train, test, schema, report = prepare(config)
        logger.info("{} task: {} rows, {} features ({} categorical) -> train {} / test {}", schema.task,
                    len(train) + len(test), len(schema.features), len(schema.categories), len(train), len(test))
        log_params({"data.source": config.data.source, "data.target": config.data.target, "data.task": schema.task,
                    "split.test_size": config.split.test_size, "split.seed": config.split.seed})
        metrics = {"n_rows": len(train) + len(test), "n_features": len(schema.features),
                   "n_categorical": len(schema.categories), "n_train": len(train), "n_test": len(test)}
        mlflow.log_metrics(metrics)
        mlflow.log_dict(schema_document(schema, report), SCHEMA_ARTIFACT)
        # The source's digest goes into the fingerprint (skip-if-done); the prepared data's digest names tune's
        # study (same data, same study); the task tells downstream steps what to fit.
        active.data_digest = source_digest(config.data) or f"not-cached:{active.run_id}"
        mlflow.set_tags({DATA_DIGEST_TAG: digest(pd.concat([train, test])), TASK_TAG: schema.task})
        outputs = _log_splits(train, test, config)
    return StepResult("preprocess", active.run_id, active.experiment_id, outputs=outputs,
                      metrics={k: float(v) for k, v in metrics.items()}, duration_s=time.monotonic() - started)
