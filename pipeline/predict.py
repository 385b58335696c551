"""predict: score a CSV or Parquet file with a registered model version, in chunks.

Reads:  the input file; the model `registry.model_name` at `--alias` (default the champion) or `--version`, and the
        schema inside it (columns missing or mistyped are named; unseen categories are scored as missing).
Writes: the output file (.csv or .parquet): the input columns plus the model's answer as the served model gives
        it (`prediction` and `probability_<class>` per class, or `prediction` for regression), written to a temporary file and renamed only
        when complete (no partial file on failure); the same file as artifact `predictions/<name>`; tags pipeline.model.name / pipeline.model.version; metric n_rows.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from loguru import logger
from mlflow.exceptions import MlflowException

from pipeline.config import PipelineConfig
from pipeline.errors import DataError, UpstreamError, first_line
from pipeline.features import derive_features
from pipeline.lineage import MODEL_NAME_TAG, MODEL_VERSION_TAG
from pipeline.model import raw_values
from pipeline.registry import alias_version
from pipeline.results import StepResult
from pipeline.schema import Schema, conform
from pipeline.tracking import RunContext, step_run

SUFFIXES = (".csv", ".parquet")
DEFAULT_CHUNK_ROWS = 100_000


def read_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The input file in chunks of at most `chunk_rows` rows, so memory stays bounded."""
    if path.suffix.lower() == ".parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    else:
        yield from pd.read_csv(path, chunksize=chunk_rows)


def score(model: mlflow.pyfunc.PyFuncModel, frame: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """The frame followed by the model's answer, as the served model gives it: `prediction` and one
    `probability_<class>` column per class (classification) or `prediction` (regression). `features` are the
    frame's feature columns conformed to the schema; they reach the model as a client sends them."""
    answer = model.predict(raw_values(features))
    return pd.concat([frame.reset_index(drop=True), answer.reset_index(drop=True)], axis=1)


def served_schema(model: mlflow.pyfunc.PyFuncModel, name: str, version: str) -> Schema:
    """The schema inside a registered model (see served_model.py)."""
    try:
        return Schema.from_dict(model.unwrap_python_model().schema)
    except (MlflowException, AttributeError) as exc:
        raise UpstreamError(f"predict: {name} version {version} carries no schema (logged by an older version of "
                            "this pipeline): retrain it") from exc


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
        raise UpstreamError(f"predict: model '{name}' has no version with alias @{alias} (run evaluate, or pass "
                            "--version)")
    return found


def _check_paths(input_path: Path, output_path: Path) -> None:
    if not input_path.is_file():
        raise DataError(f"predict: input file {input_path} not found")
    for path in (input_path, output_path):
        if path.suffix.lower() not in SUFFIXES:
            raise DataError(f"predict: {path} must end in .csv or .parquet")
    if not output_path.parent.is_dir():
        raise DataError(f"predict: output folder {output_path.parent} does not exist")


def _score_file(config: PipelineConfig, model, schema: Schema, input_path: Path, partial: Path,
                chunk_rows: int) -> int:
    writer, rows, what = _ChunkWriter(partial), 0, f"predict input {input_path}"
    try:
        for chunk in read_chunks(input_path, chunk_rows):
            chunk = derive_features(chunk) if config.features.derived else chunk
            features = conform(chunk, schema, what)
            if rows == 0 and (extra := [str(c) for c in chunk.columns if c not in schema.columns]):
                logger.warning("{}: columns the model does not use are passed through: {}", what, ", ".join(extra))
            writer.write(score(model, chunk, features))
            rows += len(chunk)
    finally:
        writer.close()
    if rows == 0:
        raise DataError(f"predict input {input_path} holds no rows")
    return rows


def _write_predictions(config: PipelineConfig, model, schema: Schema, source: Path, target: Path,
                       chunk_rows: int) -> int:
    """Score into a hidden folder beside the target and rename when complete: a full disk or an unwritable folder
    is a one-line error, and the target is never left half-written (the hidden folder is removed)."""
    try:
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".predict-") as tmp:
            partial = Path(tmp) / target.name
            rows = _score_file(config, model, schema, source, partial, chunk_rows)
            mlflow.log_artifact(str(partial), "predictions")
            partial.replace(target)
    except OSError as exc:
        raise DataError(f"predict: cannot write {target}: {exc.strerror or first_line(exc)}") from exc
    return rows


def run(config: PipelineConfig, *, input_path: str, output_path: str, alias: str | None = None,
        version: str | None = None, chunk_rows: int | None = None, context: RunContext = RunContext()) -> StepResult:
    started = time.monotonic()
    source, target = Path(input_path), Path(output_path)
    with step_run("predict", config, context) as active:
        _check_paths(source, target)
        name = config.registry.model_name
        version = _resolve_version(config, alias, version)
        model_uri = f"models:/{name}/{version}"
        mlflow.set_tags({MODEL_NAME_TAG: name, MODEL_VERSION_TAG: version})
        model = mlflow.pyfunc.load_model(model_uri)
        schema = served_schema(model, name, version)
        rows = _write_predictions(config, model, schema, source, target, chunk_rows or DEFAULT_CHUNK_ROWS)
        mlflow.log_metric("n_rows", rows)
        logger.info("scored {} rows of {} with {} version {} -> {}", rows, source, name, version, target)
    return StepResult("predict", active.run_id, active.experiment_id, outputs={"predictions": str(target)},
                      metrics={"n_rows": float(rows)}, model_name=name, model_version=version,
                      duration_s=time.monotonic() - started)
