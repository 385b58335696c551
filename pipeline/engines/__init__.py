"""Engines: where a step's data and XGBoost work runs. `engine` in the config names one (`local`: pandas in the
step's process; `dask`: a Dask cluster, the `dask` extra); `engine_for(config, step)` is the one place it is
chosen, and the step modules hold no engine branch.

Each engine is a package here holding one module per step that does heavy work, named after the step, with the
functions the Protocol of that step below lists (`pipeline/engines/local/train.py` has `fit`, ...), and
`session(config)` in its `__init__.py` (what `main` holds open across its steps: the dask engine's one cluster). A
step's fingerprint covers the code of its own engine module for the configured engine (pipeline/tracking/cache.py),
so editing train's fit leaves preprocess cached. A third engine is one new package with those modules, and its name
in `ENGINES` (which the config's `engine` is checked against).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:  # types only: a step's fingerprint counts what its engine module imports, not this package
    from pathlib import Path

    import optuna
    import pandas as pd
    from mlflow.entities import Run
    from xgboost import XGBModel

    from pipeline.config import PipelineConfig
    from pipeline.data.leakage import Leakage
    from pipeline.data.schema import Schema
    from pipeline.modeling.decision import HeldOut
    from pipeline.modeling.profile import Tally

ENGINES = ("local", "dask")


def engine_module(engine: str, step: str) -> str:
    return f"pipeline.engines.{engine}.{step}"


def engine_for(config: PipelineConfig, step: str) -> Any:
    """The configured engine's module for `step`'s work (see the Protocols below for what it holds); the config
    holds a name of ENGINES (validated)."""
    return importlib.import_module(engine_module(config.engine, step))


def session(config: PipelineConfig) -> AbstractContextManager[Any]:
    """What `main` holds open across its steps on the configured engine (dask: one cluster for every step)."""
    package: ModuleType = importlib.import_module(f"pipeline.engines.{config.engine}")
    return package.session(config)


class Prepared(NamedTuple):
    """What preprocess's work made on either engine: the schema, the columns report, the split sizes and digest."""

    schema: Schema
    report: dict[str, list[str]]
    n_train: int
    n_test: int
    data_digest: str
    n_rows_no_target: int = 0  # rows left out before the split: their target is empty (data.missing_target: drop)
    # split.method time: split.train_end and split.test_start (ISO); data.date_range.<column> per date column
    span_params: dict[str, str] | None = None
    leakage: Leakage | None = None  # the leakage check's scores and suspects, the test rows also in the train split


class PreprocessWork(Protocol):
    def prepare_and_log(self, config: PipelineConfig, run_id: str) -> Prepared:
        """Load the source, split, run the hook, type the columns; log the splits (artifacts, dataset inputs), the
        raw sample and the hook into the open run."""
        ...


class TuneWork(Protocol):
    def objective(
        self, config: PipelineConfig, schema: Schema, preprocess_run: Run
    ) -> AbstractContextManager[Callable[[optuna.Trial], float]]:
        """The trials' objective on the preprocess run's train split (open while the trials run)."""
        ...


class Trained(NamedTuple):
    """What train's work made on either engine."""

    model: XGBModel  # fitted on the whole train split (with `train.class_weight`'s sample weights)
    test_truth: Any  # the test split's target: class indexes, or values (numpy)
    test_predicted: Any  # the model's class probabilities (n x k, uncalibrated) or values on the test split
    held_out_rows: pd.DataFrame  # test-split features for the plots
    held_out: HeldOut | None  # out-of-fold predictions of the train split (modeling/decision.py), when needed
    profile_rows: pd.DataFrame  # train-split model inputs the reference profile is made of (dask: a sample)
    members: int = 1  # the models averaged into `model` (train.bag's fits, over the trials of tune.ensemble)


class TrainWork(Protocol):
    def fit(
        self, config: PipelineConfig, trials: list[tuple[dict, float]], schema: Schema, preprocess_run: Run
    ) -> Trained:
        """The final model fitted on the whole train split (the trials' params averaged by their weights: the
        best trial alone, weight 1, without tune.ensemble), its test predictions, rows for the plots, and the
        held-out predictions `decision` learns from (when `config.decision.needs_held_out`)."""
        ...


class TestSplit(Protocol):
    """evaluate's view of the rows it scores: a preprocess run's test split on the configured engine."""

    raw: bool  # raw rows as the source has them (they go through the model's hook and date parts) or prepared
    what: str  # how errors and logs name them

    def rows(self) -> pd.DataFrame:
        """The rows `mlflow.models.evaluate` scores (the whole split, or a sample of it logged as such)."""
        ...

    def whole_split(self, result: Any, model: Any, schema: Schema, prefix: str) -> Any:
        """The evaluation result with the metrics the gates read: of the whole split (logged with `prefix`)."""
        ...


class EvaluateWork(Protocol):
    def test_split(self, config: PipelineConfig, preprocess_run: Run) -> AbstractContextManager[TestSplit]: ...


class PredictWork(Protocol):
    def check_paths(self, source: str, target: Path) -> None:
        """A one-line DataError for an input or output this engine cannot read or write, before any work."""
        ...

    def score(
        self,
        config: PipelineConfig,
        served: Any,
        model_uri: str,
        source: str,
        target: Path,
        chunk_rows: int,
        tally: Tally | None = None,
    ) -> int:
        """Score `source` into `target` (all or nothing) with the served model, counting the scored rows into
        `tally` (the model's profile bins) when given; the number of rows scored."""
        ...


class MonitorWork(Protocol):
    def check_input(self, source: str) -> None:
        """A one-line DataError for an input this engine cannot read, before any work."""
        ...

    def count(
        self, config: PipelineConfig, served: Any, model_uri: str, source: str, chunk_rows: int, tally: Tally
    ) -> int:
        """Score `source` with the served model and count it into `tally`, writing nothing; the number of rows."""
        ...


# Each step that has heavy work -> the functions its module in every engine package holds.
WORK: dict[str, type] = {
    "preprocess": PreprocessWork,
    "tune": TuneWork,
    "train": TrainWork,
    "evaluate": EvaluateWork,
    "predict": PredictWork,
    "monitor": MonitorWork,
}
