"""XGBoost model construction shared by tune and train, and the pinned requirements of logged models."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import optuna
from xgboost import XGBClassifier

from pipeline.config import SearchDimension

# Packages a logged model needs to load; pinned to what this environment runs, so MLflow skips inference.
_MODEL_PACKAGES = ("mlflow", "xgboost", "scikit-learn", "pandas", "numpy", "pyarrow")


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
