"""The feature hook: derived columns computed from the raw ones, the same way in preprocess, evaluate and predict.

This is the one function to replace when the template is used for other data. It receives the raw table (features,
and the target where there is one) and returns it with the derived columns added. It must work on any chunk of
rows on its own (predict scores files in chunks), and it should return the frame unchanged when the columns it
needs are absent, so that other datasets pass through it untouched. Turn it off with `features.derived: false`.
"""

from __future__ import annotations

import pandas as pd

RATIO_FEATURE = "symmetry_texture_ratio"
_RATIO_INPUTS = ("mean symmetry", "mean texture")


def derive_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The original guide's feature for the breast-cancer data: `mean symmetry / mean texture`."""
    if RATIO_FEATURE in frame.columns or not all(c in frame.columns for c in _RATIO_INPUTS):
        return frame
    symmetry, texture = (frame[c] for c in _RATIO_INPUTS)
    return frame.assign(**{RATIO_FEATURE: symmetry / texture.where(texture != 0)})
