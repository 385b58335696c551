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

import math
import re
from typing import Any, NamedTuple, TypeVar, cast

import numpy as np
import pandas as pd
from loguru import logger

from pipeline.config import SplitConfig
from pipeline.errors import ConfigError, DataError

METHODS = ("random", "stratified", "time")
# Method time: each row's parsed time, carried through the split (and the train split's sort) and dropped after.
TIME = "__split_time__"

# A pandas DataFrame or a Dask DataFrame: each split comes back as the same kind of frame.
Frame = TypeVar("Frame")


def split_method(split: SplitConfig, classification: bool) -> str:
    """The configured method: time with `split.method: time`; else stratified on the target for a classification
    task with `split.stratify`, else random."""
    if split.method == "time":
        return "time"
    return "stratified" if split.stratify and classification else "random"


class TimeOrder(NamedTuple):
    """Method time, worked out on the whole table: each row's time, where the test split starts, where the train
    split must end (the start less `split.gap`), and the params preprocess logs."""

    times: Any  # a pandas or Dask Series of UTC timestamps, one per row of the table
    test_start: pd.Timestamp
    train_before: pd.Timestamp
    params: dict[str, str]


def time_order(table: Any, split: SplitConfig) -> TimeOrder | None:
    """Method time: the rows' times from `split.time_column` (ISO 8601 text or datetimes, read as UTC), the cut-off
    (`split.test_start`, or the time from which the latest `split.test_size` share of rows starts: exact in pandas,
    Dask's approximate quantile on a cluster), checked: every row has a time, both splits have rows, and no train
    row is later than a test row. None for the other methods."""
    if split.method != "time":
        return None
    assert split.time_column is not None, "validated with the config"
    times = _row_times(table, split.time_column)
    local = isinstance(table, pd.DataFrame)
    if split.test_start is not None:
        start = _utc(pd.Timestamp(split.test_start))
    elif local:
        ordered = np.sort(times.to_numpy())
        start = pd.Timestamp(ordered[len(ordered) - max(1, math.ceil(len(ordered) * split.test_size))])
    else:
        start = _utc(pd.Timestamp(times.quantile(1 - split.test_size).compute()))
    before = start - (pd.Timedelta(split.gap) if split.gap else pd.Timedelta(0))
    train_end, test_first = _computed(times[times < before].max(), times[times >= start].min())
    if pd.isna(train_end) or pd.isna(test_first):
        side = "train" if pd.isna(train_end) else "test"
        raise DataError(
            f"the time split leaves no {side} rows: {split.time_column} runs from {_iso(times.min(), local)} to "
            f"{_iso(times.max(), local)}, the test split starts at {_iso(start, True)}"
            + (f" and split.gap {split.gap} goes back to {_iso(before, True)}" if split.gap else "")
        )
    if train_end > test_first:  # cannot happen by the cut-off; a guard against a reader that reorders rows
        raise DataError(f"the time split puts train rows ({_iso(train_end, True)}) after test rows")
    params = {
        "split.method": "time",
        "split.train_end": _iso(train_end, True),
        "split.test_start": _iso(test_first, True),
    }
    gap = f" (split.gap {split.gap})" if split.gap else ""
    logger.info(
        "split.method time on '{}': train up to {}, test from {}{}",
        split.time_column,
        params["split.train_end"],
        params["split.test_start"],
        gap,
    )
    return TimeOrder(times, start, before, params)


def _utc(stamp: pd.Timestamp) -> pd.Timestamp:
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _iso(stamp: Any, computed: bool) -> str:
    value = stamp if computed else stamp.compute()
    return pd.Timestamp(value).isoformat()


def _computed(*values: Any) -> tuple[Any, ...]:
    if all(not hasattr(value, "compute") for value in values):
        return values
    import dask

    return dask.compute(*values)


