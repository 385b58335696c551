"""What preprocess logs of its data on either engine, besides the splits: the raw sample (the registered model's
input example) and the feature hook as artifacts under `data/`, and where a logged split is served from for MLflow's
dataset inputs."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import mlflow
import pandas as pd

from pipeline.config import PipelineConfig
from pipeline.contract import HOOK_ARTIFACT, RAW_SAMPLE_ARTIFACT
from pipeline.data import feature_hook


def log_sample_and_hook(raw_sample: pd.DataFrame, config: PipelineConfig, splits: dict[str, pd.DataFrame]) -> None:
    """`data/raw_sample.parquet`, `data/feature_hook.py` (when a hook ran) and these splits, in one upload."""
    with tempfile.TemporaryDirectory() as tmp:
        for artifact, frame in {RAW_SAMPLE_ARTIFACT: raw_sample, **splits}.items():
            frame.to_parquet(Path(tmp) / Path(artifact).name, index=False)
        if hook := feature_hook.hook_path(config):
            shutil.copyfile(hook, Path(tmp) / Path(HOOK_ARTIFACT).name)
        mlflow.log_artifacts(tmp, "data")


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
