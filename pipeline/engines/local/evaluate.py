"""evaluate on engine local: the preprocess run's whole test split, read into this process and scored by
`mlflow.models.evaluate`, whose metrics the gates read as they are."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from mlflow.entities import Run

from pipeline.config import PipelineConfig
from pipeline.contract import TEST_ARTIFACT
from pipeline.data.schema import Schema
from pipeline.tracking.splits import read_split_rows


class WholeTestSplit:
    raw = False

    def __init__(self, preprocess_run: Run) -> None:
        self.preprocess_run = preprocess_run
        self.what = f"test split of preprocess run {preprocess_run.info.run_id}"

    def rows(self) -> pd.DataFrame:
        return read_split_rows(self.preprocess_run, TEST_ARTIFACT)

    def whole_split(self, result: Any, model: Any, schema: Schema, prefix: str) -> Any:
        return result  # the rows scored are the whole split already


@contextmanager
def test_split(config: PipelineConfig, preprocess_run: Run) -> Iterator[WholeTestSplit]:
    yield WholeTestSplit(preprocess_run)
