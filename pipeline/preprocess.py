"""preprocess: load the configured dataset, derive features, split it into train and test.

Reads:  the source named by `data.source` in the config (scikit-learn dataset, CSV or Parquet file).
Writes: artifacts `data/train.parquet`, `data/test.parquet`; dataset inputs `<dataset>-train` (context
        `training`) and `<dataset>-test` (context `testing`); metrics n_rows, n_features, n_train, n_test.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import mlflow
import pandas as pd
from loguru import logger

from pipeline.config import PipelineConfig
from pipeline.data import (SKLEARN_PREFIX, check_features, check_target, derive_features, digest, load_source,
                           split_frame)
from pipeline.lineage import DATA_DIGEST_TAG
from pipeline.results import StepResult
from pipeline.tracking import RunContext, log_params, step_run

TRAIN_ARTIFACT = "data/train.parquet"
TEST_ARTIFACT = "data/test.parquet"


def dataset_name(source: str) -> str:
    return source.removeprefix(SKLEARN_PREFIX) if source.startswith(SKLEARN_PREFIX) else Path(source).stem


def prepare(config: PipelineConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Load, derive features, check the target and split: the step's work without any tracking."""
    frame = load_source(config.data)
    what = f"data source {config.data.source}"
    check_target(frame[config.data.target], what)
    check_features(frame.drop(columns=[config.data.target]), what)
    if config.features.derived:
        frame = derive_features(frame)
    return split_frame(frame, config.data.target, config.split)


def _log_splits(train: pd.DataFrame, test: pd.DataFrame, config: PipelineConfig) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        for frame, artifact in ((train, TRAIN_ARTIFACT), (test, TEST_ARTIFACT)):
            frame.to_parquet(Path(tmp) / Path(artifact).name, index=False)
        mlflow.log_artifacts(tmp, "data")
    name = dataset_name(config.data.source)
    outputs = {}
    for frame, artifact, split, context in ((train, TRAIN_ARTIFACT, "train", "training"),
                                            (test, TEST_ARTIFACT, "test", "testing")):
        outputs[split] = mlflow.get_artifact_uri(artifact)
        dataset = mlflow.data.from_pandas(frame, source=outputs[split], targets=config.data.target,
                                          name=f"{name}-{split}")
        mlflow.log_input(dataset, context=context)
    return outputs


def run(config: PipelineConfig, *, context: RunContext = RunContext()) -> StepResult:
    started = time.monotonic()
    with step_run("preprocess", config, context) as active:
        train, test = prepare(config)
        n_features = train.shape[1] - 1
        logger.info("{} rows, {} features -> train {} / test {}", len(train) + len(test), n_features,
                    len(train), len(test))
        log_params({"data.source": config.data.source, "data.target": config.data.target,
                    "split.test_size": config.split.test_size, "split.seed": config.split.seed})
        metrics = {"n_rows": len(train) + len(test), "n_features": n_features,
                   "n_train": len(train), "n_test": len(test)}
        mlflow.log_metrics(metrics)
        active.data_digest = digest(pd.concat([train, test]))
        mlflow.set_tag(DATA_DIGEST_TAG, active.data_digest)  # names tune's study: same data, same study
        outputs = _log_splits(train, test, config)
    return StepResult("preprocess", active.run_id, active.experiment_id, outputs=outputs,
                      metrics={k: float(v) for k, v in metrics.items()}, duration_s=time.monotonic() - started)
