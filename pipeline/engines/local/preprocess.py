"""preprocess on engine local: the whole table in this process, split with pipeline.data.splitting, typed by the
schema built on the training split.

Writes (into the open run): `data/train.parquet`, `data/test.parquet`, `data/raw_sample.parquet`,
`data/feature_hook.py` (when a hook ran) and the splits as dataset inputs `<dataset>-train` / `<dataset>-test`.
"""

from __future__ import annotations

from typing import NamedTuple

import mlflow
import pandas as pd

from pipeline.config import PipelineConfig
from pipeline.contract import TEST_ARTIFACT, TRAIN_ARTIFACT
from pipeline.data import feature_hook, leakage
from pipeline.data.labels import rows_without_target, settle_labels
from pipeline.data.leakage import Leakage
from pipeline.data.schema import Schema, build_schema, conform, raw_kind, row_number_columns
from pipeline.data.sources import dataset_name, load_source, loggable_source, splits_digest, tracked_dataset
from pipeline.data.splitting import date_ranges, test_split, time_order
from pipeline.engines import Prepared
from pipeline.tracking.datasets import dataset_source, log_sample_and_hook

RAW_SAMPLE_ROWS = 5


class Splits(NamedTuple):
    train: pd.DataFrame
    test: pd.DataFrame
    schema: Schema
    report: dict[str, list[str]]
    raw_sample: pd.DataFrame
    leakage: Leakage  # the leakage check's scores and suspects, test rows also in train, the splits' digests
    n_rows_no_target: int = 0  # rows left out before the split: their target is empty (data.missing_target: drop)
    # split.method time: the time split's bounds (TimeOrder.params); each date column's range (date_ranges)
    span_params: dict[str, str] | None = None


def prepare(config: PipelineConfig) -> Splits:
    """Load, settle the labels, split, run the hook, build the schema on the training split and type both splits:
    the step's work without any tracking."""
    data, what = config.data, f"data source {loggable_source(config.data)}"
    table = load_source(data, keep_ids=True)
    if n_rows_no_target := rows_without_target(table[data.target], data, what):
        table = table[table[data.target].notna()].reset_index(drop=True)
    frame = table.drop(columns=data.id_columns)
    order = time_order(table, config.split)  # method time: the rows' times, the cut-off, checked (else None)
    # On the table in its file order: the split shuffles the rows, and a row number is known by growing with them.
    row_numbers = row_number_columns(frame, data)
    labels = settle_labels(frame[data.target], data, config.split, what)
    hook = feature_hook.load(feature_hook.hook_path(config))
    raw_train, raw_test = test_split(frame, config.split, data.target, labels[0] != "regression", order)
    hooked_train = feature_hook.apply(raw_train, hook, what)
    schema, report = build_schema(
        raw_train,
        hooked_train,
        data,
        labels,
        hook is not None,
        what,
        id_inputs={str(c): raw_kind(table[c]) for c in data.id_columns},
        row_numbers=row_numbers,
    )
    train = conform(hooked_train, schema, what, with_target=True, dates=True)
    # The leakage check on the typed training split; data.leakage.action: drop leaves the suspects out from here on.
    found = leakage.check(train, schema, data.leakage, config.split.seed, what)
    schema, report = leakage.guard(found, schema, report, what)
    train = train.drop(columns=found.dropped) if found.dropped else train
    hooked_test = feature_hook.apply(raw_test, hook, what)
    test = conform(hooked_test, schema, what, with_target=True, dates=True)
    found = leakage.count_test_rows_in_train(found, train, test, what)
    raw_sample = raw_train.drop(columns=[data.target]).head(RAW_SAMPLE_ROWS)
    ranges = date_ranges([hooked_train, hooked_test], list(schema.datetime_columns))
    span_params = {**(order.params if order else {}), **ranges} or None
    return Splits(train, test, schema, report, raw_sample, found, n_rows_no_target, span_params)


def prepare_and_log(config: PipelineConfig, run_id: str) -> Prepared:
    prepared = prepare(config)
    train, test = prepared.train, prepared.test
    log_sample_and_hook(prepared.raw_sample, config, {TRAIN_ARTIFACT: train, TEST_ARTIFACT: test})
    name = dataset_name(config.data)
    for frame, artifact, split, context in (
        (train, TRAIN_ARTIFACT, "train", "training"),
        (test, TEST_ARTIFACT, "test", "testing"),
    ):
        source = dataset_source(mlflow.get_artifact_uri(artifact))
        mlflow.log_input(
            tracked_dataset(frame, source=source, targets=config.data.target, name=f"{name}-{split}"), context=context
        )
    # The splits' digests from the row hashes the leakage check compared them by: each split hashed once.
    assert prepared.leakage.split_digests is not None, "count_test_rows_in_train sets them"
    data_digest = splits_digest(*prepared.leakage.split_digests)
    return Prepared(
        prepared.schema,
        prepared.report,
        len(train),
        len(test),
        data_digest,
        prepared.n_rows_no_target,
        span_params=prepared.span_params,
        leakage=prepared.leakage,
    )
