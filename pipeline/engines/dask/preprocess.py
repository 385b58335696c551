"""preprocess on the dask engine: the same splits, schema and artifacts as the local engine, computed on the
cluster and written as partitioned Parquet (`data/train.parquet/` and `data/test.parquet/` are folders of part
files), without collecting the table. Only the target column comes to this process, to settle the labels and
count the rows whose target is empty (left out lazily, `dropna`, with data.missing_target: drop), and a sample of
at most 100,000 training rows for the leakage check (pipeline/data/leakage.py); the test rows also in the train
split are counted on the cluster's row hashes (all of them up to 2,000,000 train rows, a share picked by hash above).

Where the splits go: the run's artifact folder itself when the artifact store is local, `data.output_uri`
(`<output_uri>/<run id>/<split>.parquet`, recorded as tag `pipeline.split_uri.<split>`), or a temporary folder
then logged as artifacts."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import mlflow
import pandas as pd
from loguru import logger

from pipeline.config import PipelineConfig
from pipeline.contract import TEST_ARTIFACT, TRAIN_ARTIFACT, split_uri_tag
from pipeline.data import feature_hook, leakage
from pipeline.data.labels import rows_without_target, settle_labels
from pipeline.data.schema import Schema, build_schema, conform, raw_kind
from pipeline.data.sources import dataset_name, loggable_source, splits_digest
from pipeline.data.splitting import date_ranges, test_split, time_order
from pipeline.engines import Prepared
from pipeline.engines.dask import tables
from pipeline.engines.dask.cluster import cluster_facts, cluster_faults, dask_client
from pipeline.engines.dask.profile import column_facts, row_number_columns
from pipeline.masking import mask_source
from pipeline.tracking.datasets import log_sample_and_hook
from pipeline.tracking.runs import log_params

SPLITS = {"train": TRAIN_ARTIFACT, "test": TEST_ARTIFACT}


class ClusterSplits(NamedTuple):
    """What `prepare` makes: the typed splits (lazy Dask DataFrames, by split name) and what the local engine's
    `pipeline.engines.local.preprocess.Splits` holds besides."""

    splits: dict[str, Any]
    schema: Schema
    report: dict[str, list[str]]
    raw_sample: pd.DataFrame
    leakage: leakage.Leakage  # the leakage check's findings (the test rows also in train: counted when written)
    n_rows_no_target: int = 0
    span_params: dict[str, str] | None = None  # as the local engine's Splits.span_params


def prepare(config: PipelineConfig) -> ClusterSplits:
    """The typed splits (lazy), the schema, the columns report, the raw sample, the leakage check's findings, the
    rows left out for an empty target and the time split's params (see the local engine's
    `pipeline.engines.local.preprocess.prepare`)."""
    data, what = config.data, f"data source {loggable_source(config.data)}"
    table = tables.read_source(data)
    frame = table.drop(columns=data.id_columns)
    logger.info("{}: {} partitions; settling the labels on the target column", what, frame.npartitions)
    target = frame[data.target].compute().reset_index(drop=True)
    if n_rows_no_target := rows_without_target(target, data, what):
        table, target = table.dropna(subset=[data.target]), target.dropna().reset_index(drop=True)
        frame = table.drop(columns=data.id_columns)
    order = time_order(table, config.split)  # method time: the rows' times, the cut-off, checked (else None)
    # Before the split, on rows in the file's order (see profile.row_number_columns).
    row_numbers = row_number_columns(frame, data)
    labels = settle_labels(target, data, config.split, what)
    classification = labels[0] != "regression"
    if config.split.stratify and classification and config.split.method == "random":
        logger.info("split.stratify does not apply on engine dask: rows are held out at random in each partition")
    hook_file = feature_hook.hook_path(config)
    hook = feature_hook.load(hook_file)
    raw_train, raw_test = test_split(frame, config.split, data.target, classification, order)
    raw_sample = tables.sample_rows(raw_train)
    hooked_sample = feature_hook.apply(raw_sample, hook, what)
    hooked_train = tables.apply_hook(raw_train, hook_file, what)
    facts = column_facts(
        hooked_train.drop(columns=[data.target]), hooked_sample.drop(columns=[data.target]), data, what
    )
    schema, report = build_schema(
        raw_sample,
        hooked_sample,
        data,
        labels,
        hook is not None,
        what,
        id_inputs={str(c): raw_kind(table._meta[c]) for c in data.id_columns},
        facts=facts,
        row_numbers=row_numbers,
    )
    # The leakage check on a sample of the training split (one more pass over the data), typed here as the
    # partitions are; data.leakage.action: drop leaves the suspects out of the splits.
    rows, n_train = tables.sample_and_count(raw_train, leakage.SAMPLE_ROWS, config.split.seed)
    typed = conform(feature_hook.apply(rows, hook, what), schema, what, with_target=True, dates=True)
    found = leakage.check(typed, schema, data.leakage, config.split.seed, what, train_rows=n_train)
    schema, report = leakage.guard(found, schema, report, what)
    hooked_test = tables.apply_hook(raw_test, hook_file, what)
    splits = {
        "train": tables.conform_partitions(hooked_train, schema, what, with_target=True, dates=True),
        "test": tables.conform_partitions(hooked_test, schema, what, with_target=True, dates=True),
    }
    ranges = date_ranges([hooked_train, hooked_test], list(schema.datetime_columns))
    span_params = {**(order.params if order else {}), **ranges} or None
    raw_sample = raw_sample.drop(columns=[data.target])
    return ClusterSplits(splits, schema, report, raw_sample, found, n_rows_no_target, span_params)


def write_splits(
    splits: dict[str, Any], config: PipelineConfig, run_id: str, modulus: int = 1
) -> tuple[dict[str, str], dict]:
    """Write both splits in one pass over the data, with their row counts, digests and the hashes of their rows
    that are multiples of `modulus` (`pipeline.data.leakage.hash_modulus`). Returns where each split is (URI) and
    {counts, digests, hashes}, each by split."""
    with tempfile.TemporaryDirectory(prefix="dask-splits-") as tmp:
        locations = {name: _write_location(config, run_id, name, Path(tmp)) for name in splits}
        logger.info("writing the splits to {}", ", ".join(sorted(set(map(str, locations.values())))))
        writes = [splits[name].to_parquet(str(locations[name]), write_index=False, compute=False) for name in splits]
        _, counts, digests, hashes = tables.compute_together(
            writes,
            {name: frame.shape[0] for name, frame in splits.items()},
            {name: tables.digest(frame) for name, frame in splits.items()},
            {name: tables.hashed_rows(frame, modulus) for name, frame in splits.items()},
        )
        uris = {}
        for name, location in locations.items():
            if str(location).startswith(tmp):
                mlflow.log_artifacts(str(location), SPLITS[name])
            elif config.data.output_uri:
                mlflow.set_tag(split_uri_tag(name), str(location))
            uris[name] = str(location) if config.data.output_uri else mlflow.get_artifact_uri(SPLITS[name])
    return uris, {"counts": counts, "digests": digests, "hashes": hashes}


def _write_location(config: PipelineConfig, run_id: str, name: str, tmp: Path) -> Path | str:
    if config.data.output_uri:
        return f"{config.data.output_uri.rstrip('/')}/{run_id}/{name}.parquet"
    if config.dask.scheduler and not _on_this_machine(config.dask.scheduler):
        logger.warning(
            "the workers of {} write the {} split to a folder of this machine's: set data.output_uri to a place "
            "every worker and this process reach (an s3:// prefix, a shared folder)",
            mask_source(config.dask.scheduler),
            name,
        )
    folder = tables.local_path(mlflow.get_artifact_uri(SPLITS[name]))
    if folder is not None:
        folder.parent.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp / f"{name}.parquet"


def _on_this_machine(address: str) -> bool:
    from urllib.parse import urlsplit

    host = urlsplit(address if "://" in address else f"tcp://{address}").hostname or ""
    return host in {"localhost", "127.0.0.1", "::1", socket.gethostname()}


def log_split_inputs(uris: dict[str, str], digests: dict[str, str], name: str) -> None:
    """The splits as MLflow dataset inputs by reference: source URI and digest, never the rows."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    for split, context in (("train", "training"), ("test", "testing")):
        dataset = MetaDataset(  # type: ignore[abstract]  # instantiable: MLflow leaves `profile` optional
            source=resolve_dataset_source(uris[split]), name=f"{name}-{split}", digest=digests[split][-8:]
        )
        mlflow.log_input(dataset, context=context)


