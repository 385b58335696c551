"""What the model is trained on: the raw input columns, date parts, the feature columns and their kinds, category
sets, and the class labels. Columns are judged on the training split only, except row numbers: whether a column
grows with the row order can only be seen on the table in its file order, before the split shuffles it.

preprocess builds it and logs it as `data/schema.json`; tune, train and evaluate read it from the preprocess run
(pipeline/tracking/splits.py: this module reads no runs) and put every frame in its shape (`conform`); the
registered model carries a copy and applies it to raw rows with pipeline/data/transform.py, so predict,
`mlflow.pyfunc.load_model` and `mlflow models serve` answer alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from loguru import logger

from pipeline.config import DataConfig
from pipeline.data import transform
from pipeline.errors import DataError

NUMERIC, CATEGORICAL = transform.NUMERIC, transform.CATEGORICAL
# A text column with at least this share of distinct values among its values (and ID_MIN_ROWS values or more) is
# an id or free text, not a category: dropped unless listed in data.features.
ID_DISTINCT_SHARE, ID_MIN_ROWS = 0.9, 20
# An integer column is a row number (a row index, an auto-increment key) when at least ROW_NUMBER_DISTINCT_SHARE of
# its values (ID_MIN_ROWS or more, missing ones left out) are distinct and it grows with the table's row order:
# Spearman's rank correlation between its values and their positions in the file is ROW_ORDER_CORRELATION or more.
# Ranks, not values: gaps in a key (deleted rows) do not count, a few rows out of place (late inserts, files merged)
# lower it only a little, and a shuffled key scores about 0. A column that falls with the row order is not one (keys
# grow). Such a column gives away the target of a table stored sorted by it (or by time), and means nothing for new
# rows: dropped unless listed in data.features.
ROW_NUMBER_DISTINCT_SHARE, ROW_ORDER_CORRELATION = 0.99, 0.99
_ISO_DATE = r"^\d{4}-\d{2}-\d{2}"


@dataclass(frozen=True)
class Schema:
    task: str
    target: str
    columns: dict[str, str]  # model input -> numeric | categorical, in training order
    categories: dict[str, list[str]] = field(default_factory=dict)
    classes: list[Any] = field(default_factory=list)  # labels in the model's class order
    positive_class: Any = None
    inputs: dict[str, str] = field(default_factory=dict)  # raw column -> numeric | boolean | text | datetime
    ignored_inputs: list[str] = field(default_factory=list)  # raw columns the model drops
    datetime_columns: dict[str, list[str]] = field(default_factory=dict)  # raw date column -> its parts
    hook: bool = False  # whether the feature hook runs before the columns are typed

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


def raw_kind(column: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(column):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(column):
        return "datetime"
    return "numeric" if pd.api.types.is_numeric_dtype(column) else "text"


def _is_text(column: pd.Series) -> bool:
    return raw_kind(column) == "text"


def _looks_like_dates(column: pd.Series) -> bool:
    values = column.dropna()
    # The first values settle most text columns (categories, names) before the whole column is matched.
    if values.empty or not all(values.head(100).astype(str).str.match(_ISO_DATE)):
        return False
    if not values.astype(str).str.match(_ISO_DATE).all():
        return False
    try:
        transform.parse_dates(values, str(column.name))
    except transform.InputError:
        return False
    return True


def detect_datetime_columns(frame: pd.DataFrame, named: list[str], what: str) -> dict[str, list[str]]:
    """Date columns and their parts: the named ones (every value must parse) and, among the others, datetime
    columns and text columns whose every value is an ISO 8601 date."""
    found = {}
    for name in frame.columns:
        column = frame[name]
        if name in named or raw_kind(column) == "datetime" or (_is_text(column) and _looks_like_dates(column)):
            try:
                found[str(name)] = transform.date_parts(transform.parse_dates(column, str(name)))
            except transform.InputError as exc:
                raise DataError(f"{what}: data.datetime_columns: {exc}") from exc
    if missing := [name for name in named if name not in frame.columns]:
        raise DataError(f"{what}: data.datetime_columns names column(s) the data lacks: {', '.join(missing)}")
    for name, parts in found.items():
        logger.info("{}: date column '{}' becomes {}", what, name, ", ".join(f"{name}_{part}" for part in parts))
    return found


def detect_id_like(frame: pd.DataFrame, keep: list[str]) -> list[str]:
    """Text columns with about one distinct value per row (ids, names, free text), except those in `keep`."""
    found = []
    for name in frame.columns:
        values = frame[name].dropna()
        if (
            name not in keep
            and _is_text(frame[name])
            and len(values) >= ID_MIN_ROWS
            and values.nunique() >= ID_DISTINCT_SHARE * len(values)
        ):
            found.append(str(name))
    return found


def is_row_number(column: pd.Series) -> bool:
    """Whether `column`, in the table's row order, is a row number or an auto-increment key (the rule above)."""
    if raw_kind(column) != "numeric":
        return False
    values = column.dropna()
    if len(values) < ID_MIN_ROWS:
        return False
    if not pd.api.types.is_integer_dtype(values):
        numbers = values.to_numpy(dtype="float64")
        if not (np.isfinite(numbers) & (numbers == np.round(numbers))).all():
            return False
    if values.nunique() < ROW_NUMBER_DISTINCT_SHARE * len(values):
        return False
    ranks = values.rank().to_numpy(dtype="float64")
    return float(np.corrcoef(ranks, np.arange(len(ranks)))[0, 1]) >= ROW_ORDER_CORRELATION


