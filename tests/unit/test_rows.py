"""What preprocess reads off the rows and their order before the split: row numbers and auto-increment keys (unique
integers growing with the file's row order) are ids, dropped and reported; rows whose target is empty are left out
(data.missing_target: drop) or refused (fail), and more than half of them is refused either way."""

import numpy as np
import pandas as pd
import pytest
from loguru import logger

from pipeline.config import DataConfig
from pipeline.data import transform
from pipeline.data.labels import rows_without_target
from pipeline.data.schema import build_schema, is_row_number, row_number_columns
from pipeline.errors import DataError

ROWS = 200


def sorted_by_target(rows: int = ROWS) -> pd.DataFrame:
    """A price table stored sorted by its price, with a row number 1..n: the row number alone gives the price away."""
    rng = np.random.default_rng(0)
    carat = rng.uniform(0.2, 3.0, rows)
    frame = pd.DataFrame({"carat": carat, "cut": rng.choice(["Fair", "Good", "Ideal"], rows)})
    frame["price"] = (carat * 4000 + rng.normal(0, 300, rows)).round()
    frame = frame.sort_values("price", ignore_index=True)
    frame.insert(0, "row", np.arange(1, rows + 1))
    return frame


@pytest.fixture
def warnings():
    """The warning lines logged during the test."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message).strip()), level="WARNING", format="{message}")
    yield lines
    logger.remove(sink)


def data(**settings) -> DataConfig:
    return DataConfig.whole_table(source="prices.csv", target="price", **settings)


def test_a_row_number_of_a_table_sorted_by_its_target_is_dropped_and_reported(warnings):
    table = sorted_by_target()
    found = row_number_columns(table, data())
    assert found == ["row"]
    train = table.sample(frac=0.8, random_state=1)  # the split shuffles: the order is gone from the training split
    assert not is_row_number(train["row"])
    schema, report = build_schema(train, train, data(), ("regression", [], None), False, "data", row_numbers=found)
    assert report["row_number"] == ["row"] and report["id_like"] == []
    assert "row" not in schema.columns and schema.inputs["row"] == "numeric" and schema.ignored_inputs == ["row"]
    assert transform.required_inputs(schema.to_dict()) == ["carat", "cut"]  # predict passes it through
    assert len(warnings) == 1 and warnings[0].startswith(
        "data: dropping 1 column(s) of unique integers growing with the file's row order"
    )
    assert warnings[0].endswith("list them in data.features to keep them): row")


def test_data_features_naming_a_row_number_keeps_it():
    table = sorted_by_target()
    assert row_number_columns(table, data(features=["row", "carat"])) == []
    schema, report = build_schema(table, table, data(features=["row", "carat"]), ("regression", [], None), False, "d")
    assert report["row_number"] == [] and "row" in schema.columns


@pytest.mark.parametrize(
    ("values", "is_one"),
    [
        (np.arange(1, ROWS + 1), True),  # a row number
        (np.arange(ROWS) * 7 + 1000, True),  # an auto-increment key with gaps
        (np.where(np.arange(ROWS) % 50 == 0, np.nan, np.arange(ROWS)), True),  # some missing: read as floats
        (np.r_[np.arange(ROWS - 4), [3, 50, 10, 90]] * 1.0 + 0.0, False),  # 4 repeated values: 98 % distinct
        (np.random.default_rng(0).permutation(ROWS), False),  # unique, but shuffled: not in row order
        (np.arange(ROWS)[::-1], False),  # falling with the row order: no key grows that way
        (np.arange(ROWS) + 0.5, False),  # not integers
        (np.arange(19), False),  # too few values to tell
        (np.arange(ROWS) // 2, False),  # half the values repeat
    ],
)
def test_the_row_number_rule(values, is_one):
    assert is_row_number(pd.Series(values)) is is_one


def test_a_key_a_little_out_of_order_is_still_one():
    key = np.arange(1, 1001)
    rng = np.random.default_rng(3)
    for start in rng.choice(990, 10, replace=False):  # late inserts: a few rows out of place
        key[start], key[start + 5] = key[start + 5], key[start]
    assert is_row_number(pd.Series(key))


def test_rows_without_a_target_are_counted_and_warned_with_drop(warnings):
    target = pd.Series([1.0, None, 3.0, 4.0, None, 6.0, 7.0, 8.0], name="price")
    assert rows_without_target(target, data(missing_target="drop"), "data") == 2
    assert warnings == [
        "data: leaving out 2 of 8 rows (25.0%) whose target 'price' is empty (data.missing_target: drop; fail "
        "refuses them)"
    ]
    assert rows_without_target(target.dropna(), data(missing_target="fail"), "data") == 0


def test_rows_without_a_target_are_refused_with_fail():
    target = pd.Series([1.0, 2.0, None, 4.0], name="price")
    with pytest.raises(DataError, match="target column 'price' is empty in 1 of 4 rows; drop or fill those rows$"):
        rows_without_target(target, data(missing_target="fail"), "data")


@pytest.mark.parametrize("policy", ["drop", "fail"])
def test_a_target_empty_in_more_than_half_the_rows_is_refused_either_way(policy):
    target = pd.Series([1.0, None, None, 4.0, None], name="price")
    with pytest.raises(DataError, match="is empty in 3 of 5 rows, more than half: is it the column to predict"):
        rows_without_target(target, data(missing_target=policy), "data")
    half = pd.Series([1.0, None, None, 4.0], name="price")
    if policy == "drop":
        assert rows_without_target(half, data(missing_target=policy), "data") == 2  # half is not more than half


@pytest.fixture
def prices_csv(tmp_path):
    """The sorted price table as a CSV, 10 of its prices empty."""
    table = sorted_by_target()
    table.loc[::20, "price"] = np.nan
    table.to_csv(tmp_path / "prices.csv", index=False)
    return tmp_path / "prices.csv"


def prices_config(source, engine: str, **overrides):
    from tests.helpers import small_config_with

    settings = {"data.source": str(source), "data.target": "price", "features.derived": False, "engine": engine}
    return small_config_with({**settings, **overrides})


def test_the_local_engine_leaves_out_rows_without_a_target_and_drops_the_row_number(prices_csv):
    from pipeline.engines.local.preprocess import prepare

    prepared = prepare(prices_config(prices_csv, "local"))
    assert prepared.n_rows_no_target == 10 and len(prepared.train) + len(prepared.test) == ROWS - 10
    assert prepared.report["row_number"] == ["row"] and "row" not in prepared.train.columns
    assert prepared.train["price"].notna().all() and prepared.test["price"].notna().all()
    with pytest.raises(DataError, match="is empty in 10 of 200 rows; drop or fill those rows"):
        prepare(prices_config(prices_csv, "local", **{"data.missing_target": "fail"}))


def test_the_dask_engine_leaves_out_rows_without_a_target_and_drops_the_row_number(prices_csv):
    dask = pytest.importorskip("dask")
    from pipeline.engines.dask.preprocess import prepare

    with dask.config.set(scheduler="synchronous"):
        splits, _, report, _, _, n_rows_no_target, _ = prepare(prices_config(prices_csv, "dask"))
        counts = [len(split) for split in dask.compute(*splits.values())]
        assert n_rows_no_target == 10 and sum(counts) == ROWS - 10
        assert report["row_number"] == ["row"] and "row" not in splits["train"].columns
        with pytest.raises(DataError, match="is empty in 10 of 200 rows; drop or fill those rows"):
            prepare(prices_config(prices_csv, "dask", **{"data.missing_target": "fail"}))


def test_the_dask_engine_finds_row_numbers_across_partitions():
    dask = pytest.importorskip("dask")
    from dask import dataframe as dd

    from pipeline.engines.dask.profile import row_number_columns as on_dask

    table = sorted_by_target(2000).assign(
        shuffled=np.random.default_rng(1).permutation(2000),  # unique, not in row order
        per_file=np.tile(np.arange(500), 4),  # a counter that starts again in each of 4 files
    )
    with dask.config.set(scheduler="synchronous"):
        assert on_dask(dd.from_pandas(table, npartitions=4), data()) == ["row"]
        assert on_dask(dd.from_pandas(table, npartitions=4), data(features=["row", "carat"])) == []
