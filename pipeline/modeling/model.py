"""XGBoost model construction shared by tune and train, and the registered model: how it is logged (a pyfunc
answering with classes and probabilities, see served_model.py) and what `mlflow.models.evaluate` scores of it."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from xgboost import XGBClassifier, XGBModel, XGBRegressor

from pipeline.config import SearchDimension
from pipeline.data.schema import Schema
from pipeline.data.transform import decide, load_hook, probability_column

if TYPE_CHECKING:  # train, evaluate and predict need no Optuna: tune imports it
    import optuna

# Packages a logged model needs to load; pinned to what this environment runs, so MLflow skips inference.
_MODEL_PACKAGES = ("mlflow", "xgboost", "scikit-learn", "pandas", "numpy", "pyarrow", "loguru")
# The registered model's code (models from code) and the name of the XGBoost model inside it (the same
# constant is in served_model.py, which must not import this package).
SERVED_MODEL_CODE = Path(__file__).with_name("served_model.py")
TRANSFORM_CODE = Path(__file__).parent.parent / "data" / "transform.py"
XGBOOST_ARTIFACT, TRANSFORM_KEY, HOOK_KEY = "xgboost_model", "transform", "feature_hook"
SCHEMA_KEY, SCHEMA_FILE = "schema", "schema.json"
# decision.json (modeling/decision.py): the calibration and the threshold; classification only.
DECISION_KEY, DECISION_FILE = "decision", "decision.json"
PROFILE_KEY, PROFILE_FILE = "profile", "profile.json"  # modeling/profile.py: the reference profile


def suggest_params(trial: optuna.Trial, space: dict[str, SearchDimension]) -> dict[str, Any]:
    """Draw one point of the configured search space; a dimension with a `when` is drawn after the others, and only
    when the choices it names drew the values it wants."""
    params: dict[str, Any] = {}
    in_order = sorted(space.items(), key=lambda item: item[1].when is not None)  # stable: the rest keep their order
    for name, dim in in_order:
        if not _condition_met(dim.when, params):
            continue
        if dim.choices is not None:
            params[name] = trial.suggest_categorical(name, dim.choices)
        else:
            assert dim.low is not None and dim.high is not None, name  # the config requires a range without choices
            if dim.is_int:
                params[name] = trial.suggest_int(name, int(dim.low), int(dim.high), log=dim.log)
            else:
                params[name] = trial.suggest_float(name, float(dim.low), float(dim.high), log=dim.log)
    return params


def _condition_met(when: dict[str, list[Any]] | None, drawn: dict[str, Any]) -> bool:
    """Whether each dimension named in `when` drew one of the values it lists."""
    return all(name in drawn and drawn[name] in wanted for name, wanted in (when or {}).items())


def build_model(task: str, params: dict[str, Any], fixed: dict[str, Any], **extra: Any) -> XGBModel:
    """The XGBoost estimator for the task: tuned params over fixed ones; `extra` carries per-use settings (early
    stopping, eval metric). Categorical columns (pandas categories) are handled natively."""
    estimator = XGBRegressor if task == "regression" else XGBClassifier
    return estimator(**{"enable_categorical": True, **fixed, **params, **extra})


def usable_cores() -> int:
    """Cores this process may run on (CPU affinity, as set by taskset, Slurm or a container), not all of them."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def model_requirements() -> list[str]:
    return [f"{package}=={version(package)}" for package in _MODEL_PACKAGES]


