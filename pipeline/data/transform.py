"""From a raw row to the model's inputs, and from the model's probabilities to an answer in the user's labels.

This is the code the pipeline and the registered model share. The registered model carries this very file and the
feature hook as artifacts and loads them by path (see served_model.py), so a model loaded anywhere computes its
inputs exactly as preprocess did when it was trained. Hence: pandas and numpy only, no import of the pipeline.

`schema` below is the document preprocess logs as `data/schema.json` (see pipeline/data/schema.py): `inputs` (raw
columns), `datetime_columns` (raw date column -> parts), `columns` (model inputs -> numeric | categorical),
`categories`, `classes` (labels in the model's class order) and `hook` (whether the feature hook runs).

Date parts: a date/time column `d` becomes the numeric columns `d_year`, `d_month`, `d_day`, `d_day_of_week`
(Monday = 0), `d_day_of_year`, and `d_hour` when the training values carry a time of day.
Decision: the model's `decision.json` (pipeline/modeling/decision.py) holds the calibrators of its probabilities and
the binary threshold (`decide`): the positive label is answered when its calibrated probability reaches it.
Probability columns: `probability_<label>`, the label's text with every character other than letters, digits,
`_`, `-` and `.` replaced by `_` (`Gentoo penguin` -> `probability_Gentoo_penguin`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from collections.abc import Callable, Container
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

NUMERIC, CATEGORICAL = "numeric", "categorical"
DATE_PARTS = ("year", "month", "day", "day_of_week", "day_of_year")
TIME_PARTS = ("hour",)
_PART_ACCESSORS = {
    "year": "year",
    "month": "month",
    "day": "day",
    "day_of_week": "dayofweek",
    "day_of_year": "dayofyear",
    "hour": "hour",
}
_UNSAFE = re.compile(r"[^0-9A-Za-z_.\-]")
Hook = Callable[[pd.DataFrame], pd.DataFrame]


class InputError(ValueError):
    """Rows that cannot become model inputs (missing or mistyped columns, unparseable dates, unknown labels)."""


def load_hook(path: str | Path) -> Hook:
    """`derive_features` of the Python file at `path`, imported under a name unique to its content: two models
    (or the pipeline and a model) with different hooks never share a module."""
    path = Path(path)
    source = path.read_bytes()
    name = f"_feature_hook_{hashlib.sha256(source).hexdigest()[:16]}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path  # a .py path always has a source loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    hook = getattr(module, "derive_features", None)
    if not callable(hook):
        raise InputError(f"feature hook {path} defines no function derive_features(frame)")
    return hook


def apply_hook(frame: pd.DataFrame, hook: Hook) -> pd.DataFrame:
    derived = hook(frame)
    if not isinstance(derived, pd.DataFrame) or len(derived) != len(frame):
        raise InputError("the feature hook must return a DataFrame with one row per input row")
    return derived


def parse_dates(column: pd.Series, name: str) -> pd.Series:
    """A column as naive datetimes (time-zone aware values in UTC); text must be ISO 8601."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return column.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_any_dtype(column):
        return column
    text = column.astype("string").astype(object).where(column.notna(), None)
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    if len(bad := text[parsed.isna() & column.notna()]):
        raise InputError(
            f"column '{name}' holds {len(bad)} value(s) that are not ISO 8601 dates, such as "
            f"{bad.iloc[0]!r} (e.g. 2024-05-31 or 2024-05-31T14:30)"
        )
    return parsed.dt.tz_localize(None)


def date_parts(parsed: pd.Series) -> list[str]:
    """The parts a date column becomes: the date's, and the hour when any value has a time of day."""
    has_time = bool((parsed.dropna() != parsed.dropna().dt.normalize()).any())
    return [*DATE_PARTS, *(TIME_PARTS if has_time else ())]


def expand_dates(frame: pd.DataFrame, datetime_columns: dict[str, list[str]]) -> pd.DataFrame:
    """Each date column replaced by its numeric parts (`<name>_<part>`, float64; missing dates stay missing)."""
    if not datetime_columns:
        return frame
    parts = {}
    for name, wanted in datetime_columns.items():
        if name not in frame.columns:
            raise InputError(f"the rows lack the date column {name}")
        parsed = parse_dates(frame[name], name)
        for part in wanted:
            parts[f"{name}_{part}"] = getattr(parsed.dt, _PART_ACCESSORS[part]).astype("float64")
    return pd.concat([frame.drop(columns=list(datetime_columns)), pd.DataFrame(parts, index=frame.index)], axis=1)


