"""monitor on engine local: the input file read in chunks of `chunk_rows`, each scored in this process and
counted into the model's profile bins; nothing is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.engines.local.predict import SUFFIXES, scored_chunks
from pipeline.errors import DataError
from pipeline.modeling.profile import Tally


def check_input(source: str) -> None:
    path = Path(source)
    if not path.is_file():
        raise DataError(f"monitor: input file {path} not found")
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(f"monitor: {path} must end in .csv or .parquet")


def count(config: PipelineConfig, served: Any, model_uri: str, source: str, chunk_rows: int, tally: Tally) -> int:
    """Score the file chunk by chunk into `tally`; the number of rows."""
    return sum(len(scored) for scored in scored_chunks(served, Path(source), chunk_rows, tally, "monitor"))
