"""The target: which task it is, and for classification its labels in the model's class order.

Labels may be text, booleans or any numbers (`yes`/`no`, `Adelie`/`Gentoo`, `1`/`2`, `-1`/`1`): the model learns
class indexes 0..k-1 and the label list (kept in `data/schema.json` and inside the registered model) turns them back.
Order: binary tasks put the positive class second (XGBoost's probability is the second class's, and metrics such as
F1 and PR AUC are of the positive class); multiclass tasks sort the labels.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from loguru import logger

from pipeline.config import DataConfig, SplitConfig
from pipeline.errors import DataError

# An integer target with labels 0..k-1 and at most this many classes is taken for class labels when data.task is
# auto; other integer targets with more than two values are regression targets (logged, with how to say otherwise).
MAX_INFERRED_CLASSES = 20
# Positive class of a binary task when data.positive_class is not set: the first of these that is a label
# (text compared without case), else the second label in sorted order.
POSITIVE_CANDIDATES = (1, True, "yes", "true")
# A target empty in more than this share of the rows is refused whatever data.missing_target says: it is hardly the
# column to predict (or the file was misread).
MAX_NO_TARGET_SHARE = 0.5


def infer_task(target: pd.Series) -> tuple[str, str]:
    """The task a target column suggests, with the reason (logged, so the user knows what to set)."""
    values = target.dropna()
    count = values.nunique()
    if pd.api.types.is_bool_dtype(target) or not pd.api.types.is_numeric_dtype(target):
        kind = "boolean" if pd.api.types.is_bool_dtype(target) else "text"
        return ("binary" if count == 2 else "multiclass"), f"the target holds {count} {kind} labels"
    integral = bool((values == values.round()).all())
    if integral and count == 2:
        return "binary", "the target holds two distinct integer values"
    labels = sorted(values.unique().tolist())
    if integral and labels == list(range(count)) and count <= MAX_INFERRED_CLASSES:
        return "multiclass", f"the target holds the integer class labels 0..{count - 1}"
    if integral and count <= MAX_INFERRED_CLASSES:
        return "regression", (
            f"the target holds {count} distinct integers that are not 0..{count - 1}; set "
            "data.task: multiclass if they are classes"
        )
    return "regression", f"the target is numeric with {count} distinct values"


def resolve_task(configured: str, target: pd.Series, what: str) -> str:
    """`data.task`, or the inferred one when it is `auto` (with a log line saying why)."""
    if configured != "auto":
        return configured
    task, reason = infer_task(target)
    logger.info("{}: task inferred as {} ({}); set data.task to choose", what, task, reason)
    return task


def rows_needed_per_class(split: SplitConfig) -> int:
    """Rows a class needs so that a stratified split can put it in both the test and the train split."""
    return max(3, math.ceil(1 / split.test_size))


def _native(label: Any) -> Any:
    return label.item() if hasattr(label, "item") else label


def _matches(label: Any, wanted: Any) -> bool:
    return label == wanted or str(label).lower() == str(wanted).lower()


def positive_class(labels: list[Any], configured: Any, name: str) -> tuple[Any, str]:
    """The positive label of a binary target, and why it was chosen."""
    if configured is not None:
        # Same value and same kind (True is not 1), or the same text (a label 2 given as '2').
        found = [
            label
            for label in labels
            if str(label) == str(configured)
            or (label == configured and isinstance(label, bool) == isinstance(configured, bool))
        ]
        if not found:
            hint = (
                " (YAML reads yes/no/on/off as booleans: quote the label, e.g. 'yes')"
                if isinstance(configured, bool)
                else ""
            )
            raise DataError(
                f"data.positive_class {configured!r} is not a label of target column '{name}' (labels: "
                f"{', '.join(map(repr, labels))}){hint}"
            )
        return found[0], "data.positive_class"
    for candidate in POSITIVE_CANDIDATES:
        if found := [label for label in labels if _matches(label, candidate)]:
            return found[0], f"the label {found[0]!r} reads as positive"
    return labels[1], "the second label in sorted order"


def _check_counts(target: pd.Series, split: SplitConfig, what: str) -> None:
    counts = target.value_counts()
    name = target.name
    if len(counts) < 2:
        raise DataError(
            f"{what}: target column '{name}' holds one class ({_native(counts.index[0])!r}, "
            f"{int(counts.iloc[0])} rows); a classifier needs at least two"
        )
    need = rows_needed_per_class(split)
    if (small := counts[counts < need]).any():
        label, count = _native(small.index[-1]), int(small.iloc[-1])
        raise DataError(
            f"{what}: class {label!r} of target column '{name}' has {count} row(s); the split "
            f"(test_size={split.test_size}) needs at least {need} per class: add rows, or drop or merge "
            "that class"
        )


def _empty_target(name: Any, missing: int, total: int, what: str) -> DataError:
    return DataError(f"{what}: target column '{name}' is empty in {missing} of {total} rows; drop or fill those rows")


def rows_without_target(target: pd.Series, data: DataConfig, what: str) -> int:
    """How many rows of the table have an empty target, once data.missing_target allows them: `drop` (warned, with
    the count and the share; the caller leaves them out before the split) or `fail` (refused, as settle_labels
    does); more than half the rows empty is refused either way."""
    name, total = target.name, len(target)
    if not (missing := int(target.isna().sum())):
        return 0
    if missing > MAX_NO_TARGET_SHARE * total:
        raise DataError(
            f"{what}: target column '{name}' is empty in {missing} of {total} rows, more than half: is it the "
            "column to predict?"
        )
    if data.missing_target == "fail":
        raise _empty_target(name, missing, total, what)
    logger.warning(
        "{}: leaving out {} of {} rows ({:.1%}) whose target '{}' is empty (data.missing_target: drop; fail "
        "refuses them)",
        what,
        missing,
        total,
        missing / total,
        name,
    )
    return missing


def settle_labels(target: pd.Series, data: DataConfig, split: SplitConfig, what: str) -> tuple[str, list[Any], Any]:
    """The task, the class labels in the model's order and the positive class (binary), after checking that the
    target can be learnt: no missing values, numeric for regression, two classes or more with enough rows each."""
    name = target.name
    if missing := int(target.isna().sum()):  # the callers leave such rows out first (rows_without_target)
        raise _empty_target(name, missing, len(target), what)
    task = resolve_task(data.task, target, what)
    if task == "regression":
        if pd.api.types.is_bool_dtype(target) or not pd.api.types.is_numeric_dtype(target):
            raise DataError(
                f"{what}: target column '{name}' must be numeric for regression, not {target.dtype} "
                f"values such as {_native(target.iloc[0])!r}"
            )
        if target.nunique() < 2:
            raise DataError(
                f"{what}: target column '{name}' holds a single value ({_native(target.iloc[0])!r}); nothing to learn"
            )
        return task, [], None
    _check_counts(target, split, what)
    labels = sorted(_native(label) for label in target.unique().tolist())
    if (task == "binary") != (len(labels) == 2):
        raise DataError(
            f"{what}: data.task is {task} but target column '{name}' holds {len(labels)} classes; "
            f"set data.task to {'binary' if len(labels) == 2 else 'multiclass'} (or auto)"
        )
    if task == "multiclass":
        logger.info("{}: {} classes, in model order: {}", what, len(labels), ", ".join(map(repr, labels)))
        return task, labels, None
    positive, reason = positive_class(labels, data.positive_class, str(name))
    negative = next(label for label in labels if label != positive)
    logger.info(
        "{}: positive class {!r} ({}), negative class {!r}; set data.positive_class to choose",
        what,
        positive,
        reason,
        negative,
    )
    return task, [negative, positive], positive
