"""Tabular data I/O: loading the configured source, the derived features, the split, and Parquet round trips."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from pipeline.config import DataConfig, SplitConfig
from pipeline.errors import DataError

SKLEARN_PREFIX = "sklearn:"
SKLEARN_DATASETS = ("breast_cancer", "wine", "iris", "diabetes", "digits")
RATIO_FEATURE = "symmetry_texture_ratio"
_RATIO_INPUTS = ("mean symmetry", "mean texture")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file; errors name the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix == ".csv":
            frame = pd.read_csv(path)
        else:
            raise DataError(f"data file {path}: unsupported type '{suffix}' (use .csv or .parquet)")
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"data file {path} cannot be read: {str(exc).splitlines()[0]}") from exc
    if frame.empty:
        raise DataError(f"data file {path} holds no rows")
    return frame


def load_source(data: DataConfig) -> pd.DataFrame:
    """Load the configured dataset as one frame holding the features and the target column."""
    if data.source.startswith(SKLEARN_PREFIX):
        frame = _load_sklearn(data.source.removeprefix(SKLEARN_PREFIX), data.target)
    else:
        frame = read_table(data.source)
    if data.target not in frame.columns:
        raise DataError(f"target column '{data.target}' not in {data.source} (columns: {_preview(frame.columns)})")
    return frame


def _load_sklearn(name: str, target: str) -> pd.DataFrame:
    if name not in SKLEARN_DATASETS:
        raise DataError(f"unknown scikit-learn dataset '{name}' (choose from {', '.join(SKLEARN_DATASETS)})")
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    return bunch.frame.rename(columns={"target": target})


def _preview(columns: pd.Index, limit: int = 8) -> str:
    names = [str(c) for c in columns[:limit]]
    return ", ".join(names) + (", ..." if len(columns) > limit else "")


def derive_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The template's feature hook: add the guide's `mean symmetry / mean texture` ratio when its inputs exist."""
    if RATIO_FEATURE in frame.columns or not all(c in frame.columns for c in _RATIO_INPUTS):
        return frame
    symmetry, texture = (frame[c] for c in _RATIO_INPUTS)
    return frame.assign(**{RATIO_FEATURE: symmetry / texture.where(texture != 0)})


def split_frame(frame: pd.DataFrame, target: str, split: SplitConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded train/test split, stratified on the target when asked."""
    stratify = frame[target] if split.stratify else None
    try:
        train, test = train_test_split(
            frame, test_size=split.test_size, random_state=split.seed, stratify=stratify
        )
    except ValueError as exc:
        raise DataError(f"cannot split {len(frame)} rows with test_size={split.test_size}: {exc}") from exc
    return train.reset_index(drop=True), test.reset_index(drop=True)


def features_and_target(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.Series]:
    if target not in frame.columns:
        raise DataError(f"target column '{target}' is not in the prepared data (was data.target changed after "
                        "preprocess ran? rerun preprocess)")
    return frame.drop(columns=[target]), frame[target]


def require_columns(frame: pd.DataFrame, required: list[str], what: str) -> None:
    """Raise a DataError naming every required column that `frame` lacks."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{what} lacks {len(missing)} column(s) the model needs: {', '.join(missing)}")


def digest(frame: pd.DataFrame) -> str:
    """A content hash of a frame (values and column order, not the index)."""
    return str(pd.util.hash_pandas_object(frame, index=False).sum())


def _non_numeric(frame: pd.DataFrame) -> list[str]:
    return [str(c) for c in frame.columns
            if not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))]


def check_features(frame: pd.DataFrame, what: str) -> None:
    """Features must be numeric or boolean (XGBoost's input here); name the columns that are not."""
    if bad := _non_numeric(frame):
        raise DataError(f"{what}: column(s) {', '.join(bad[:8])} are not numeric; convert or drop them")


def check_target(target: pd.Series, what: str) -> None:
    """A classification target: no missing values, integer class labels 0..k-1, at least two classes."""
    name = target.name
    if missing := int(target.isna().sum()):
        raise DataError(f"{what}: target column '{name}' is empty in {missing} of {len(target)} rows")
    if not pd.api.types.is_numeric_dtype(target) or pd.api.types.is_bool_dtype(target):
        raise DataError(f"{what}: target column '{name}' must hold integer class labels 0..k-1, "
                        f"not {target.dtype} values such as {target.iloc[0]!r}; encode it first")
    labels = sorted(target.unique().tolist())
    if len(labels) < 2:
        raise DataError(f"{what}: target column '{name}' holds a single class ({labels[0]!r}); need at least two")
    if labels != list(range(len(labels))):
        shown = ", ".join(str(label) for label in labels[:6]) + (", ..." if len(labels) > 6 else "")
        raise DataError(f"{what}: target column '{name}' must hold class labels 0..{len(labels) - 1}, "
                        f"got {shown} (regression targets are not supported yet)")


def frame_for_model(frame: pd.DataFrame, inputs: list[str], target: str, what: str) -> pd.DataFrame:
    """The columns a model needs plus the target, checked: nothing missing, numeric features, a valid target."""
    require_columns(frame, [*inputs, target], what)
    selected = frame[[*inputs, target]]
    check_features(selected[inputs], what)
    check_target(selected[target], what)
    return selected
