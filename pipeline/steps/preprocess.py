"""preprocess: load the configured dataset, settle the task and labels, split, run the feature hook, type the columns.

Reads:  the source named by `data.source` in the config (scikit-learn dataset, CSV or Parquet file or URL, SQL);
        the feature hook file `features.hook`.
Writes: artifacts `data/train.parquet`, `data/test.parquet` (the model inputs typed by the schema, then the target
        with its original labels), `data/schema.json` (raw input columns, date columns and their parts, model input
        columns and kinds, category sets, class labels in model order and the positive class, and the columns
        dropped: all missing, constant, id-like), `data/raw_sample.parquet` (5 raw training rows without the
        target: the registered model's input example), `data/feature_hook.py` (the hook that ran); dataset inputs
        `<dataset>-train` (context `training`) and `<dataset>-test` (context `testing`); param data.task and tag
        pipeline.task (the task used); params data.classes (JSON list: class index i is the i-th
        label), data.positive_class, data.datetime_columns; metrics n_rows, n_features, n_categorical, n_train,
        n_test.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

import mlflow
import pandas as pd
from loguru import logger
from mlflow.entities import Run

from pipeline.config import PipelineConfig
from pipeline.contract import (
    DATA_DIGEST_TAG,
    HOOK_ARTIFACT,
    RAW_SAMPLE_ARTIFACT,
    SCHEMA_ARTIFACT,
    TASK_TAG,
    TEST_ARTIFACT,
    TRAIN_ARTIFACT,
)
from pipeline.data import feature_hook
from pipeline.data.labels import settle_labels
from pipeline.data.schema import Schema, build_schema, conform, raw_kind, schema_document
from pipeline.data.sources import (
    dataset_name,
    digest,
    load_source,
    loggable_source,
    split_frame,
    splits_digest,
    tracked_dataset,
)
from pipeline.results import StepResult
from pipeline.tracking.cache import source_digest
from pipeline.tracking.notes import number
from pipeline.tracking.runs import RunContext, log_params, step_run

RAW_SAMPLE_ROWS = 5


class Prepared(NamedTuple):
    train: pd.DataFrame
    test: pd.DataFrame
    schema: Schema
    report: dict[str, list[str]]
    raw_sample: pd.DataFrame


def prepare(config: PipelineConfig) -> Prepared:
    """Load, settle the labels, split, run the hook, build the schema on the training split and type both splits:
    the step's work without any tracking."""
    data, what = config.data, f"data source {loggable_source(config.data)}"
    table = load_source(data, keep_ids=True)
    frame = table.drop(columns=data.id_columns)
    labels = settle_labels(frame[data.target], data, config.split, what)
    hook = feature_hook.load(feature_hook.hook_path(config))
    raw_train, raw_test = split_frame(frame, data.target, config.split, classification=labels[0] != "regression")
    hooked_train = feature_hook.apply(raw_train, hook, what)
    schema, report = build_schema(
        raw_train,
        hooked_train,
        data,
        labels,
        hook is not None,
        what,
        id_inputs={str(c): raw_kind(table[c]) for c in data.id_columns},
    )
    train = conform(hooked_train, schema, what, with_target=True, dates=True)
    test = conform(feature_hook.apply(raw_test, hook, what), schema, what, with_target=True, dates=True)
    return Prepared(train, test, schema, report, raw_train.drop(columns=[data.target]).head(RAW_SAMPLE_ROWS))


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
    return HTTPDatasetSource(
        f"{server.scheme}://{host}{server.path.rstrip('/')}/api/2.0/mlflow-artifacts/artifacts/{path}"
    )


class Outcome(NamedTuple):
    """What either engine made: the schema, the columns report, the split sizes and digest, where the splits are."""

    schema: Schema
    report: dict[str, list[str]]
    n_train: int
    n_test: int
    data_digest: str
    outputs: dict[str, str]


