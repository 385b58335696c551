"""What evaluate scores with `mlflow.models.evaluate`: a registered version's evaluation model (the XGBoost model
inside the pyfunc, so probabilities and ROC AUC are there) with rows put in the shape of its own schema, and the
default evaluation of the task in the target's labels."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import mlflow
import pandas as pd

from pipeline.data import feature_hook
from pipeline.data.schema import Schema, conform
from pipeline.data.transform import encode_labels
from pipeline.errors import DataError
from pipeline.modeling import plots
from pipeline.modeling.metrics import probability_metrics
from pipeline.modeling.model import evaluation_model

# mlflow.models.evaluate's model type for each task.
MODEL_TYPE = {"binary": "classifier", "multiclass": "classifier", "regression": "regressor"}


@contextmanager
def evaluable(
    name: str, version: str, frame: pd.DataFrame, raw: bool, what: str
) -> Iterator[tuple[object, Schema, pd.DataFrame]]:
    """A registered version's evaluation model and schema, and `frame` put in the shape of that schema: raw rows
    (an eval-data file) through the version's own feature hook and date parts, a test split as it is. Missing or
    mistyped columns are a DataError naming them."""
    with evaluation_model(f"models:/{name}/{version}") as (model, schema, hook):
        if schema is None:
            raise DataError(
                f"{name} version {version} carries no schema (logged by an older version of this pipeline): retrain it"
            )
        rows = feature_hook.apply(frame, hook, what) if raw else frame
        yield model, schema, conform(rows, schema, what, with_target=True, dates=raw)


def default_evaluation(client: mlflow.MlflowClient, name: str, version: str, model, schema: Schema, data: pd.DataFrame):
    """The default evaluation of the task in the target's labels, at the version's own threshold and on its
    calibrated probabilities, plus `brier_score` and (binary) `average_precision` of those probabilities; its
    metrics also linked to the version's LoggedModel. Returns the result and, classification, the reliability
    curves of the rows."""
    evaluator_config: dict[str, Any] = {"log_model_explainability": False}
    if schema.is_classification:
        evaluator_config["label_list"] = sorted(schema.classes)  # every class, even one missing from these rows
    if schema.positive_class is not None:
        evaluator_config["pos_label"] = schema.positive_class
    model_id = client.get_model_version(name, version).model_id
    result = mlflow.models.evaluate(
        model,
        data,
        targets=schema.target,
        model_type=MODEL_TYPE[schema.task],
        evaluators="default",
        evaluator_config=evaluator_config,
        model_id=model_id,
    )
    if not schema.is_classification:
        return result, None
    truth = encode_labels(data[schema.target], schema.classes)
    probabilities, _ = model._model_impl.xgb_model.decided(data.drop(columns=[schema.target]))
    scores = probability_metrics(truth, probabilities)
    mlflow.log_metrics(scores, model_id=model_id)
    result.metrics.update(scores)
    return result, plots.reliability(truth, probabilities, schema.classes)
