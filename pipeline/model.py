"""XGBoost model construction shared by tune and train, and the registered model: how it is logged (a pyfunc
answering with classes and probabilities, see served_model.py) and what `mlflow.models.evaluate` scores of it."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import optuna
from xgboost import XGBClassifier

from pipeline.config import SearchDimension

# Packages a logged model needs to load; pinned to what this environment runs, so MLflow skips inference.
_MODEL_PACKAGES = ("mlflow", "xgboost", "scikit-learn", "pandas", "numpy", "pyarrow", "loguru")
# The registered model's code (models from code) and the name of the XGBoost model inside it (the same
# constant is in served_model.py, which must not import this package).
SERVED_MODEL_CODE = Path(__file__).with_name("served_model.py")
XGBOOST_ARTIFACT = "xgboost_model"


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


def build_classifier(params: dict[str, Any], fixed: dict[str, Any], **extra: Any) -> XGBClassifier:
    """Tuned params over fixed ones; `extra` carries per-use settings (early stopping, eval metric)."""
    return XGBClassifier(**{**fixed, **params, **extra})


def model_inputs(model_uri: str) -> list[str]:
    """The input columns of a logged model, from its signature."""
    import mlflow

    return mlflow.models.get_model_info(model_uri).signature.inputs.input_names()


def model_requirements() -> list[str]:
    return [f"{package}=={version(package)}" for package in _MODEL_PACKAGES]


def log_served_model(classifier: XGBClassifier, name: str, input_example) -> Any:
    """Log `classifier` as the pyfunc of served_model.py (class + probability columns), the fitted model inside
    it as an xgboost-flavour model (native UBJ format, no pickle). Returns MLflow's ModelInfo."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="xgboost-model-") as tmp:
        native = Path(tmp) / XGBOOST_ARTIFACT
        mlflow.xgboost.save_model(classifier, native, model_format="ubj", pip_requirements=model_requirements())
        # The signature (inputs and the answer's columns) is inferred by running the model on the example.
        return mlflow.pyfunc.log_model(name=name, python_model=str(SERVED_MODEL_CODE),
                                       artifacts={XGBOOST_ARTIFACT: str(native)}, input_example=input_example,
                                       pip_requirements=model_requirements())


@contextmanager
def evaluation_model(model_uri: str) -> Iterator[str]:
    """What `mlflow.models.evaluate` should score for a registered model: the xgboost-flavour model inside it
    (MLflow gets class probabilities, hence ROC AUC and its curves, only from such flavours), or the model itself
    when it has none (versions logged with the xgboost flavour directly)."""
    import mlflow
    from mlflow.models import Model

    with tempfile.TemporaryDirectory(prefix="evaluation-model-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=tmp))
        artifacts = Model.load(local).flavors.get("python_function", {}).get("artifacts") or {}
        yield str(local / artifacts[XGBOOST_ARTIFACT]["path"]) if XGBOOST_ARTIFACT in artifacts else model_uri
