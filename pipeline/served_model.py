"""The registered model's Python code ("models from code"): MLflow copies this file into every logged model and
runs it when the model is loaded, so a served or loaded model needs mlflow, xgboost, pandas and loguru, not this
project. The pipeline itself never imports it.

Loaded model (`mlflow.pyfunc.load_model("models:/<name>@champion")`, `mlflow models serve`):
    input:  a frame with the signature's feature columns (text for categorical ones; missing values allowed);
    output: classification: a frame with `prediction` (the class label) and `probability_<class>` per class;
            regression: a frame with `prediction`.
Inside the model: `artifacts/xgboost_model`, the fitted XGBoost model as an MLflow xgboost-flavour model (what
`mlflow.models.evaluate` scores: MLflow gets probabilities only from sklearn/xgboost-flavour models), and
`artifacts/schema.json`, the preprocess schema: feature kinds and the category sets seen in training.
"""

from __future__ import annotations

import json
import time

import mlflow
import pandas as pd
from loguru import logger
from mlflow.pyfunc import PythonModel

# The same names as in pipeline/model.py (this file must not import the pipeline).
XGBOOST_ARTIFACT, SCHEMA_KEY = "xgboost_model", "schema"


class ServedXGBoostModel(PythonModel):
    """Types the columns as in training, answers with the class and the probability of every class (or the
    predicted value), and logs each request's size and latency (loguru, DEBUG)."""

    def load_context(self, context) -> None:
        self.model = mlflow.xgboost.load_model(context.artifacts[XGBOOST_ARTIFACT])
        with open(context.artifacts[SCHEMA_KEY]) as schema_file:
            self.schema = json.load(schema_file)

    def features(self, model_input: pd.DataFrame) -> pd.DataFrame:
        """The feature columns in training order: numbers as float64, text as the training categories (a value
        never seen in training counts as missing, as XGBoost treats missing values)."""
        columns = {}
        for name, kind in self.schema["columns"].items():
            column = model_input[name]
            if kind == "categorical":
                text = column.astype("string").astype(object).where(column.notna(), None)
                columns[name] = pd.Categorical(text, categories=self.schema["categories"][name])
            else:
                columns[name] = pd.to_numeric(column).astype("float64")
        return pd.DataFrame(columns, index=model_input.index)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        started = time.perf_counter()
        features = self.features(model_input)
        if self.schema["task"] == "regression":
            answer = pd.DataFrame({"prediction": self.model.predict(features)}, index=model_input.index)
        else:
            probabilities = self.model.predict_proba(features)
            classes = self.model.classes_
            answer = pd.DataFrame({f"probability_{label}": probabilities[:, i] for i, label in enumerate(classes)},
                                  index=model_input.index)
            answer.insert(0, "prediction", classes[probabilities.argmax(axis=1)])
        logger.debug("scored {} rows in {:.1f} ms", len(model_input), (time.perf_counter() - started) * 1000)
        return answer


mlflow.models.set_model(ServedXGBoostModel())