def detect_row_numbers(frame: pd.DataFrame, keep: list[str]) -> list[str]:
    """Row numbers and auto-increment keys of a table in its file order (`is_row_number`), except those in `keep`."""
    return [str(name) for name in frame.columns if name not in keep and is_row_number(frame[name])]


def row_number_columns(frame: pd.DataFrame, data: DataConfig) -> list[str]:
    """The row numbers preprocess drops, found on the loaded table in its file order (before the split): none of
    the target, data.features (which forces a column in) and data.datetime_columns."""
    return detect_row_numbers(frame, keep=[data.target, *(data.features or []), *data.datetime_columns])


def report_columns(frame: pd.DataFrame, data: DataConfig) -> dict[str, list[str]]:
    """Columns of the (hooked, date-expanded) training split the model does without: all missing, constant, and
    id-like text."""
    keep = list(data.features or [])
    empty = [str(c) for c in frame.columns if frame[c].isna().all()]
    constant = [str(c) for c in frame.columns if c not in empty and frame[c].nunique(dropna=False) == 1]
    id_like = [c for c in detect_id_like(frame, keep) if c not in empty]
    return {"all_missing": empty, "constant": constant, "id_like": id_like}


def _warn_dropped(report: dict[str, list[str]], what: str) -> None:
    for group, why in (
        ("all_missing", "without any value"),
        ("constant", "holding a single value"),
        ("id_like", "with about one distinct text per row (ids or free text; list them in data.features to keep them)"),
        (
            "row_number",
            "of unique integers growing with the file's row order (row numbers or keys, which give away the target "
            "of a sorted table; list them in data.features to keep them)",
        ),
    ):
        if columns := report.get(group):
            logger.warning("{}: dropping {} column(s) {}: {}", what, len(columns), why, ", ".join(columns))


@dataclass(frozen=True)
class ColumnFacts:
    """What build_schema otherwise reads off the whole training split, computed elsewhere (on a Dask cluster, by
    pipeline/engines/dask/profile.py): date columns and their parts, the columns dropped, the category sets."""

    datetime_columns: dict[str, list[str]]
    report: dict[str, list[str]]
    categories: dict[str, list[str]]


