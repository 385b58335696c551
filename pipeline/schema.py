"""What the model is trained on: the task, the feature columns and their kinds, categories, and the class labels.

preprocess builds it from the data and logs it as `data/schema.json`; tune, train and evaluate read it from the
preprocess run and put every frame in its shape (`conform`); the registered model carries a copy, so predict and
the served model apply the same columns, types and category sets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
from loguru import logger

from pipeline.data import require_columns
from pipeline.errors import DataError, UpstreamError

SCHEMA_ARTIFACT = "data/schema.json"
TASKS = ("binary", "multiclass", "regression")
NUMERIC, CATEGORICAL = "numeric", "categorical"
# An integer target with labels 0..k-1 and at most this many classes is taken for a class label when data.task is
# auto; anything else numeric is a regression target.
MAX_INFERRED_CLASSES = 20


@dataclass(frozen=True)
class Schema:
    task: str
    target: str
    columns: dict[str, str]  # feature name -> numeric | categorical, in training order
    categories: dict[str, list[str]] = field(default_factory=dict)
    classes: list[int] = field(default_factory=list)

    @property
    def features(self) -> list[str]:
        return list(self.columns)

    @property
    def is_classification(self) -> bool:
        return self.task != "regression"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        return cls(**data)


def infer_task(target: pd.Series) -> tuple[str, str]:
    """The task a target column suggests, with the reason (logged, so the user knows what to set)."""
    if pd.api.types.is_bool_dtype(target):
        return "binary", "the target is boolean"
    if not pd.api.types.is_numeric_dtype(target):
        return "binary" if target.nunique() == 2 else "multiclass", "the target is not numeric"
    values = target.dropna()
    labels = sorted(values.unique().tolist())
    integral = bool((values == values.round()).all())
    if integral and labels == list(range(len(labels))) and 2 <= len(labels) <= MAX_INFERRED_CLASSES:
        task = "binary" if len(labels) == 2 else "multiclass"
        return task, f"the target holds the integer class labels 0..{len(labels) - 1}"
    return "regression", f"the target is numeric with {len(labels)} distinct values"


def resolve_task(configured: str, target: pd.Series, what: str) -> str:
    """`data.task`, or the inferred one when it is `auto` (with a log line saying why)."""
    if configured != "auto":
        return configured
    task, reason = infer_task(target)
    logger.info("{}: task inferred as {} ({}); set data.task to choose", what, task, reason)
    return task


def check_target(target: pd.Series, task: str, what: str) -> list[int]:
    """A usable target for the task: no missing values; classification: integer labels 0..k-1 (k=2 for binary).
    Returns the class labels (empty for regression)."""
    name = target.name
    if missing := int(target.isna().sum()):
        raise DataError(f"{what}: target column '{name}' is empty in {missing} of {len(target)} rows; drop or fill "
                        "those rows")
    numeric = pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target)
    first = target.head(1).tolist()[0]
    single = f"{what}: target column '{name}' holds a single value ({first!r}); nothing to learn"
    if task == "regression":
        if not numeric:
            raise DataError(f"{what}: target column '{name}' must be numeric for regression, not {target.dtype} "
                            f"values such as {target.iloc[0]!r}")
        if target.nunique() < 2:
            raise DataError(single)
        return []
    if not numeric:
        raise DataError(f"{what}: target column '{name}' must hold integer class labels 0..k-1, not {target.dtype} "
                        f"values such as {target.iloc[0]!r}; encode it first")
    labels = sorted(target.unique().tolist())
    if len(labels) < 2:
        raise DataError(single)
    if labels != list(range(len(labels))):
        shown = ", ".join(str(label) for label in labels[:6]) + (", ..." if len(labels) > 6 else "")
        raise DataError(f"{what}: target column '{name}' must hold class labels 0..{len(labels) - 1}, got {shown} "
                        "(for a numeric target to predict, set data.task: regression)")
    if (task == "binary") != (len(labels) == 2):
        raise DataError(f"{what}: data.task is {task} but target column '{name}' holds {len(labels)} classes; "
                        f"set data.task to {'binary' if len(labels) == 2 else 'multiclass'} (or auto)")
    return [int(label) for label in labels]


def _is_categorical(column: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column))


def build_schema(frame: pd.DataFrame, target: str, task: str, classes: list[int], what: str) -> Schema:
    """The schema of a prepared frame: numeric or boolean columns are numeric, anything else is categorical
    (XGBoost's native categorical support), with its categories sorted as strings."""
    columns, categories = {}, {}
    for name in frame.columns.drop(target):
        if _is_categorical(frame[name]):
            columns[name] = CATEGORICAL
            categories[name] = sorted(frame[name].dropna().astype(str).unique().tolist())
        else:
            columns[name] = NUMERIC
    if not columns:
        raise DataError(f"{what}: no feature column is left besides the target '{target}'")
    return Schema(task=task, target=target, columns=columns, categories=categories, classes=classes)


def report_columns(frame: pd.DataFrame, target: str, what: str) -> dict[str, list[str]]:
    """Columns that carry no information: all-missing ones (dropped by preprocess) and constant ones (kept)."""
    features = frame.drop(columns=[target])
    empty = [str(c) for c in features.columns if features[c].isna().all()]
    constant = [str(c) for c in features.columns if c not in empty and features[c].nunique(dropna=False) == 1]
    if empty:
        logger.warning("{}: dropping {} column(s) without any value: {}", what, len(empty), ", ".join(empty))
    if constant:
        logger.warning("{}: {} column(s) hold a single value (kept, but useless to the model): {}", what,
                       len(constant), ", ".join(constant))
    return {"all_missing": empty, "constant": constant}


def _conform_numeric(column: pd.Series, name: str, what: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column.astype("float64")
    converted = pd.to_numeric(column, errors="coerce")
    bad = column[converted.isna() & column.notna()]
    if len(bad):
        raise DataError(f"{what}: column '{name}' must be numeric but holds {len(bad)} value(s) such as "
                        f"{bad.iloc[0]!r}")
    return converted.astype("float64")


def _conform_categorical(column: pd.Series, name: str, categories: list[str], what: str) -> pd.Series:
    as_text = column.astype("string").astype(object).where(column.notna(), None)
    conformed = pd.Series(pd.Categorical(as_text, categories=categories), index=column.index, name=name)
    if unseen := int((conformed.isna() & column.notna()).sum()):
        examples = sorted(set(as_text[conformed.isna() & column.notna()]))[:3]
        logger.warning("{}: column '{}' has {} value(s) not seen in training (e.g. {}), scored as missing", what,
                       name, unseen, ", ".join(map(repr, examples)))
    return conformed


def conform(frame: pd.DataFrame, schema: Schema, what: str, with_target: bool = False) -> pd.DataFrame:
    """The schema's feature columns (plus the target if asked), typed as in training: numeric as float64,
    categorical as pandas categories with the training category set. Missing or mistyped columns are a DataError
    naming them; values of a category never seen in training become missing, with a warning."""
    require_columns(frame, [*schema.features, *([schema.target] if with_target else [])], what)
    if with_target:
        check_target(frame[schema.target], schema.task, what)
    conformed = {}
    for name, kind in schema.columns.items():
        column = frame[name]
        conformed[name] = (_conform_numeric(column, name, what) if kind == NUMERIC
                           else _conform_categorical(column, name, schema.categories[name], what))
    if with_target:
        conformed[schema.target] = frame[schema.target]
    return pd.DataFrame(conformed, index=frame.index)


def schema_document(schema: Schema, report: dict[str, list[str]]) -> dict[str, Any]:
    """The JSON document logged as `data/schema.json`: the schema plus what preprocess reported."""
    return {**schema.to_dict(), "report": report}


def read_schema(document: dict[str, Any]) -> Schema:
    return Schema.from_dict({key: value for key, value in document.items() if key != "report"})


def schema_of_run(run) -> Schema:
    """The schema logged by a preprocess run."""
    from pipeline.lineage import read_json_artifact

    try:
        return read_schema(read_json_artifact(run, SCHEMA_ARTIFACT))
    except UpstreamError as exc:
        raise UpstreamError(f"{exc} (made by an older version of this pipeline: rerun preprocess)") from exc
