"""What later steps read of a preprocess run: its schema (`data/schema.json`) and its train and test splits.

Reads: the run's artifacts (through pipeline.tracking.lookup), or a split where the run recorded it (engine dask with
`data.output_uri`: the `pipeline.split_uri.<name>` tag). Writes: nothing but downloads, into temporary folders.
engine dask reads a split as a Dask DataFrame with `pipeline.engines.dask.tables.read_split_on_cluster`.
The schema's logic (what a schema is, `conform`) stays in pipeline/data/schema.py, which reads no runs.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.contract import SCHEMA_ARTIFACT, split_uri_tag
from pipeline.data.schema import Schema, conform, read_schema
from pipeline.errors import UpstreamError, first_line
from pipeline.tracking.lookup import read_json_artifact, read_parquet_artifact


def schema_of_run(run) -> Schema:
    """The schema logged by a preprocess run."""
    try:
        return read_schema(read_json_artifact(run, SCHEMA_ARTIFACT))
    except (UpstreamError, TypeError) as exc:
        raise UpstreamError(f"{exc} (made by an older version of this pipeline: rerun preprocess)") from exc


def recorded_location(run, artifact: str) -> str | None:
    """Where the run wrote the split instead of its artifacts (engine dask with data.output_uri), if it did."""
    return run.data.tags.get(split_uri_tag(Path(artifact).stem)) or None


def split_name(run, artifact: str) -> str:
    return f"{artifact} of preprocess run {run.info.run_id}"


def read_split_rows(run, artifact: str) -> pd.DataFrame:
    """A split a preprocess run wrote, as it is: from where the run recorded it (engine dask with
    data.output_uri), else from its artifacts; a Parquet file or a folder of part files either way."""
    location = recorded_location(run, artifact)
    if not location:
        return read_parquet_artifact(run, artifact)
    try:
        return pd.read_parquet(location)
    except (OSError, ValueError, ImportError) as exc:
        raise UpstreamError(f"{split_name(run, artifact)} cannot be read from {location}: {first_line(exc)}") from exc


def read_split(run, artifact: str, schema: Schema) -> pd.DataFrame:
    """A split logged by a preprocess run, typed by its schema (categories exactly as in training), with the
    target as class indexes 0..k-1 for classification (what XGBoost learns)."""
    frame = read_split_rows(run, artifact)
    return conform(frame, schema, split_name(run, artifact), with_target=True, encoded=True)