def category_text(column: pd.Series) -> pd.Series:
    """Values as category keys: text as it is, whole numbers without a decimal part (a zip code read as 94107 or
    94107.0 is '94107'), missing as None."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        text = column.astype("float64").map(
            lambda value: str(int(value)) if value.is_integer() else str(value), na_action="ignore"
        )
        return text.astype(object).where(column.notna(), None)
    return column.astype("string").astype(object).where(column.notna(), None)


def _numeric(column: pd.Series, name: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column.astype("float64")
    converted = pd.to_numeric(column.astype(object).where(column.notna(), None), errors="coerce")
    if len(bad := column[converted.isna() & column.notna()]):
        raise InputError(f"column '{name}' must be numeric but holds {len(bad)} value(s) such as {bad.iloc[0]!r}")
    return converted.astype("float64")


def _categorical(column: pd.Series, categories: list[str]) -> pd.Series:
    return pd.Series(pd.Categorical(category_text(column), categories=categories), index=column.index, name=column.name)


def unseen_categories(frame: pd.DataFrame, conformed: pd.DataFrame, schema: dict[str, Any]) -> dict[str, list]:
    """Per categorical column of `frame`, a few values that were not seen in training (scored as missing); a column
    `frame` lacks (one the feature hook makes) is not checked."""
    unseen = {}
    for name in (name for name in schema["categories"] if name in frame.columns):
        lost = conformed[name].isna() & frame[name].notna()
        if lost.any():
            unseen[name] = sorted(set(category_text(frame[name][lost])))[:3]
    return unseen


def conform(frame: pd.DataFrame, schema: dict[str, Any]) -> pd.DataFrame:
    """The model's input columns in training order: numeric as float64, categorical as pandas categories with the
    training category set (a value never seen in training becomes missing, as XGBoost treats missing values)."""
    if missing := [name for name in schema["columns"] if name not in frame.columns]:
        raise InputError(f"lacks {len(missing)} column(s) the model needs: {', '.join(missing)}")
    columns = {
        name: _numeric(frame[name], name) if kind == NUMERIC else _categorical(frame[name], schema["categories"][name])
        for name, kind in schema["columns"].items()
    }
    return pd.DataFrame(columns, index=frame.index)


def prepare(frame: pd.DataFrame, schema: dict[str, Any]) -> pd.DataFrame:
    """Model inputs from rows the hook has already run on: date parts, then typing."""
    return conform(expand_dates(frame, schema.get("datetime_columns") or {}), schema)


def model_inputs(raw: pd.DataFrame, schema: dict[str, Any], hook: Hook | None) -> pd.DataFrame:
    """Model inputs from raw rows as the source table has them: the feature hook, date parts, typing."""
    if missing := [name for name in required_inputs(schema) if name not in raw.columns]:
        raise InputError(f"lacks {len(missing)} column(s) the model needs: {', '.join(missing)}")
    frame = apply_hook(raw, hook) if hook is not None and schema.get("hook") else raw
    return prepare(frame, schema)


def required_inputs(schema: dict[str, Any]) -> list[str]:
    """The raw columns a row must have (the columns the model ignores are optional)."""
    ignored = set(schema.get("ignored_inputs") or ())
    return [name for name in schema.get("inputs") or {} if name not in ignored]


def unused_name(base: str, taken: Container[str]) -> str:
    """`base`, or `base_2`, `base_3`, ... : the first not in `taken` (names escaped for MLflow can clash)."""
    name, suffix = base, 2
    while name in taken:
        name, suffix = f"{base}_{suffix}", suffix + 1
    return name


def probability_column(label: Any) -> str:
    return "probability_" + _UNSAFE.sub("_", str(label))


def encode_labels(target: pd.Series, classes: list[Any]) -> np.ndarray:
    """Labels as the model's class indexes; a label outside `classes` is an InputError naming it."""
    codes = target.map({label: index for index, label in enumerate(classes)})
    if len(unknown := target[codes.isna()]):
        raise InputError(
            f"target column '{target.name}' holds label(s) the model does not know, such as "
            f"{unknown.tolist()[0]!r} (known: {', '.join(map(str, classes))})"
        )
    return codes.astype("int64").to_numpy()


def _calibrated_column(scores: np.ndarray, calibrator: dict[str, Any]) -> np.ndarray:
    if calibrator["method"] == "isotonic":  # piecewise linear through the fitted steps, flat beyond them
        return np.interp(scores, np.asarray(calibrator["x"]), np.asarray(calibrator["y"]))
    clipped = np.clip(scores, 1e-12, 1 - 1e-12)  # sigmoid (Platt) on the log-odds
    return 1.0 / (1.0 + np.exp(-(calibrator["a"] * np.log(clipped / (1 - clipped)) + calibrator["b"])))


def calibrate(probabilities: np.ndarray, calibration: list[dict[str, Any]] | None) -> np.ndarray:
    """Class probabilities (n x k, the model's class order) through the fitted calibrators: binary, one for the
    positive (second) class; multiclass, one per class against the rest, rows then rescaled to sum to 1."""
    if not calibration:
        return probabilities
    if probabilities.shape[1] == 2:
        positive = _calibrated_column(probabilities[:, 1], calibration[0])
        return np.column_stack([1 - positive, positive])
    columns = np.column_stack([_calibrated_column(probabilities[:, k], c) for k, c in enumerate(calibration)])
    totals = columns.sum(axis=1, keepdims=True)
    uniform = np.full_like(columns, 1 / columns.shape[1])
    return np.divide(columns, totals, out=uniform, where=totals > 0)


def decide(probabilities: np.ndarray, decision: dict[str, Any] | None) -> tuple[np.ndarray, np.ndarray]:
    """The model's probabilities calibrated as `decision` says, and the class index it answers per row: binary, the
    positive (second) class when its probability reaches `decision["threshold"]`; else the most probable class.
    `decision` is the model's `decision.json` (pipeline/modeling/decision.py); None: argmax, uncalibrated."""
    decision = decision or {}
    calibrated = calibrate(probabilities, decision.get("calibration"))
    threshold = decision.get("threshold")
    if calibrated.shape[1] == 2 and threshold is not None:
        return calibrated, (calibrated[:, 1] >= threshold).astype("int64")
    return calibrated, calibrated.argmax(axis=1)


def answer(
    probabilities: np.ndarray, classes: list[Any], index: pd.Index, decision: dict[str, Any] | None = None
) -> pd.DataFrame:
    """`prediction` (the label `decide` picks) and `probability_<label>` per class (calibrated), in the model's
    class order."""
    calibrated, chosen = decide(probabilities, decision)
    frame = pd.DataFrame({probability_column(label): calibrated[:, i] for i, label in enumerate(classes)}, index=index)
    frame.insert(0, "prediction", np.asarray(classes)[chosen])
    return frame