def _log_sample_and_hook(raw_sample: pd.DataFrame, config: PipelineConfig, splits: dict[str, pd.DataFrame]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for artifact, frame in {RAW_SAMPLE_ARTIFACT: raw_sample, **splits}.items():
            frame.to_parquet(Path(tmp) / Path(artifact).name, index=False)
        if hook := feature_hook.hook_path(config):
            shutil.copyfile(hook, Path(tmp) / Path(HOOK_ARTIFACT).name)
        mlflow.log_artifacts(tmp, "data")


def _run_local(config: PipelineConfig) -> Outcome:
    prepared = prepare(config)
    train, test = prepared.train, prepared.test
    _log_sample_and_hook(prepared.raw_sample, config, {TRAIN_ARTIFACT: train, TEST_ARTIFACT: test})
    name = dataset_name(config.data)
    outputs = {}
    for frame, artifact, split, context in (
        (train, TRAIN_ARTIFACT, "train", "training"),
        (test, TEST_ARTIFACT, "test", "testing"),
    ):
        outputs[split] = mlflow.get_artifact_uri(artifact)
        dataset = tracked_dataset(
            frame, source=dataset_source(outputs[split]), targets=config.data.target, name=f"{name}-{split}"
        )
        mlflow.log_input(dataset, context=context)
    data_digest = splits_digest(digest(train), digest(test))
    return Outcome(prepared.schema, prepared.report, len(train), len(test), data_digest, outputs)


def _run_on_cluster(config: PipelineConfig, run_id: str) -> Outcome:
    from pipeline.dask_engine import preprocess as on_cluster
    from pipeline.dask_engine.cluster import cluster_facts, cluster_faults, dask_client

    with dask_client(config.dask) as client, cluster_faults("preprocess", client):
        log_params(cluster_facts(client, config.dask))
        splits, schema, report, raw_sample = on_cluster.prepare(config)
        mlflow.log_metric("n_partitions", splits["train"].npartitions)
        outputs, written = on_cluster.write_splits(splits, config, run_id)
    _log_sample_and_hook(raw_sample, config, {})
    on_cluster.log_split_inputs(outputs, written["digests"], dataset_name(config.data))
    counts, digests = written["counts"], written["digests"]
    data_digest = splits_digest(digests["train"], digests["test"])  # digests as the local engine's digest() gives
    return Outcome(schema, report, int(counts["train"]), int(counts["test"]), data_digest, outputs)


def run(config: PipelineConfig, *, context: RunContext = RunContext()) -> StepResult:
    with step_run("preprocess", config, context) as active:
        done = _run_on_cluster(config, active.run_id) if config.engine == "dask" else _run_local(config)
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
                "split.test_size": config.split.test_size,
                "split.seed": config.split.seed,
            }
        )
        metrics: dict[str, float] = {
            "n_rows": done.n_train + done.n_test,
            "n_features": len(schema.features),
            "n_categorical": len(schema.categories),
            "n_train": done.n_train,
            "n_test": done.n_test,
        }
        mlflow.log_metrics(metrics)
        mlflow.log_dict(schema_document(schema, done.report), SCHEMA_ARTIFACT)
        # The source's digest goes into the fingerprint (skip-if-done); the prepared data's digest names tune's
        # study (same data, same study); the task tells downstream steps what to fit.
        active.data_digest = source_digest(config.data) or f"not-cached:{active.run_id}"
        mlflow.set_tags({DATA_DIGEST_TAG: done.data_digest, TASK_TAG: schema.task})
    return active.result(metrics={k: float(v) for k, v in metrics.items()})


def note(run: Run) -> list[str]:
    """The run's Description: rows, split sizes, features and the label order."""
    params, metrics = run.data.params, run.data.metrics
    lines = [
        f"{params.get('data.task', '?')} task on {number(metrics.get('n_rows', 0))} rows of "
        f"`{params.get('data.source', '?')}`: {number(metrics.get('n_train', 0))} train / "
        f"{number(metrics.get('n_test', 0))} test, {number(metrics.get('n_features', 0))} features "
        f"({number(metrics.get('n_categorical', 0))} categorical)."
    ]
    if params.get("data.classes"):
        lines.append(f"Labels in class order: {params['data.classes']}; positive: {params.get('data.positive_class')}.")
    return lines
