"""predict on engine local: a CSV or Parquet file read in chunks of `chunk_rows`, each scored in this process and
appended to the output, written to a hidden folder beside it and renamed only when complete (no partial file on
failure); the same file logged as artifact `predictions/<name>`."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from loguru import logger

from pipeline.config import PipelineConfig
from pipeline.contract import PREDICTIONS_DIR
from pipeline.errors import DataError, first_line
from pipeline.modeling.profile import Tally
from pipeline.modeling.scoring import score as score_chunk

SUFFIXES = (".csv", ".parquet")


def read_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The input file in chunks of at most `chunk_rows` rows, so memory stays bounded."""
    if path.suffix.lower() == ".parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    else:
        yield from pd.read_csv(path, chunksize=chunk_rows)


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


def check_paths(source: str, target: Path) -> None:
    input_path = Path(source)
    if not input_path.is_file():
        raise DataError(f"predict: input file {input_path} not found")
    for path in (input_path, target):
        if path.suffix.lower() not in SUFFIXES:
            raise DataError(f"predict: {path} must end in .csv or .parquet")
    if not target.parent.is_dir():
        raise DataError(f"predict: output folder {target.parent} does not exist")


def scored_chunks(served, input_path: Path, chunk_rows: int, tally: Tally | None, step: str) -> Iterator[pd.DataFrame]:
    """The input file scored chunk by chunk (counted into `tally` when given); no rows is a DataError."""
    rows, what = 0, f"{step} input {input_path}"
    known = set(served.schema.get("inputs") or {})
    for chunk in read_chunks(input_path, chunk_rows):
        if rows == 0 and (extra := [str(c) for c in chunk.columns if c not in known]):
            logger.warning("{}: columns the model does not use are passed through: {}", what, ", ".join(extra))
        yield score_chunk(served, chunk, what, tally)
        rows += len(chunk)
    if rows == 0:
        raise DataError(f"{what} holds no rows")


def _score_file(served, input_path: Path, partial: Path, chunk_rows: int, tally: Tally | None) -> int:
    writer, rows = _ChunkWriter(partial), 0
    try:
        for scored in scored_chunks(served, input_path, chunk_rows, tally, "predict"):
            writer.write(scored)
            rows += len(scored)
    finally:
        writer.close()
    return rows


def _write_predictions(served, source: Path, target: Path, chunk_rows: int, tally: Tally | None) -> int:
    """Score into a hidden folder beside the target and rename when complete: a full disk or an unwritable folder
    is a one-line error, and the target is never left half-written (the hidden folder is removed)."""
    try:
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".predict-") as tmp:
            partial = Path(tmp) / target.name
            rows = _score_file(served, source, partial, chunk_rows, tally)
            mlflow.log_artifact(str(partial), PREDICTIONS_DIR)
            partial.replace(target)
    except OSError as exc:
        raise DataError(f"predict: cannot write {target}: {exc.strerror or first_line(exc)}") from exc
    return rows


def score(
    config: PipelineConfig,
    served: Any,
    model_uri: str,
    source: str,
    target: Path,
    chunk_rows: int,
    tally: Tally | None = None,
) -> int:
    return _write_predictions(served, Path(source), target, chunk_rows, tally)
