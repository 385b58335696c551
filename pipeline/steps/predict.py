"""predict: score a CSV or Parquet file with a registered model version, in chunks.

Reads:  the input file (raw rows as the source table has them, without the target); the model
        `registry.model_name` at `--alias` (default the champion) or `--version`, whose own code derives the
        features (columns missing or mistyped are named; unseen categories are scored as missing).
Writes: the output file (.csv or .parquet): the input columns plus the model's answer as the served model gives
        it (`prediction` in the target's labels and `probability_<label>` per class, or `prediction` for
        regression), written to a temporary file and renamed only when complete (no partial file on failure); the
        same file as artifact `predictions/<name>`; tags pipeline.model.name / pipeline.model.version; metric
        n_rows.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from loguru import logger
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PyFuncModel

from pipeline.config import PipelineConfig
from pipeline.contract import MODEL_NAME_TAG, MODEL_VERSION_TAG, PREDICTIONS_DIR
from pipeline.errors import DataError, UpstreamError, first_line
from pipeline.results import StepResult
from pipeline.tracking.notes import number
from pipeline.tracking.registry import alias_version
from pipeline.tracking.runs import RunContext, log_params, step_run

SUFFIXES = (".csv", ".parquet")
DEFAULT_CHUNK_ROWS = 100_000


def read_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The input file in chunks of at most `chunk_rows` rows, so memory stays bounded."""
    if path.suffix.lower() == ".parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    else:
        yield from pd.read_csv(path, chunksize=chunk_rows)


def score(served, chunk: pd.DataFrame, what: str) -> pd.DataFrame:
    """The chunk followed by the model's answer (`prediction` and one `probability_<label>` column per class, or
    `prediction`), computed by the registered model's own code on the raw rows. MLflow's signature enforcement is
    left to clients sending JSON: here the model's transform types the columns itself, with errors that name the
    column and the value."""
    try:
        answer, features = served.score(chunk)
    except served.input_error as exc:
        raise DataError(f"{what} {exc}" if str(exc).startswith("lacks") else f"{what}: {exc}") from exc
    for name, examples in served.transform.unseen_categories(chunk, features, served.schema).items():
        logger.warning(
            "{}: column '{}' has value(s) not seen in training (e.g. {}), scored as missing",
            what,
            name,
            ", ".join(map(repr, examples)),
        )
    return pd.concat([chunk.reset_index(drop=True), answer.reset_index(drop=True)], axis=1)


def served_model(model: PyFuncModel, name: str, version: str):
    """The registered model's Python object (served_model.ServedXGBoostModel), which carries its schema."""
    try:
        served = model.unwrap_python_model()
    except MlflowException as exc:
        raise UpstreamError(f"predict: {name} version {version} is not a model of this pipeline") from exc
    if not hasattr(served, "score"):
        raise UpstreamError(
            f"predict: {name} version {version} was logged by an older version of this pipeline "
            "(it takes model inputs, not raw rows): retrain it"
        )
    return served


class _ChunkWriter:
    """Appends scored chunks to a CSV or Parquet file."""

    def __init__(self, path: Path) -> None:
        self._path, self._parquet, self._first = path, path.suffix.lower() == ".parquet", True
        self._writer: pq.ParquetWriter | None = None

    def write(self, frame: pd.DataFrame) -> None:
        if self._parquet:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            self._writer = self._writer or pq.ParquetWriter(self._path, table.schema)
            self._writer.write_table(table)
        else:
            frame.to_csv(self._path, mode="w" if self._first else "a", header=self._first, index=False)
        self._first = False

    def close(self) -> None:
        if self._writer:
            self._writer.close()


def _resolve_version(config: PipelineConfig, alias: str | None, version: str | None) -> str:
    name = config.registry.model_name
    if version:
        return version
    alias = alias or config.registry.champion_alias
    found = alias_version(mlflow.MlflowClient(), name, alias)
    if not found:
        raise UpstreamError(
            f"predict: model '{name}' has no version with alias @{alias} (run evaluate, or pass --version)"
        )
    return found


