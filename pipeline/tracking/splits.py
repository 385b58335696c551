"""What later steps read of a preprocess run: its schema (`data/schema.json`) and its train and test splits.

Reads: the run's artifacts (through pipeline.tracking.lookup), or a split where the run recorded it (engine dask with
`data.output_uri`: the `pipeline.split_uri.<name>` tag). Writes: nothing but downloads, into temporary folders.
The schema's logic (what a schema is, `conform`) stays in pipeline/data/schema.py, which reads no runs.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.contract import SCHEMA_ARTIFACT, split_uri_tag
from pipeline.data.schema import Schema, conform, read_schema
from pipeline.errors import UpstreamError, first_line
from pipeline.tracking.lookup import download_artifact, read_json_artifact, read_parquet_artifact


def schema_of_run(run) -> Schema:
    """The schema logged by a preprocess run."""
    try:
        return read_schema(read_json_artifact(run, SCHEMA_ARTIFACT))
    except (UpstreamError, TypeError) as exc:
        raise UpstreamError(f"{exc} (made by an older version of this pipeline: rerun preprocess)") from exc


def _recorded_location(run, artifact: str) -> str | None:
    """Where the run wrote the split instead of its artifacts (engine dask with data.output_uri), if it did."""
    return run.data.tags.get(split_uri_tag(Path(artifact).stem)) or None


def _what(run, artifact: str) -> str:
    return f"{artifact} of preprocess run {run.info.run_id}"


def read_split_rows(run, artifact: str) -> pd.DataFrame:
    """A split a preprocess run wrote, as it is: from where the run recorded it (engine dask with
    data.output_uri), else from its artifacts; a Parquet file or a folder of part files either way."""
    location = _recorded_location(run, artifact)
    if not location:
        return read_parquet_artifact(run, artifact)
    try:
        return pd.read_parquet(location)
    except (OSError, ValueError, ImportError) as exc:
        raise UpstreamError(f"{_what(run, artifact)} cannot be read from {location}: {first_line(exc)}") from exc


def read_split(run, artifact: str, schema: Schema) -> pd.DataFrame:
    """A split logged by a preprocess run, typed by its schema (categories exactly as in training), with the
    target as class indexes 0..k-1 for classification (what XGBoost learns)."""
    frame = read_split_rows(run, artifact)
    return conform(frame, schema, _what(run, artifact), with_target=True, encoded=True)


def read_split_on_cluster(run, artifact: str, schema: Schema, **options: Any):
    """engine dask: a split a preprocess run wrote, as a lazy Dask DataFrame typed by the schema (by default the
    target as class indexes; `options` as for `pipeline.data.schema.conform`): from the location the run recorded
    (`data.output_uri`), else from its artifacts, read in place when they are local folders, else downloaded first."""
    from pipeline.engines.dask import tables

    location = _recorded_location(run, artifact) or _artifact_folder(run, artifact)
    return tables.read_split_at(location, _what(run, artifact), schema, **options)


def _artifact_folder(run, artifact: str) -> str:
    from pipeline.engines.dask.tables import local_path

    folder = local_path(f"{run.info.artifact_uri.rstrip('/')}/{artifact}")
    if folder is not None and folder.exists():
        return str(folder)
    download = Path(tempfile.mkdtemp(prefix="dask-split-"))
    atexit.register(shutil.rmtree, download, ignore_errors=True)  # the Dask graph reads it lazily
    return str(download_artifact(run, artifact, download))
