"""The registered model's Python code ("models from code"): MLflow copies this file into every logged model and
runs it when the model is loaded, so a served or loaded model needs mlflow, xgboost, pandas and loguru, not this
project. The pipeline itself never imports it.

Loaded model (`mlflow.pyfunc.load_model("models:/<name>@champion")`, `mlflow models serve`):
    input:  a frame with the signature's feature columns;
    output: a frame with `prediction` (the class label) and `probability_<class>` for every class.
Inside the model: `artifacts/xgboost_model`, the fitted XGBoost model as an MLflow xgboost-flavour model; it is
what `mlflow.models.evaluate` scores (MLflow gets probabilities only from sklearn/xgboost-flavour models).
"""

from __future__ import annotations

import time

import mlflow
import pandas as pd
from loguru import logger
from mlflow.pyfunc import PythonModel

XGBOOST_ARTIFACT = "xgboost_model"


class ClassifierWithProbabilities(PythonModel):
    """Answers with the class and the probability of every class; logs each request's size and latency."""

    def load_context(self, context) -> None:
        self.classifier = mlflow.xgboost.load_model(context.artifacts[XGBOOST_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        started = time.perf_counter()
        probabilities = self.classifier.predict_proba(model_input)
        classes = self.classifier.classes_
        answer = pd.DataFrame({f"probability_{label}": probabilities[:, i] for i, label in enumerate(classes)},
                              index=model_input.index)
        answer.insert(0, "prediction", classes[probabilities.argmax(axis=1)])
        logger.debug("scored {} rows in {:.1f} ms", len(model_input), (time.perf_counter() - started) * 1000)
        return answer


mlflow.models.set_model(ClassifierWithProbabilities())