def _row_times(table: Any, column: str) -> Any:
    if column not in table.columns:
        raise DataError(
            f"split.time_column '{column}' is not a column of the table (name it in data.features or "
            "data.id_columns when you list the columns)"
        )
    values = table[column]
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_datetime64_any_dtype(values.dtype):
        raise DataError(f"split.time_column '{column}' holds numbers: it must hold dates or times (ISO 8601 text)")
    options = {"errors": "coerce", "utc": True, "format": "ISO8601"}
    if isinstance(table, pd.DataFrame):
        times = pd.to_datetime(values, **options)
        missing, rows = int(times.isna().sum()), len(times)
    else:
        import dask.dataframe as dd

        times = dd.to_datetime(values, **options)
        missing, rows = (int(count) for count in _computed(times.isna().sum(), times.shape[0]))
    if missing:
        raise DataError(
            f"split.time_column '{column}' has no time in {missing} of {rows} rows (empty, or not an ISO 8601 date "
            "or time): fill or drop those rows"
        )
    return times


def test_split(
    frame: Frame, split: SplitConfig, target: str, classification: bool = True, order: TimeOrder | None = None
) -> tuple[Frame, Frame]:
    """preprocess's (train, test): `split.test_size` of the rows held out, seeded by `split.seed`; method time
    (`order` from `time_order` on the same table): the rows from the cut-off on are test, those before it less the
    gap are train, sorted by time (so tune's validation split can take the latest of them)."""
    method = split_method(split, classification)
    if method == "time":
        if order is None:
            raise ValueError("the time split needs the table's TimeOrder")
        return cast(tuple[Frame, Frame], _time_split(frame, order))
    return split_rows(frame, split.test_size, split.seed, method, column=target, size_name="test_size")


def _time_split(frame: Any, order: TimeOrder) -> tuple[Any, Any]:
    marked = frame.assign(**{TIME: order.times})
    train = marked[marked[TIME] < order.train_before].sort_values(TIME)
    test = marked[marked[TIME] >= order.test_start].sort_values(TIME)
    train, test = train.drop(columns=[TIME]), test.drop(columns=[TIME])
    if isinstance(frame, pd.DataFrame):
        return train.reset_index(drop=True), test.reset_index(drop=True)
    return train, test


test_split.__test__ = False  # type: ignore[attr-defined]  # pytest: not a test, even imported into a test module


def validation_split(frame: Frame, split: SplitConfig, target: str, classification: bool = True) -> tuple[Frame, Frame]:
    """tune's (fit, validation) of the train split: `split.validation_size` of its rows held out."""
    # Engine dask seeds with split.seed + 1: a train partition keeps its partition number, and with split.seed its
    # draws would come from the same generator as the test split's of that partition.
    seed = split.seed if isinstance(frame, pd.DataFrame) else split.seed + 1
    method = split_method(split, classification)
    if method == "time":  # the train split is in time order (test_split sorted it): the latest rows validate
        return cast(tuple[Frame, Frame], _latest_rows(frame, split.validation_size))
    return split_rows(frame, split.validation_size, seed, method, column=target, size_name="validation_size")


# tune.cv: auto uses this many folds when tuning has a time budget and the train split at most CV_AUTO_MAX_ROWS rows.
CV_AUTO_FOLDS, CV_AUTO_MAX_ROWS = 5, 10_000


def cv_folds(rows: int, cv: int | str, timed: bool) -> int:
    """How many folds tune's trials validate on: 1 (the `split.validation_size` holdout) or k (`tune.cv`). auto:
    folds only for a search against the clock (`timed`: tune.timeout_s) on a small train split, where fewer trials
    chosen on every row beat more trials chosen on one small holdout (benchmarks/equal_budget.py); a count of trials
    without a budget keeps the holdout, which folds would make k times slower."""
    if cv == "none":
        return 1
    if cv == "auto":
        return CV_AUTO_FOLDS if timed and rows <= CV_AUTO_MAX_ROWS else 1
    return int(cv)