def _check_paths(input_path: Path, output_path: Path, engine: str) -> None:
    if engine == "dask":
        if output_path.suffix.lower() != ".parquet":
            raise DataError(
                f"predict: engine dask writes a Parquet folder: name the output *.parquet, not {output_path}"
            )
        if not output_path.parent.is_dir():
            raise DataError(f"predict: output folder {output_path.parent} does not exist")
        return  # the input may be a folder, a glob or an s3:// URI: read on the cluster
    if not input_path.is_file():
        raise DataError(f"predict: input file {input_path} not found")
    for path in (input_path, output_path):
        if path.suffix.lower() not in SUFFIXES:
            raise DataError(f"predict: {path} must end in .csv or .parquet")
    if not output_path.parent.is_dir():
        raise DataError(f"predict: output folder {output_path.parent} does not exist")


def _score_file(served, input_path: Path, partial: Path, chunk_rows: int) -> int:
    writer, rows, what = _ChunkWriter(partial), 0, f"predict input {input_path}"
    known = set(served.schema.get("inputs") or {})
    try:
        for chunk in read_chunks(input_path, chunk_rows):
            if rows == 0 and (extra := [str(c) for c in chunk.columns if c not in known]):
                logger.warning("{}: columns the model does not use are passed through: {}", what, ", ".join(extra))
            writer.write(score(served, chunk, what))
            rows += len(chunk)
    finally:
        writer.close()
    if rows == 0:
        raise DataError(f"predict input {input_path} holds no rows")
    return rows


def _write_predictions(served, source: Path, target: Path, chunk_rows: int) -> int:
    """Score into a hidden folder beside the target and rename when complete: a full disk or an unwritable folder
    is a one-line error, and the target is never left half-written (the hidden folder is removed)."""
    try:
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".predict-") as tmp:
            partial = Path(tmp) / target.name
            rows = _score_file(served, source, partial, chunk_rows)
            mlflow.log_artifact(str(partial), PREDICTIONS_DIR)
            partial.replace(target)
    except OSError as exc:
        raise DataError(f"predict: cannot write {target}: {exc.strerror or first_line(exc)}") from exc
    return rows


def _predict_on_cluster(config: PipelineConfig, served, model_uri: str, source: str, target: Path) -> int:
    """engine dask: partition by partition on the cluster, into the Parquet folder `target` (not copied to the
    run's artifacts: its location is the param predict.output)."""
    from pipeline.dask_engine.cluster import cluster_facts, cluster_faults, dask_client
    from pipeline.dask_engine.scoring import score_to_parquet

    with dask_client(config.dask) as client, cluster_faults("predict", client):
        log_params(cluster_facts(client, config.dask))
        try:
            return score_to_parquet(served, model_uri, source, target, local_cluster=not config.dask.scheduler)
        except OSError as exc:
            raise DataError(f"predict: cannot write {target}: {exc.strerror or first_line(exc)}") from exc


def run(
    config: PipelineConfig,
    *,
    input_path: str,
    output_path: str,
    alias: str | None = None,
    version: str | None = None,
    chunk_rows: int | None = None,
    context: RunContext = RunContext(),
) -> StepResult:
    source, target = Path(input_path), Path(output_path)
    with step_run("predict", config, context) as active:
        _check_paths(source, target, config.engine)
        name = config.registry.model_name
        version = _resolve_version(config, alias, version)
        model_uri = f"models:/{name}/{version}"
        mlflow.set_tags({MODEL_NAME_TAG: name, MODEL_VERSION_TAG: version})
        log_params({"predict.output": str(target.resolve())})  # where the predictions went: the result's output
        served = served_model(mlflow.pyfunc.load_model(model_uri), name, version)
        if config.engine == "dask":
            rows = _predict_on_cluster(config, served, model_uri, input_path, target)
        else:
            rows = _write_predictions(served, source, target, chunk_rows or DEFAULT_CHUNK_ROWS)
        mlflow.log_metric("n_rows", rows)
        logger.info("scored {} rows of {} with {} version {} -> {}", rows, source, name, version, target)
    return active.result(metrics={"n_rows": float(rows)}, model_name=name, model_version=version)


def note(run: Run) -> list[str]:
    """The run's Description: how many rows, scored by which version."""
    tags, metrics = run.data.tags, run.data.metrics
    return [
        f"Scored {number(metrics.get('n_rows', 0))} rows with `{tags.get(MODEL_NAME_TAG, '?')}` version "
        f"{tags.get(MODEL_VERSION_TAG, '?')}."
    ]