def log_served_model(
    model: XGBModel,
    schema: Schema,
    name: str,
    raw_sample: pd.DataFrame,
    hook_file: Path | None,
    decision: dict[str, Any] | None = None,
    profile: dict[str, Any] | None = None,
) -> Any:
    """Log `model` as the pyfunc of served_model.py, taking raw rows and answering in the target's labels, with the
    fitted model inside it as an xgboost-flavour model (native UBJ format, no pickle), the schema, the pipeline's
    transform code, the feature hook that made the training data, the `decision` document (calibration and
    threshold) and the reference `profile` (drift). Returns MLflow's ModelInfo."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="xgboost-model-") as tmp:
        native, schema_file = Path(tmp) / XGBOOST_ARTIFACT, Path(tmp) / SCHEMA_FILE
        mlflow.xgboost.save_model(model, native, model_format="ubj", pip_requirements=model_requirements())
        schema_file.write_text(json.dumps(schema.to_dict(), indent=2))
        artifacts = {XGBOOST_ARTIFACT: str(native), SCHEMA_KEY: str(schema_file), TRANSFORM_KEY: str(TRANSFORM_CODE)}
        if hook_file is not None:
            artifacts[HOOK_KEY] = str(hook_file)
        for key, file_name, document in ((DECISION_KEY, DECISION_FILE, decision), (PROFILE_KEY, PROFILE_FILE, profile)):
            if document is not None:
                (Path(tmp) / file_name).write_text(json.dumps(document, indent=2))
                artifacts[key] = str(Path(tmp) / file_name)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(SERVED_MODEL_CODE),
            artifacts=artifacts,
            signature=served_signature(schema),
            input_example=input_example(raw_sample, schema),
            pip_requirements=model_requirements(),
        )


# Numeric raw columns are declared `Any`: MLflow's schema enforcement refuses int64 values for a `double` column and
# missing values (float64) for a `long` one, so either type would turn away rows the model scores well (a count
# sent as integers, a gap in an integer column). The model types numbers itself, naming a bad value's column.
_SIGNATURE_TYPES = {"boolean": "boolean", "text": "string", "datetime": "datetime"}


def _label_type(classes: list[Any]) -> str:
    if all(isinstance(label, bool) for label in classes):
        return "boolean"
    if all(isinstance(label, int) and not isinstance(label, bool) for label in classes):
        return "long"
    return "double" if all(isinstance(label, (int, float)) for label in classes) else "string"


def served_signature(schema: Schema):
    """Inputs: the raw columns (optional when the model ignores them). Outputs: `prediction` in the labels' type
    and `probability_<label>` per class."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, TensorSpec
    from mlflow.types import Schema as ColumnSchema
    from mlflow.types.schema import AnyType

    inputs = [
        ColSpec(_SIGNATURE_TYPES.get(kind) or AnyType(), name, required=name not in schema.ignored_inputs)
        for name, kind in schema.inputs.items()
    ]
    outputs = [ColSpec("double" if schema.task == "regression" else _label_type(schema.classes), "prediction")]
    outputs += [ColSpec("double", probability_column(label)) for label in schema.classes]
    return ModelSignature(
        inputs=ColumnSchema(list[ColSpec | TensorSpec](inputs)),
        outputs=ColumnSchema(list[ColSpec | TensorSpec](outputs)),
    )


def input_example(raw_sample: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Raw training rows as a client sends them (the columns the signature lists)."""
    return raw_sample[[name for name in schema.inputs if name in raw_sample.columns]]


class LabelledClassifier:
    """The XGBoost classifier as `mlflow.models.evaluate` sees it: the registered model's decision (its calibration
    and threshold) applied, predictions in the target's labels and probabilities in sorted-label order (the order of
    the evaluator's label list), so that its metrics, confusion matrix and curves speak the labels rather than class
    indexes, and are those of the answers the served model gives."""

    def __init__(self, model: XGBModel, classes: list[Any], decision: dict[str, Any] | None = None) -> None:
        self.model, self.labels, self.decision = model, np.asarray(classes), decision
        self.order = [classes.index(label) for label in sorted(classes)]

    def decided(self, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities in the model's class order, and the class index answered per row."""
        return decide(self.model.predict_proba(data), self.decision)

    def predict(self, data: pd.DataFrame, **_: Any) -> np.ndarray:
        return self.labels[self.decided(data)[1]]

    def predict_proba(self, data: pd.DataFrame, **_: Any) -> np.ndarray:
        return self.decided(data)[0][:, self.order]


@contextmanager
def evaluation_model(model_uri: str) -> Iterator[tuple[Any, Schema | None, Any]]:
    """What `mlflow.models.evaluate` should score for a registered model, and the schema the model was trained
    with: the xgboost-flavour model inside it (MLflow gets class probabilities, hence ROC AUC and its curves, only
    from such flavours) answering in the target's labels, or the model itself when it has none (versions logged
    with the xgboost flavour directly, which carry no schema either), and the feature hook packed in the model."""
    import mlflow
    from mlflow.models import Model

    with tempfile.TemporaryDirectory(prefix="evaluation-model-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=tmp))
        artifacts = Model.load(local).flavors.get("python_function", {}).get("artifacts") or {}
        if XGBOOST_ARTIFACT not in artifacts:
            yield model_uri, None, None
            return
        document = json.loads((local / artifacts[SCHEMA_KEY]["path"]).read_text())
        schema = Schema.from_dict(document)
        scored = mlflow.pyfunc.load_model(str(local / artifacts[XGBOOST_ARTIFACT]["path"]))
        if schema.is_classification:
            # The evaluator takes predict/predict_proba from the flavour's raw model (default_evaluator.
            # _extract_raw_model); MLflow offers no hook to map class indexes to labels, so the raw model is wrapped.
            decision = None
            if DECISION_KEY in artifacts:
                decision = json.loads((local / artifacts[DECISION_KEY]["path"]).read_text())
            scored._model_impl.xgb_model = LabelledClassifier(scored._model_impl.xgb_model, schema.classes, decision)
        hook = load_hook(local / artifacts[HOOK_KEY]["path"]) if HOOK_KEY in artifacts else None
        yield scored, schema, hook
