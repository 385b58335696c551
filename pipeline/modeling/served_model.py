"""The registered model's Python code ("models from code"): MLflow copies this file into every logged model and
runs it when the model is loaded, so a served or loaded model needs mlflow, xgboost, pandas, numpy and loguru, not
this project. The pipeline itself never imports it.

Loaded model (`mlflow.pyfunc.load_model("models:/<name>@champion")`, `mlflow models serve`):
    input:  raw rows as the source table has them, without the target (the signature lists those columns; the
            ones the model ignores are optional; text, numbers, dates, missing values allowed);
    output: classification: a frame with `prediction` (the label, as the target column held it; binary: the
            positive label when its probability reaches the model's threshold) and `probability_<label>` per class
            (calibrated when the model was); regression: a frame with `prediction`.
    errors: rows that cannot become model inputs (a missing column, text in a numeric column, an unparseable
            date) raise an MlflowException INVALID_PARAMETER_VALUE with one message naming the column.
Inside the model, as artifacts: `xgboost_model`, the fitted XGBoost model as an xgboost-flavour model (what
`mlflow.models.evaluate` scores); `schema.json`, the preprocess schema; `decision.json` (classification), the
calibration of the probabilities and the binary threshold (pipeline/modeling/decision.py); `profile.json`, the
reference profile of the training inputs and the test-split output (pipeline/modeling/profile.py: `self.profile`
for whoever checks a batch's drift); `transform.py`, the
pipeline's own code from raw rows to model inputs; `feature_hook.py`, the feature hook preprocess ran (when it ran one).
The two code files are loaded by path under names unique to their content, rather than put on sys.path through
`code_paths`: MLflow prepends code paths to sys.path, so a module name shared by two models (or by a model and the
project that loads it) would resolve to whichever was imported first.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import time

import mlflow
import pandas as pd
from loguru import logger
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

# The same names as in pipeline/modeling/model.py (this file must not import the pipeline).
XGBOOST_ARTIFACT, SCHEMA_KEY, TRANSFORM_KEY, HOOK_KEY = "xgboost_model", "schema", "transform", "feature_hook"
DECISION_KEY, PROFILE_KEY = "decision", "profile"
# Requests up to this many rows are scored on one thread: starting XGBoost's thread pool costs more than a small
# batch (one row: 1.6 ms on one thread against 5.8-10 ms on all cores, 2-core machine, benchmarks/serving_latency).
SMALL_BATCH_ROWS = 1000


def _load_module(path: str, prefix: str):
    with open(path, "rb") as source:
        name = f"{prefix}_{hashlib.sha256(source.read()).hexdigest()[:16]}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path  # a .py path always has a source loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read_json(path: str | None):
    if not path:
        return None
    with open(path) as document:
        return json.load(document)


class ServedXGBoostModel(PythonModel):
    """Raw rows -> the feature hook, date parts and column types of training -> XGBoost -> the answer in the
    target's own labels; logs each request's size and latency (loguru, DEBUG)."""

    def load_context(self, context) -> None:
        self.model = mlflow.xgboost.load_model(context.artifacts[XGBOOST_ARTIFACT])
        self.single_thread_model = copy.deepcopy(self.model).set_params(n_jobs=1)
        with open(context.artifacts[SCHEMA_KEY]) as schema_file:
            self.schema = json.load(schema_file)
        self.transform = _load_module(context.artifacts[TRANSFORM_KEY], "_served_transform")
        self.input_error = self.transform.InputError
        hook = context.artifacts.get(HOOK_KEY)
        self.hook = self.transform.load_hook(hook) if hook else None
        # Absent from models logged before they existed: the most probable label, uncalibrated; no drift check.
        self.decision, self.profile = (_read_json(context.artifacts.get(key)) for key in (DECISION_KEY, PROFILE_KEY))

    def features(self, model_input: pd.DataFrame) -> pd.DataFrame:
        """The model inputs of raw rows (a category never seen in training counts as missing)."""
        return self.transform.model_inputs(model_input, self.schema, self.hook)

    def score(self, model_input: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The answer for raw rows, and the model inputs it was computed from."""
        features = self.features(model_input)
        model = self.single_thread_model if len(features) <= SMALL_BATCH_ROWS else self.model
        if self.schema["task"] == "regression":
            answer = pd.DataFrame({"prediction": model.predict(features)}, index=model_input.index)
        else:
            answer = self.transform.answer(
                model.predict_proba(features), self.schema["classes"], model_input.index, self.decision
            )
        return answer, features

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        started = time.perf_counter()
        try:
            answer, _ = self.score(model_input)
        except self.input_error as exc:
            # What the caller must fix, as one message: MLflow's server answers an MlflowException with its
            # message and error code (HTTP 400), any other exception with its stack trace.
            message = f"the rows {exc}" if str(exc).startswith("lacks") else str(exc)
            raise MlflowException(message, error_code=INVALID_PARAMETER_VALUE) from None
        logger.debug("scored {} rows in {:.1f} ms", len(model_input), (time.perf_counter() - started) * 1000)
        return answer


mlflow.models.set_model(ServedXGBoostModel())