def prepare_and_log(config: PipelineConfig, run_id: str) -> Prepared:
    """The splits computed and written on the cluster, the raw sample and the hook logged from here, the splits
    logged as dataset inputs by reference."""
    with dask_client(config.dask) as client, cluster_faults("preprocess", client):
        log_params(cluster_facts(client, config.dask))
        prepared = prepare(config)
        mlflow.log_metric("n_partitions", prepared.splits["train"].npartitions)
        modulus = leakage.hash_modulus(prepared.leakage.train_rows)
        outputs, written = write_splits(prepared.splits, config, run_id, modulus)
    log_sample_and_hook(prepared.raw_sample, config, {})
    log_split_inputs(outputs, written["digests"], dataset_name(config.data))
    counts, digests, hashes = written["counts"], written["digests"], written["hashes"]
    what = f"data source {loggable_source(config.data)}"
    found = leakage.count_hashed_rows(
        prepared.leakage, hashes["train"], hashes["test"], int(counts["test"]), modulus, what
    )
    data_digest = splits_digest(digests["train"], digests["test"])  # digests as the local engine's digest() gives
    return Prepared(
        prepared.schema,
        prepared.report,
        int(counts["train"]),
        int(counts["test"]),
        data_digest,
        prepared.n_rows_no_target,
        span_params=prepared.span_params,
        leakage=found,
    )