def validation_folds(
    frame: pd.DataFrame, split: SplitConfig, target: str, classification: bool, folds: int
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """tune's (fit, validation) pairs of the train split: the holdout of `validation_split` for one fold; else k
    folds, stratified for classification with a random split, forward in time with a time split (each fold
    validated on rows later than those it fits on; the train split is in time order)."""
    if folds == 1:
        return [validation_split(frame, split, target, classification)]
    from sklearn.model_selection import KFold, StratifiedKFold, TimeSeriesSplit

    method = split_method(split, classification)
    if method == "time":
        plan = TimeSeriesSplit(n_splits=folds).split(frame)
    elif method == "stratified":
        plan = StratifiedKFold(folds, shuffle=True, random_state=split.seed).split(frame, frame[target])
    else:
        plan = KFold(folds, shuffle=True, random_state=split.seed).split(frame)
    return [(frame.iloc[fit], frame.iloc[valid]) for fit, valid in plan]


def split_rows(
    frame: Frame, size: float, seed: int, method: str = "random", *, column: str | None = None, size_name: str = "size"
) -> tuple[Frame, Frame]:
    """(kept, held out): `size` (a fraction) of the rows held out by `method`, seeded by `seed`; `column` is the one
    the method reads (the target, for stratified). `size_name` names `size` in the error for a table too small."""
    if method not in METHODS:
        raise ConfigError(f"unknown split method '{method}' (choose from {', '.join(METHODS)})")
    if method == "time":
        raise ValueError("the time split reads the rows' times: call test_split with the table's TimeOrder")
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


def _latest_rows(frame: Any, size: float) -> tuple[Any, Any]:
    """(earlier, latest): the last `size` share of the rows in the frame's order held out."""
    if isinstance(frame, pd.DataFrame):
        held = max(1, math.ceil(len(frame) * size))
        if held >= len(frame):
            raise DataError(f"cannot split {len(frame)} rows with validation_size={size}")
        return frame.iloc[:-held].reset_index(drop=True), frame.iloc[-held:].reset_index(drop=True)
    lengths = frame.map_partitions(len).compute().tolist()
    first = sum(lengths) - max(1, math.ceil(sum(lengths) * size))  # global position of the first held-out row
    offsets = np.cumsum([0, *lengths[:-1]]).tolist()
    earlier = frame.map_partitions(_rows_by_position, offsets, first, False, meta=frame._meta)
    latest = frame.map_partitions(_rows_by_position, offsets, first, True, meta=frame._meta)
    return earlier, latest


def _rows_by_position(
    part: pd.DataFrame, offsets: list[int], first: int, latest: bool, partition_info: dict | None = None
) -> pd.DataFrame:
    number = partition_info["number"] if partition_info else 0
    position = offsets[number] + np.arange(len(part))
    return part[position >= first] if latest else part[position < first]


DATE_RANGE_PARAM = "data.date_range."  # + the date column's name: "<earliest> to <latest>" (ISO), for the model card
_UNSAFE_PARAM = re.compile(r"[^0-9A-Za-z_\-. ]")  # MLflow's param names allow these (and `/`, with path rules)
_PARAM_NAME_CHARS = 200  # MLflow takes 250


def date_ranges(frames: list[Any], columns: list[str]) -> dict[str, str]:
    """The earliest and latest value of each date column over the given frames (the train and test splits after the
    feature hook, as the model sees them; pandas, or Dask: one pass over those columns), as params preprocess logs.
    A name MLflow refuses has its other characters replaced by `_` (and `_2`, `_3` where two come out the same)."""
    from pipeline.data.transform import parse_dates, unused_name

    def parsed(frame: Any, name: str) -> Any:
        if isinstance(frame, pd.DataFrame):
            return parse_dates(frame[name], name)
        return frame[name].map_partitions(parse_dates, name, meta=(name, "datetime64[ns]"))

    present = [name for name in columns if all(name in frame.columns for frame in frames)]
    times = [parsed(frame, name) for name in present for frame in frames]
    bounds = _computed(*(value for series in times for value in (series.min(), series.max())))
    ranges: dict[str, str] = {}
    for i, name in enumerate(present):
        found = [stamp for stamp in bounds[2 * i * len(frames) : 2 * (i + 1) * len(frames)] if not pd.isna(stamp)]
        if not found:
            continue  # every value missing
        key = unused_name(DATE_RANGE_PARAM + _UNSAFE_PARAM.sub("_", name)[:_PARAM_NAME_CHARS], ranges)
        ranges[key] = f"{_day_or_time(min(found))} to {_day_or_time(max(found))}"
    return ranges


def _day_or_time(stamp: Any) -> str:
    value = pd.Timestamp(stamp)
    return value.date().isoformat() if value == value.normalize() else value.isoformat()
