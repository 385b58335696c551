"""The tests' feature hook: a copy of the example that pipeline/features.py ships with (the breast-cancer ratio).

tests/configs/pipeline.yaml names this file (`features.hook`), so the tests that assert RATIO_FEATURE keep passing
whatever a user puts in pipeline/features.py. It keeps the hook contract (see pipeline/features.py): raw rows in,
the same rows with columns added out, any chunk on its own, pandas and numpy only (never the `pipeline` package).
On a table without its input columns it returns the frame unchanged.
"""

from __future__ import annotations

import pandas as pd

RATIO_FEATURE = "symmetry_texture_ratio"
_RATIO_INPUTS = ("mean symmetry", "mean texture")


def derive_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Example: `mean symmetry / mean texture` (missing where the texture is 0)."""
    if RATIO_FEATURE in frame.columns or not all(c in frame.columns for c in _RATIO_INPUTS):
        return frame
    symmetry, texture = (frame[c] for c in _RATIO_INPUTS)
    return frame.assign(**{RATIO_FEATURE: symmetry / texture.where(texture != 0)})
