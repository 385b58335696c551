"""The schema's facts about the whole training split, computed on the cluster in two passes: per column the count
of values, min and max (numbers) and an approximate distinct count (text); then the exact category set of each
categorical column. What a sample decides instead (column kinds, which text columns hold dates) comes from
`pipeline.data.schema.build_schema` on the first rows.

Row numbers are judged apart, on the table before the split (`row_number_columns`): on rows sampled in the file's
order, then confirmed on every row."""

from __future__ import annotations

import pandas as pd
from loguru import logger

from pipeline.config import DataConfig
from pipeline.data import schema, transform
from pipeline.data.schema import ID_DISTINCT_SHARE, ID_MIN_ROWS, ColumnFacts, detect_datetime_columns, raw_kind
from pipeline.engines.dask import tables

# Row numbers are recognised on about ORDER_SAMPLE_ROWS rows in the file's order: the first rows of up to
# ORDER_SAMPLE_PARTS partitions spread over the table. Their distinct share is then confirmed on the whole table
# with an approximate distinct count (HyperLogLog, about 0.5 % off), hence the allowance below.
ORDER_SAMPLE_ROWS, ORDER_SAMPLE_PARTS, APPROX_DISTINCT_ALLOWANCE = 10_000, 10, 0.02


def _category_values(column: pd.Series) -> pd.Series:
    return transform.category_text(column).dropna().drop_duplicates()


def row_number_columns(frame, data: DataConfig) -> list[str]:
    """The row numbers of the loaded table (a Dask DataFrame, before the split): the numeric columns that
    `pipeline.data.schema.is_row_number` calls one on rows sampled in the file's order (the partitions' order), kept
    when their approximate distinct count over every row agrees. The whole table is read (those columns only) only
    when the sample finds one."""
    import dask

    numeric = [name for name in frame.columns if raw_kind(frame._meta[name]) == "numeric"]
    if not numeric:
        return []
    sample = tables.spread_rows(frame[numeric], ORDER_SAMPLE_ROWS, ORDER_SAMPLE_PARTS)
    if not (found := schema.row_number_columns(sample, data)):
        return []
    counts, distinct = dask.compute(frame[found].count(), {name: frame[name].nunique_approx() for name in found})
    share = schema.ROW_NUMBER_DISTINCT_SHARE - APPROX_DISTINCT_ALLOWANCE
    return [name for name in found if distinct[name] >= share * counts[name]]


def column_facts(hooked_train, sample: pd.DataFrame, data: DataConfig, what: str) -> ColumnFacts:
    """Facts of the hooked training split (a Dask DataFrame, without the target) for build_schema; `sample` is its
    first rows, from which date columns are found (a later value that is no date fails the step, naming it)."""
    import dask

    dates = detect_datetime_columns(sample, data.datetime_columns, what)
    expanded = hooked_train.map_partitions(
        transform.expand_dates, dates, meta=transform.expand_dates(sample, dates).iloc[:0]
    )
    kinds = {str(name): raw_kind(expanded._meta[name]) for name in expanded.columns}
    text = [name for name, kind in kinds.items() if kind == "text"]
    numbers = [name for name, kind in kinds.items() if kind != "text"]
    logger.info("{}: profiling {} columns on the cluster", what, len(kinds))
    counts, n_rows, lows, highs, distinct = dask.compute(
        expanded.count(),
        expanded.shape[0],
        expanded[numbers].min() if numbers else None,
        expanded[numbers].max() if numbers else None,
        {name: expanded[name].nunique_approx() for name in text},
    )
    keep = set(data.features or [])
    empty = [name for name in kinds if counts[name] == 0]
    id_like = [
        name
        for name in text
        if name not in keep
        and name not in empty
        and counts[name] >= ID_MIN_ROWS
        and distinct[name] >= ID_DISTINCT_SHARE * counts[name]
    ]
    wanted = [n for n in kinds if n not in empty and n not in id_like and (n in text or n in data.categorical_columns)]
    (value_sets,) = dask.compute(
        {name: expanded[name].map_partitions(_category_values, meta=(name, object)).unique() for name in wanted}
    )
    categories = {name: sorted(set(values)) for name, values in value_sets.items()}
    constant = [
        name
        for name in kinds
        if name not in empty
        and counts[name] == n_rows
        and (len(categories[name]) == 1 if name in categories else name in numbers and lows[name] == highs[name])
    ]
    return ColumnFacts(dates, {"all_missing": empty, "constant": constant, "id_like": id_like}, categories)
