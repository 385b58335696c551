"""Which rows are held out: preprocess's train/test split and tune's validation split, on both engines.

The frame picks the rule. A pandas DataFrame (engine local) goes through scikit-learn's `train_test_split`: shuffled,
seeded, stratified on the target when asked. A Dask DataFrame (engine dask) is split without a shuffle, partition by
partition: a row is held out with probability `size`, drawn from a generator seeded by (seed, partition number), so
the same data in the same partitions splits the same way every time; it is never stratified (class shares match in
expectation, see docs/design.md, Engines).

The method says how held-out rows are chosen (`METHODS`): a new one is a branch in `_local_split` and in
`_partition_split`, and a name in METHODS.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

import numpy as np
import pandas as pd

from pipeline.config import SplitConfig
from pipeline.errors import ConfigError, DataError

METHODS = ("random", "stratified")

# A pandas DataFrame or a Dask DataFrame: each split comes back as the same kind of frame.
Frame = TypeVar("Frame")


def split_method(split: SplitConfig, classification: bool) -> str:
    """The configured method: stratified on the target for a classification task with `split.stratify`, else
    random."""
    return "stratified" if split.stratify and classification else "random"


def test_split(frame: Frame, split: SplitConfig, target: str, classification: bool = True) -> tuple[Frame, Frame]:
    """preprocess's (train, test): `split.test_size` of the rows held out, seeded by `split.seed`."""
    method = split_method(split, classification)
    return split_rows(frame, split.test_size, split.seed, method, column=target, size_name="test_size")


test_split.__test__ = False  # type: ignore[attr-defined]  # pytest: not a test, even imported into a test module


def validation_split(frame: Frame, split: SplitConfig, target: str, classification: bool = True) -> tuple[Frame, Frame]:
    """tune's (fit, validation) of the train split: `split.validation_size` of its rows held out."""
    # Engine dask seeds with split.seed + 1: a train partition keeps its partition number, and with split.seed its
    # draws would come from the same generator as the test split's of that partition.
    seed = split.seed if isinstance(frame, pd.DataFrame) else split.seed + 1
    method = split_method(split, classification)
    return split_rows(frame, split.validation_size, seed, method, column=target, size_name="validation_size")


def split_rows(
    frame: Frame, size: float, seed: int, method: str = "random", *, column: str | None = None, size_name: str = "size"
) -> tuple[Frame, Frame]:
    """(kept, held out): `size` (a fraction) of the rows held out by `method`, seeded by `seed`; `column` is the one
    the method reads (the target, for stratified). `size_name` names `size` in the error for a table too small."""
    if method not in METHODS:
        raise ConfigError(f"unknown split method '{method}' (choose from {', '.join(METHODS)})")
    if isinstance(frame, pd.DataFrame):
        return cast(tuple[Frame, Frame], _local_split(frame, size, seed, method, column, size_name))
    if not hasattr(frame, "map_partitions"):
        raise TypeError(f"cannot split a {type(frame).__name__}: give a pandas or a Dask DataFrame")
    return cast(tuple[Frame, Frame], _partition_split(frame, size, seed, method))


def _local_split(
    frame: pd.DataFrame, size: float, seed: int, method: str, column: str | None, size_name: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split  # here: a command that splits nothing never imports it

    stratify = None
    if method == "stratified":
        if column is None:
            raise ValueError("the stratified split needs the column to stratify on")
        stratify = frame[column]
    try:
        kept, held_out = train_test_split(frame, test_size=size, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise DataError(f"cannot split {len(frame)} rows with {size_name}={size}: {exc}") from exc
    return kept.reset_index(drop=True), held_out.reset_index(drop=True)


def _partition_split(frame: Any, size: float, seed: int, method: str) -> tuple[Any, Any]:
    # "stratified" draws as "random" does: a partition cannot see the class shares of the others.
    kept = frame.map_partitions(_partition_rows, seed, size, False, meta=frame._meta)
    held_out = frame.map_partitions(_partition_rows, seed, size, True, meta=frame._meta)
    return kept, held_out


def _partition_rows(
    part: pd.DataFrame, seed: int, size: float, held_out: bool, partition_info: dict | None = None
) -> pd.DataFrame:
    """One partition's kept or held-out rows; Dask passes `partition_info` (the partition's number)."""
    number = partition_info["number"] if partition_info else 0
    drawn = np.random.default_rng([seed, number]).random(len(part)) < size
    return part[drawn if held_out else ~drawn]
