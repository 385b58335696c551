"""The schema's facts about the whole training split, computed on the cluster in two passes: per column the count
of values, min and max (numbers) and an approximate distinct count (text); then the exact category set of each
categorical column. What a sample decides instead (column kinds, which text columns hold dates) comes from
`pipeline.data.schema.build_schema` on the first rows."""

from __future__ import annotations

import pandas as pd
from loguru import logger

from pipeline.config import DataConfig
from pipeline.data import transform
from pipeline.data.schema import ID_DISTINCT_SHARE, ID_MIN_ROWS, ColumnFacts, detect_datetime_columns, raw_kind


def _category_values(column: pd.Series) -> pd.Series:
    return transform.category_text(column).dropna().drop_duplicates()


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
