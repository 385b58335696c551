"""Scoring raw rows with a registered model of this pipeline, a chunk (or a Dask partition) at a time: the rows
followed by the model's answer, with the model's own errors as one-line DataErrors and unseen categories warned
of. The same on every engine."""

from __future__ import annotations

import pandas as pd
from loguru import logger

from pipeline.errors import DataError
from pipeline.modeling.profile import Tally


def score(served, chunk: pd.DataFrame, what: str, tally: Tally | None = None) -> pd.DataFrame:
    """The chunk followed by the model's answer (`prediction` and one `probability_<label>` column per class, or
    `prediction`), computed by the registered model's own code on the raw rows. MLflow's signature enforcement is
    left to clients sending JSON: here the model's transform types the columns itself, with errors that name the
    column and the value. With a `tally`, the scored rows are also counted into the model's profile bins."""
    try:
        answer, features = served.score(chunk)
    except served.input_error as exc:
        raise DataError(f"{what} {exc}" if str(exc).startswith("lacks") else f"{what}: {exc}") from exc
    for name, examples in served.transform.unseen_categories(chunk, features, served.schema).items():
        logger.warning(
            "{}: column '{}' has value(s) not seen in training (e.g. {}), scored as missing",
            what,
            name,
            ", ".join(map(repr, examples)),
        )
    scored = pd.concat([chunk.reset_index(drop=True), answer.reset_index(drop=True)], axis=1)
    if tally is not None:  # the batch's drift from the model's reference profile, counted as it is scored
        tally.add(scored, served.schema)
    return scored
