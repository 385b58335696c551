"""The feature hook named by `features.hook`: where its file is, loading it, and running it with one-line errors.

preprocess runs it and logs the file it ran as `data/feature_hook.py`; train packs that very file into the
registered model, so the model derives features with the code its training data was made with.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.config import PipelineConfig
from pipeline.data import transform
from pipeline.errors import ConfigError, DataError, first_line

# Relative hook paths are relative to the project folder (where MLproject is), wherever the step runs from.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def hook_path(config: PipelineConfig) -> Path | None:
    """The hook file to run, or None when `features.derived` is false."""
    if not config.features.derived:
        return None
    path = Path(config.features.hook)
    return path if path.is_absolute() else PROJECT_ROOT / path


def load(path: Path | None) -> transform.Hook | None:
    if path is None:
        return None
    if not path.is_file():
        raise ConfigError(
            f"features.hook: {path} not found (a Python file defining derive_features(frame); or set "
            "features.derived: false)"
        )
    try:
        return transform.load_hook(path)
    except transform.InputError as exc:
        raise ConfigError(f"features.hook: {exc}") from exc
    except Exception as exc:
        raise ConfigError(f"features.hook {path} cannot be imported: {type(exc).__name__}: {first_line(exc)}") from exc


def apply(frame: pd.DataFrame, hook: transform.Hook | None, what: str) -> pd.DataFrame:
    """The rows with the hook's columns added (unchanged without a hook)."""
    if hook is None:
        return frame
    try:
        return transform.apply_hook(frame, hook)
    except Exception as exc:
        raise DataError(f"{what}: the feature hook failed: {type(exc).__name__}: {first_line(exc)}") from exc
