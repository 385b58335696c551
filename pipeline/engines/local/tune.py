"""tune on engine local: the trials fit on the preprocess run's train split, read into this process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import optuna
from loguru import logger
from mlflow.entities import Run

from pipeline.config import PipelineConfig
from pipeline.contract import TRAIN_ARTIFACT
from pipeline.data.schema import Schema
from pipeline.tracking.splits import read_split
from pipeline.tuning.study import make_objective


@contextmanager
def objective(config: PipelineConfig, schema: Schema, preprocess_run: Run) -> Iterator[Callable[[optuna.Trial], float]]:
    train = read_split(preprocess_run, TRAIN_ARTIFACT, schema)
    logger.info("tuning on {} rows", len(train))
    yield make_objective(train, config, schema.task)