def build_schema(
    raw_train: pd.DataFrame,
    hooked_train: pd.DataFrame,
    data: DataConfig,
    labels: tuple,
    hook: bool,
    what: str,
    id_inputs: dict[str, str] | None = None,
    facts: ColumnFacts | None = None,
    row_numbers: list[str] | None = None,
) -> tuple[Schema, dict[str, list[str]]]:
    """The schema from the training split: raw columns as given (less the target), the hooked columns with dates
    expanded, then without the columns `report_columns` drops; text and data.categorical_columns are categorical.
    `id_inputs` (data.id_columns and their kinds) are inputs the model accepts and ignores. With `facts` (of the
    whole split), the frames are a sample of it that only settles the column kinds. `row_numbers` (found on the
    whole table in its file order, `row_number_columns`) are dropped too, reported as `row_number`."""
    task, classes, positive = labels
    raw = raw_train.drop(columns=[data.target])
    features = hooked_train.drop(columns=[data.target])
    dates = facts.datetime_columns if facts else detect_datetime_columns(features, data.datetime_columns, what)
    expanded = transform.expand_dates(features, dates)
    report = facts.report if facts else report_columns(expanded, data)
    report = {**report, "row_number": [name for name in row_numbers or [] if name in expanded.columns]}
    _warn_dropped(report, what)
    dropped = {name for group in report.values() for name in group}
    if missing := [name for name in data.categorical_columns if name not in expanded.columns]:
        raise DataError(f"{what}: data.categorical_columns names column(s) the data lacks: {', '.join(missing)}")
    columns, categories = {}, {}
    for name in (c for c in expanded.columns if c not in dropped):
        if _is_text(expanded[name]) or name in data.categorical_columns:
            columns[name] = CATEGORICAL
            categories[name] = (
                facts.categories[name] if facts else sorted(set(transform.category_text(expanded[name]).dropna()))
            )
        else:
            columns[name] = NUMERIC
    if not columns:
        raise DataError(f"{what}: no feature column is left besides the target '{data.target}'")
    schema = Schema(
        task=task,
        target=data.target,
        columns=columns,
        categories=categories,
        classes=classes,
        positive_class=positive,
        inputs={**(id_inputs or {}), **{str(c): raw_kind(raw[c]) for c in raw.columns}},
        ignored_inputs=sorted((dropped & set(map(str, raw.columns))) | set(id_inputs or {})),
        datetime_columns=dates,
        hook=hook,
    )
    return schema, report


def check_target(target: pd.Series, schema: Schema, what: str) -> pd.Series:
    """Rows to score against a target: no missing values; labels the model knows (classification), numbers
    (regression). Returns the target as the model learns it: class indexes 0..k-1, or the numbers."""
    name = target.name
    if missing := int(target.isna().sum()):
        raise DataError(
            f"{what}: target column '{name}' is empty in {missing} of {len(target)} rows; drop or fill those rows"
        )
    if schema.is_classification:
        return encode_target(target, schema, what)
    if pd.api.types.is_bool_dtype(target) or not pd.api.types.is_numeric_dtype(target):
        raise DataError(f"{what}: target column '{name}' must be numeric for regression, not {target.dtype}")
    return target


def encode_target(target: pd.Series, schema: Schema, what: str):
    """Class indexes 0..k-1 of the labels (classification); the target as it is (regression)."""
    if not schema.is_classification:
        return target
    try:
        return pd.Series(transform.encode_labels(target, schema.classes), index=target.index, name=target.name)
    except transform.InputError as exc:
        raise DataError(f"{what}: {exc}") from exc


def conform(
    frame: pd.DataFrame,
    schema: Schema,
    what: str,
    with_target: bool = False,
    dates: bool = False,
    encoded: bool = False,
) -> pd.DataFrame:
    """The schema's model inputs (plus the target if asked: as labels, or as class indexes with `encoded`):
    numeric as float64, categorical with the training category set; with `dates`, date columns of hooked rows are
    first turned into their parts. Missing or mistyped columns are a DataError naming them; a category never seen
    in training becomes missing (warned)."""
    document = schema.to_dict()
    try:
        expanded = transform.expand_dates(frame, schema.datetime_columns) if dates else frame
        conformed = transform.conform(expanded, document)
    except transform.InputError as exc:
        raise DataError(f"{what} {exc}" if str(exc).startswith("lacks") else f"{what}: {exc}") from exc
    for name, examples in transform.unseen_categories(expanded, conformed, document).items():
        logger.warning(
            "{}: column '{}' has value(s) not seen in training (e.g. {}), scored as missing",
            what,
            name,
            ", ".join(map(repr, examples)),
        )
    if with_target:
        if schema.target not in frame.columns:
            raise DataError(f"{what} lacks the target column '{schema.target}'")
        learnt = check_target(frame[schema.target], schema, what)
        conformed[schema.target] = learnt if encoded else frame[schema.target]
    return conformed


def schema_document(schema: Schema, report: dict[str, list[str]]) -> dict[str, Any]:
    """The JSON document logged as `data/schema.json`: the schema plus what preprocess reported."""
    return {**schema.to_dict(), "report": report}


def read_schema(document: dict[str, Any]) -> Schema:
    return Schema.from_dict({key: value for key, value in document.items() if key != "report"})
