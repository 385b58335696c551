"""The feature hook: columns derived from the raw ones. Replace the body of `derive_features` for your data.

    def derive_features(frame):
        return frame                                              # no derived features
        return frame.assign(tenure_years=frame["tenure_months"] / 12)   # or your own

How it is used (the contract your replacement must keep):
- It receives raw rows as the source table has them: in preprocess with the target column, in the registered
  model (predict, `mlflow models serve`) without it. Return the frame with your columns added, one row per row.
- It runs on any chunk of rows on its own (predict scores files in chunks; a served request may be one row).
- It travels inside the registered model (preprocess logs this file, train packs it into the model), so it may
  import libraries the model has (pandas, numpy) but nothing from the `pipeline` package.
- `features.hook` in the config names the file (this one by default); `features.derived: false` turns it off.

The example below is the original guide's feature for the breast-cancer table; on a table without its input
columns it returns the frame unchanged.
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
