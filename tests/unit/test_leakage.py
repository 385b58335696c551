"""The leakage guards of pipeline/data/leakage.py on generated tables: a feature copied from the target with noise is
suspect, honest features are not (binary, multiclass, regression; missing values, a categorical column); what
warn, fail and drop do; test rows also in the train split; the dask engine's sample and hashed rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from loguru import logger

from pipeline.config import LeakageConfig
from pipeline.data import leakage
from pipeline.data.schema import CATEGORICAL, NUMERIC, Schema
from pipeline.errors import DataError

SEED = 42


@pytest.fixture
def capture_logs():
    """(level, message) of each line logged while the test runs."""
    lines: list[tuple[str, str]] = []
    sink = logger.add(lambda message: lines.append((message.record["level"].name, message.record["message"])))
    yield lines
    logger.remove(sink)


def schema_for(frame: pd.DataFrame, task: str, categorical: tuple[str, ...] = ()) -> Schema:
    columns = {name: CATEGORICAL if name in categorical else NUMERIC for name in frame.columns if name != "target"}
    return Schema(
        task=task,
        target="target",
        columns=columns,
        categories={name: sorted(frame[name].dropna().unique().tolist()) for name in categorical},
        inputs={name: "text" if name in categorical else "numeric" for name in columns},
    )


def typed(frame: pd.DataFrame, categorical: tuple[str, ...] = ()) -> pd.DataFrame:
    """Columns as `conform` types them: numeric float64, categorical as pandas categories."""
    kinds = {name: "category" if name in categorical else "float64" for name in frame.columns if name != "target"}
    return frame.astype(kinds)


def binary_table(rows: int, rng: np.random.Generator) -> pd.DataFrame:
    honest = rng.normal(size=rows)
    target = (honest + rng.normal(size=rows) > 0).astype(int)
    leak = target + rng.normal(scale=0.1, size=rows)
    leak[rng.random(rows) < 0.02] = np.nan  # a few gaps do not hide it
    return pd.DataFrame(
        {
            "honest": honest,
            "noise": rng.normal(size=rows),
            "gappy": np.where(rng.random(rows) < 0.4, np.nan, honest + rng.normal(size=rows)),
            "leak": leak,
            "city": rng.choice(["Oslo", "Lima", "Pune"], rows),
            "target": target,
        }
    )


def test_a_noisy_copy_of_a_binary_target_is_suspect_and_honest_features_are_not():
    frame = typed(binary_table(5000, np.random.default_rng(0)), ("city",))
    scores = leakage.feature_scores(frame, schema_for(frame, "binary", ("city",)), SEED)
    assert scores["leak"] >= 0.98
    assert 0.7 < scores["honest"] < 0.9 and 0.4 < scores["noise"] < 0.6 and 0.4 < scores["city"] < 0.6
    assert 0.5 < scores["gappy"] < 0.8  # missing values in a bin of their own


def test_a_categorical_copy_of_a_multiclass_target_is_suspect():
    rng = np.random.default_rng(1)
    target = rng.integers(0, 4, 3000)
    names = np.array(["a", "b", "c", "d"])[target]
    names[rng.random(3000) < 0.01] = "z"  # a little noise
    frame = pd.DataFrame({"label_text": names, "honest": target + rng.normal(scale=1.5, size=3000), "target": target})
    frame.loc[rng.random(3000) < 0.05, "label_text"] = None
    frame = typed(frame, ("label_text",))
    scores = leakage.feature_scores(frame, schema_for(frame, "multiclass", ("label_text",)), SEED)
    assert scores["label_text"] >= 0.98 and scores["honest"] < 0.9


def test_a_copy_of_a_skewed_regression_target_is_suspect():
    rng = np.random.default_rng(2)
    price = np.exp(rng.normal(8, 1, 20_000))  # prices: a long right tail
    frame = pd.DataFrame(
        {
            "price_with_tax": price * 1.2 + rng.normal(scale=10, size=20_000),
            "carat": np.log(price) + rng.normal(scale=0.5, size=20_000),
            "noise": rng.normal(size=20_000),
            "target": price,
        }
    )
    scores = leakage.feature_scores(frame, schema_for(frame, "regression"), SEED)
    assert scores["price_with_tax"] >= 0.98
    assert scores["carat"] < 0.9 and scores["noise"] < 0.05


def test_too_few_rows_or_a_single_class_score_nothing():
    rng = np.random.default_rng(3)
    few = pd.DataFrame({"x": rng.normal(size=10), "target": rng.integers(0, 2, 10)})
    assert leakage.feature_scores(few, schema_for(few, "binary"), SEED) == {"x": None}
    one_class = pd.DataFrame({"x": rng.normal(size=100), "target": np.ones(100, int)})
    assert leakage.feature_scores(one_class, schema_for(one_class, "binary"), SEED) == {"x": None}


def checked(action: str, what: str = "test data"):
    frame = typed(binary_table(2000, np.random.default_rng(4)), ("city",))
    schema = schema_for(frame, "binary", ("city",))
    found = leakage.check(frame, schema, LeakageConfig(threshold=0.98, action=action), SEED, what)
    return found, schema


def test_warn_names_the_suspects_in_one_line_and_keeps_them(capture_logs):
    found, schema = checked("warn")
    assert found.suspects == ["leak"] and found.sample_rows == 2000 and set(found.scores) == set(schema.columns)
    assert leakage.guard(found, schema, {"constant": []}, "test data") == (schema, {"constant": []})
    (line,) = [text for level, text in capture_logs if level == "WARNING"]
    assert "test data: suspected leakage: feature(s) 'leak' (roc_auc " in line and "action: warn" in line


def test_fail_refuses_in_one_line_naming_them():
    found, schema = checked("fail")
    with pytest.raises(DataError, match=r"feature\(s\) 'leak' \(roc_auc .*data.leakage.action: fail") as refused:
        leakage.guard(found, schema, {}, "test data")
    assert isinstance(refused.value, leakage.LeakageRefused) and refused.value.found is found
    assert "\n" not in str(refused.value)


def test_drop_removes_them_from_the_schema_as_ignored_inputs():
    found, schema = checked("drop")
    kept, report = leakage.guard(found, schema, {"constant": ["same"]}, "test data")
    assert "leak" not in kept.columns and "leak" in kept.ignored_inputs and "leak" in kept.inputs
    assert report == {"constant": ["same"], leakage.REPORT_GROUP: ["leak"]} and found.dropped == ["leak"]
    document = found.document()
    assert document["dropped"] == ["leak"] and document["action"] == "drop" and document["threshold"] == 0.98
    assert list(document["scores"])[0] == "leak" and document["sample_rows"] == 2000


def test_dropping_every_feature_is_an_error():
    frame = pd.DataFrame({"leak": np.repeat([0.0, 1.0], 100), "target": np.repeat([0, 1], 100)})
    schema = schema_for(frame, "binary")
    found = leakage.check(frame, schema, LeakageConfig(threshold=0.98, action="drop"), SEED, "test data")
    with pytest.raises(DataError, match="no feature column is left"):
        leakage.guard(found, schema, {}, "test data")


def test_the_sample_is_seeded_and_bounded():
    frame = pd.DataFrame({"x": range(1000)})
    assert len(leakage.sample(frame, SEED, rows=100)) == 100
    assert leakage.sample(frame, SEED, rows=100).equals(leakage.sample(frame, SEED, rows=100))
    assert leakage.sample(frame, SEED, rows=5000) is frame


def test_test_rows_also_in_the_train_split_are_counted(capture_logs):
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "c": pd.Categorical(["a", "b", "a", "b"]), "target": [0, 1, 0, 1]})
    test = pd.DataFrame({"x": [1.0, 2.0, 2.0, 9.0], "c": pd.Categorical(["a", "b", "a", "b"]), "target": [0, 1, 1, 1]})
    found = leakage.rows_in(leakage.row_hashes(test), leakage.row_hashes(train))
    assert found == 2  # (1, a, 0) and (2, b, 1); (2, a, 1) differs in a column
    leakage.warn_duplicates(found, len(test), "test data")
    leakage.warn_duplicates(1, 1000, "test data")  # 0.1 %: no line
    (line,) = [text for level, text in capture_logs if level == "WARNING"]
    assert "2 of the 4 test rows (50.0%) also appear in the train split" in line


def test_the_dask_sample_and_hashed_rows_agree_with_the_local_count():
    dask = pytest.importorskip("dask")
    dd = pytest.importorskip("dask.dataframe")
    from pipeline.engines.dask import tables

    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"x": rng.integers(0, 30, 3000).astype(float), "target": rng.integers(0, 2, 3000)})
    train, test = frame.iloc[:2400], frame.iloc[2400:]
    exact = leakage.rows_in(leakage.row_hashes(test), leakage.row_hashes(train))
    with dask.config.set(scheduler="synchronous"):
        lazy_train, lazy_test = dd.from_pandas(train, npartitions=4), dd.from_pandas(test, npartitions=2)
        rows, count = tables.sample_and_count(lazy_train, 1000, SEED)
        assert count == 2400 and len(rows) == 1000 and rows.index.is_unique
        assert tables.sample_and_count(lazy_train, 1000, SEED)[0].equals(rows)
        hashes = dask.compute(tables.hashed_rows(lazy_train, 1), tables.hashed_rows(lazy_test, 1))
        assert leakage.rows_in(hashes[1], hashes[0]) == exact
        counts, digests, hashed = tables.compute_together(
            {"x": lazy_train.shape[0]}, {"x": tables.digest(lazy_train)}, {"x": tables.hashed_rows(lazy_train)}
        )
        assert counts == {"x": 2400} and isinstance(digests["x"], str)  # each result where it was asked for
        assert len(hashed["x"]) == 2400


@pytest.mark.parametrize(("key", "value"), [("threshold", 0), ("threshold", 1.5), ("action", "ignore")])
def test_the_leakage_settings_are_checked(key, value):
    from pipeline.config import load_config
    from pipeline.errors import ConfigError
    from tests.helpers import DEFAULT_CONFIG

    with pytest.raises(ConfigError, match=f"data.leakage.{key}"):
        load_config(DEFAULT_CONFIG, {f"data.leakage.{key}": value})


def test_binning_by_grid_equals_a_binary_search_and_the_digests_match():
    from pipeline.data.digests import digest

    rng = np.random.default_rng(6)
    for values in (rng.normal(size=5000), np.exp(rng.normal(8, 1.5, 5000)), rng.integers(0, 10, 5000) * 1.0):
        known = np.sort(values[:2000])
        edges = np.unique(known[(np.arange(1, 256) * known.size) // 256])
        for probe in (values, edges, np.array([-1e300, 1e300])):
            assert (leakage._bin_of(probe, edges) == np.searchsorted(edges, probe, side="right")).all()
    train = pd.DataFrame({"x": rng.normal(size=50), "c": pd.Categorical(rng.choice(["a", "b"], 50)), "target": 1})
    test = train.head(10)
    found = leakage.count_test_rows_in_train(checked("warn")[0], train, test, "test data")
    assert found.n_test_rows_in_train == 10 and found.split_digests == (digest(train), digest(test))
