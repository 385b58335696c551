"""evaluate on the dask engine: the gates' metrics on the whole test split, scored on the cluster, and a bounded
sample of the split for `mlflow.models.evaluate` (its plots and artifacts).

The whole-split metrics carry the names and definitions of MLflow's default evaluator (its own metric functions
compute them here, from the predictions gathered to this process: 8 bytes per row and class), so a gate such as
`roc_auc` or `f1_score` means the same on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from loguru import logger
from mlflow.entities import Run
from sklearn.metrics import roc_auc_score

from pipeline.config import PipelineConfig
from pipeline.contract import TEST_ARTIFACT
from pipeline.data.schema import Schema
from pipeline.data.transform import decide
from pipeline.engines.dask import boosting, tables
from pipeline.engines.dask.cluster import dask_client
from pipeline.modeling.metrics import probability_metrics
from pipeline.tracking.splits import schema_of_run


@dataclass(frozen=True)
class Scores:
    """Metrics as `pipeline.modeling.promotion.decide` reads them."""

    metrics: dict[str, float]


def evaluator_metrics(
    schema: Schema, truth: np.ndarray, predicted: np.ndarray, decision: Any = None
) -> dict[str, float]:
    """MLflow's default-evaluator metrics of the task from class indexes (or values) and the XGBoost model's
    predictions, through the version's `decision` (calibration, threshold) as the served model answers, plus the
    probability metrics evaluate adds (`brier_score`, `average_precision`)."""
    from mlflow.models.evaluation.evaluators.classifier import (
        _get_binary_classifier_metrics,
        _get_multiclass_classifier_metrics,
    )
    from mlflow.models.evaluation.evaluators.regressor import _get_regressor_metrics

    if not schema.is_classification:
        metrics = _get_regressor_metrics(truth, predicted, None)
    else:
        labels = np.asarray(schema.classes)
        ordered = sorted(schema.classes)
        probabilities, chosen = decide(predicted, decision)
        proba = probabilities[:, [schema.classes.index(label) for label in ordered]]
        y_true, y_pred = labels[truth.astype(int)], labels[chosen]
        if schema.task == "binary":
            # The positive label last, as MLflow's own evaluator orders them (its counts assume it).
            with_positive_last = [label for label in ordered if label != schema.positive_class]
            with_positive_last.append(schema.positive_class)
            metrics = _get_binary_classifier_metrics(
                y_true=y_true, y_pred=y_pred, y_proba=proba, labels=with_positive_last, pos_label=schema.positive_class
            )
            positive = schema.classes.index(schema.positive_class)
            metrics["roc_auc"] = roc_auc_score(y_true == schema.positive_class, probabilities[:, positive])
        else:
            metrics = _get_multiclass_classifier_metrics(y_true=y_true, y_pred=y_pred, y_proba=proba, labels=ordered)
        metrics.update(probability_metrics(truth.astype("int64"), probabilities))
    return {name: float(value) for name, value in metrics.items()}


def _xgboost_model(scored: Any) -> tuple[Any, Any]:
    """The XGBoost estimator inside the evaluation model (`modeling.model.evaluation_model`), and its decision."""
    inner = scored._model_impl.xgb_model
    return getattr(inner, "model", inner), getattr(inner, "decision", None)  # a LabelledClassifier wraps classifiers


class ClusterEvaluation:
    """The test split of a preprocess run on the cluster: its sample, and a model's metrics on all of it."""

    def __init__(self, client: Any, config: PipelineConfig, preprocess_run: Any) -> None:
        self.client, self.config, self.preprocess_run = client, config, preprocess_run

    def sample(self, schema: Schema) -> pd.DataFrame:
        """About `evaluate.sample_rows` rows of the test split drawn at random, as the local engine reads it."""
        test = tables.read_split_on_cluster(self.preprocess_run, TEST_ARTIFACT, schema, encoded=False)
        n_test = int(self.preprocess_run.data.metrics.get("n_test", 0)) or int(test.shape[0].compute())
        wanted = self.config.evaluate.sample_rows
        if n_test > wanted:
            test = test.sample(frac=wanted / n_test, random_state=self.config.split.seed)
            logger.info(
                "mlflow.models.evaluate runs on about {} of {} test rows (evaluate.sample_rows)", wanted, n_test
            )
        return test.compute().reset_index(drop=True)

    def full_metrics(self, scored: Any, schema: Schema) -> dict[str, float]:
        """The model's metrics on the whole test split, typed by the model's own schema."""
        test = tables.read_split_on_cluster(self.preprocess_run, TEST_ARTIFACT, schema)
        model, decision = _xgboost_model(scored)
        predicted, truth = boosting.predict(self.client, model, test, schema.target)
        assert truth is not None  # a target was asked for
        return evaluator_metrics(schema, truth, predicted, decision)


class ClusterTestSplit:
    """What evaluate scores on the cluster: `mlflow.models.evaluate` on a sample (metric `evaluate_sample_rows`),
    and the gates' metrics on the whole split (logged as `full_test_<metric>`)."""

    raw = False

    def __init__(self, cluster: ClusterEvaluation) -> None:
        self.cluster = cluster
        self.what = f"sample of the test split of preprocess run {cluster.preprocess_run.info.run_id}"

    def rows(self) -> pd.DataFrame:
        sample = self.cluster.sample(schema_of_run(self.cluster.preprocess_run))
        mlflow.log_metric("evaluate_sample_rows", len(sample))
        return sample

    def whole_split(self, result: Any, model: Any, schema: Schema, prefix: str) -> Any:
        """The sample's metrics overlaid by those of the whole test split, which the gates then use."""
        full = self.cluster.full_metrics(model, schema)
        mlflow.log_metrics({f"{prefix}{key}": value for key, value in full.items()})
        return Scores({**{k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}, **full})


@contextmanager
def test_split(config: PipelineConfig, preprocess_run: Run) -> Iterator[ClusterTestSplit]:
    with dask_client(config.dask) as client:
        yield ClusterTestSplit(ClusterEvaluation(client, config, preprocess_run))
