"""XGBoost model construction shared by tune and train, and the registered model: how it is logged (a pyfunc
answering with classes and probabilities, see served_model.py) and what `mlflow.models.evaluate` scores of it."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from xgboost import XGBClassifier, XGBModel, XGBRegressor

from pipeline.config import SearchDimension
from pipeline.schema import Schema

# Packages a logged model needs to load; pinned to what this environment runs, so MLflow skips inference.
_MODEL_PACKAGES = ("mlflow", "xgboost", "scikit-learn", "pandas", "numpy", "pyarrow", "loguru")
# The registered model's code (models from code) and the name of the XGBoost model inside it (the same
# constant is in served_model.py, which must not import this package).
SERVED_MODEL_CODE = Path(__file__).with_name("served_model.py")
XGBOOST_ARTIFACT = "xgboost_model"
SCHEMA_KEY, SCHEMA_FILE = "schema", "schema.json"


def suggest_params(trial: optuna.Trial, space: dict[str, SearchDimension]) -> dict[str, Any]:
    """Draw one point of the configured search space."""
    params: dict[str, Any] = {}
    for name, dim in space.items():
        if dim.choices is not None:
            params[name] = trial.suggest_categorical(name, dim.choices)
        elif dim.is_int:
            params[name] = trial.suggest_int(name, int(dim.low), int(dim.high), log=dim.log)
        else:
            params[name] = trial.suggest_float(name, float(dim.low), float(dim.high), log=dim.log)
    return params


def build_model(task: str, params: dict[str, Any], fixed: dict[str, Any], **extra: Any) -> XGBModel:
    """The XGBoost estimator for the task: tuned params over fixed ones; `extra` carries per-use settings (early
    stopping, eval metric). Categorical columns (pandas categories) are handled natively."""
    estimator = XGBRegressor if task == "regression" else XGBClassifier
    return estimator(**{"enable_categorical": True, **fixed, **params, **extra})


def model_requirements() -> list[str]:
    return [f"{package}=={version(package)}" for package in _MODEL_PACKAGES]


def log_served_model(model: XGBModel, schema: Schema, name: str, input_example: pd.DataFrame) -> Any:
    """Log `model` as the pyfunc of served_model.py (class + probability columns, or the predicted value), with
    the fitted model inside it as an xgboost-flavour model (native UBJ format, no pickle) and the schema (so the
    served model types columns and maps categories as in training). Returns MLflow's ModelInfo."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="xgboost-model-") as tmp:
        native, schema_file = Path(tmp) / XGBOOST_ARTIFACT, Path(tmp) / SCHEMA_FILE
        mlflow.xgboost.save_model(model, native, model_format="ubj", pip_requirements=model_requirements())
        schema_file.write_text(json.dumps(schema.to_dict(), indent=2))
        # The signature (inputs and the answer's columns) is inferred by running the model on the example, given
        # as raw values (text for categorical columns), the way clients send them.
        return mlflow.pyfunc.log_model(name=name, python_model=str(SERVED_MODEL_CODE),
                                       artifacts={XGBOOST_ARTIFACT: str(native), SCHEMA_KEY: str(schema_file)},
                                       input_example=raw_values(input_example),
                                       pip_requirements=model_requirements())


def raw_values(frame: pd.DataFrame) -> pd.DataFrame:
    """A conformed frame as a client would send it: categorical columns as plain text (missing as None)."""
    categorical = frame.select_dtypes("category").columns
    return frame.astype({name: object for name in categorical})


@contextmanager
def evaluation_model(model_uri: str) -> Iterator[tuple[str, Schema | None]]:
    """What `mlflow.models.evaluate` should score for a registered model, and the schema the model was trained
    with: the xgboost-flavour model inside it (MLflow gets class probabilities, hence ROC AUC and its curves, only
    from such flavours), or the model itself when it has none (versions logged with the xgboost flavour
    directly, which carry no schema either)."""
    import mlflow
    from mlflow.models import Model

    with tempfile.TemporaryDirectory(prefix="evaluation-model-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=tmp))
        artifacts = Model.load(local).flavors.get("python_function", {}).get("artifacts") or {}
        if XGBOOST_ARTIFACT not in artifacts:
            yield model_uri, None
            return
        schema = json.loads((local / artifacts[SCHEMA_KEY]["path"]).read_text()) if SCHEMA_KEY in artifacts else None
        yield str(local / artifacts[XGBOOST_ARTIFACT]["path"]), schema and Schema.from_dict(schema)
