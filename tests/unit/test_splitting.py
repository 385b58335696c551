"""pipeline.data.splitting: the same rows land in the same split as before the split was one module (scikit-learn's
`train_test_split` on engine local, the seeded per-partition rule on engine dask), its errors, and that nothing else
in pipeline/ splits."""

import subprocess
import sys

import dask
import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from pipeline.config import SplitConfig
from pipeline.data import splitting
from pipeline.data.sources import features_and_target
from pipeline.errors import ConfigError, DataError
from tests.helpers import REPO_ROOT

dd = pytest.importorskip("dask.dataframe")

CASES = [(stratify, classification) for stratify in (True, False) for classification in (True, False)]


def table(rows: int = 240) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=rows), "row": range(rows), "y": rng.integers(0, 3, rows)})


def config(stratify: bool = True) -> SplitConfig:
    return SplitConfig(
        method="random",
        time_column=None,
        test_start=None,
        gap=None,
        test_size=0.3,
        validation_size=0.2,
        seed=11,
        stratify=stratify,
    )


def previous_partition_rule(frame, share: float, seed: int):
    """The dask engine's split as pipeline/engines/dask/tables.py wrote it before, pinned here."""

    def part_rows(part, held_out, partition_info=None):
        number = partition_info["number"] if partition_info else 0
        drawn = np.random.default_rng([seed, number]).random(len(part)) < share
        return part[drawn if held_out else ~drawn]

    return tuple(frame.map_partitions(part_rows, held_out, meta=frame._meta) for held_out in (False, True))


@pytest.fixture(autouse=True)
def synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


@pytest.mark.parametrize(("stratify", "classification"), CASES)
def test_the_local_test_split_is_train_test_split_with_the_same_arguments(stratify, classification):
    frame, split = table(), config(stratify)
    expected = train_test_split(
        frame, test_size=0.3, random_state=11, stratify=frame["y"] if stratify and classification else None
    )
    got = splitting.test_split(frame, split, "y", classification)
    for part, want in zip(got, expected, strict=True):
        pd.testing.assert_frame_equal(part, want.reset_index(drop=True))


@pytest.mark.parametrize(("stratify", "classification"), CASES)
def test_the_local_validation_split_holds_the_rows_tune_split_off_its_arrays(stratify, classification):
    """tune used to split the features and the target apart; splitting the frame first gives the same rows."""
    train = splitting.test_split(table(), config(stratify), "y", classification)[0]
    features, target = features_and_target(train, "y")
    x_fit, x_valid, y_fit, y_valid = train_test_split(
        features, target, test_size=0.2, random_state=11, stratify=target if stratify and classification else None
    )
    fit, valid = splitting.validation_split(train, config(stratify), "y", classification)
    for part, want_x, want_y in ((fit, x_fit, y_fit), (valid, x_valid, y_valid)):
        got_x, got_y = features_and_target(part, "y")
        pd.testing.assert_frame_equal(got_x, want_x.reset_index(drop=True))
        pd.testing.assert_series_equal(got_y, want_y.reset_index(drop=True))


@pytest.mark.parametrize("partitions", [2, 3])
@pytest.mark.parametrize("stratify", [True, False])
def test_the_dask_splits_are_the_previous_per_partition_rule(partitions, stratify):
    frame, split = dd.from_pandas(table(), npartitions=partitions), config(stratify)
    train, test = splitting.test_split(frame, split, "y")
    pairs = [((train, test), previous_partition_rule(frame, 0.3, 11))]
    # tune's validation split on the cluster was seeded by split.seed + 1
    pairs.append((splitting.validation_split(train, split, "y"), previous_partition_rule(train, 0.2, 12)))
    for got, expected in pairs:
        for part, want in zip(got, expected, strict=True):
            pd.testing.assert_frame_equal(part.compute(), want.compute())
    rows = set(train["row"].compute()) | set(test["row"].compute())
    assert rows == set(range(240)) and len(train.compute()) + len(test.compute()) == 240


def test_an_unsplittable_table_names_its_rows_and_the_size():
    frame = pd.DataFrame({"x": range(4), "y": [0, 0, 0, 1]})  # one row of class 1 cannot be stratified
    with pytest.raises(DataError, match="cannot split 4 rows with test_size=0.3"):
        splitting.test_split(frame, config(), "y")
    with pytest.raises(DataError, match="cannot split 4 rows with validation_size=0.2"):
        splitting.validation_split(frame, config(), "y")


def test_an_unknown_method_or_frame_is_refused():
    with pytest.raises(ConfigError, match="unknown split method 'time2' \\(choose from random, stratified, time\\)"):
        splitting.split_rows(table(), 0.2, 1, "time2")
    with pytest.raises(TypeError, match="cannot split a ndarray"):
        splitting.split_rows(np.zeros((4, 2)), 0.5, 1)


def test_importing_the_module_does_not_import_sklearn():
    probe = "import sys, pipeline.data.splitting; print('sklearn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout == "False\n"


def test_nothing_else_in_the_package_splits_with_sklearn():
    splitters = {
        path.relative_to(REPO_ROOT).as_posix()
        for path in (REPO_ROOT / "pipeline").rglob("*.py")
        if "train_test_split" in path.read_text()
    }
    assert splitters == {"pipeline/data/splitting.py"}


# --- method time -----------------------------------------------------------------------------------------------------


def dated(rows: int = 300) -> pd.DataFrame:
    """A daily table stored out of time order, its date as ISO text (as a CSV gives it)."""
    rng = np.random.default_rng(2)
    days = pd.date_range("2012-01-01", periods=rows, freq="D")
    frame = pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "x": rng.normal(size=rows), "y": rng.normal(size=rows)})
    return frame.sample(frac=1, random_state=3).reset_index(drop=True)


def time_config(**keys) -> SplitConfig:
    return config().model_copy(update={"method": "time", "time_column": "date", **keys})


def split_in_time(frame, split: SplitConfig):
    order = splitting.time_order(frame, split)
    train, test = splitting.test_split(frame, split, "y", False, order)
    if hasattr(train, "compute"):
        train, test = train.compute(), test.compute()
    return order, train, test


@pytest.mark.parametrize("partitions", [0, 3])  # 0: pandas (engine local), else a Dask frame of that many parts
def test_the_test_split_is_the_latest_rows_and_train_is_in_time_order(partitions):
    frame = dated() if not partitions else dd.from_pandas(dated(), npartitions=partitions, sort=False)
    order, train, test = split_in_time(frame, time_config())
    assert len(train) + len(test) == 300
    assert 0.25 <= len(test) / 300 <= 0.35  # exact in pandas, Dask's quantile is approximate
    assert train["date"].max() < test["date"].min()
    assert train["date"].is_monotonic_increasing and "__split_time__" not in train.columns
    assert order.params["split.train_end"].startswith(train["date"].max())
    assert order.params["split.test_start"].startswith(test["date"].min())
    if not partitions:
        assert len(test) == 90  # the latest test_size share of the rows


@pytest.mark.parametrize("partitions", [0, 3])
def test_tune_validates_on_the_latest_train_rows(partitions):
    frame = dated() if not partitions else dd.from_pandas(dated(), npartitions=partitions, sort=False)
    split = time_config()
    order = splitting.time_order(frame, split)
    train, _ = splitting.test_split(frame, split, "y", False, order)
    fit, valid = splitting.validation_split(train, split, "y", False)
    if partitions:
        fit, valid = fit.compute(), valid.compute()
    rows = len(train) if not partitions else len(train.compute())
    assert len(fit) + len(valid) == rows and len(valid) == int(np.ceil(rows * 0.2))
    assert fit["date"].max() < valid["date"].min()


def test_a_start_and_a_gap_leave_the_rows_between_out():
    _, train, test = split_in_time(dated(), time_config(test_start="2012-09-01", gap="P7D"))
    assert test["date"].min() == "2012-09-01" and train["date"].max() == "2012-08-24"
    assert len(train) + len(test) == 300 - 7


def test_rows_without_a_time_and_an_empty_side_are_one_line_errors():
    frame = dated()
    frame.loc[[4, 9], "date"] = [None, "not a date"]
    with pytest.raises(DataError, match=r"^split.time_column 'date' has no time in 2 of 300 rows"):
        splitting.time_order(frame, time_config())
    with pytest.raises(DataError, match=r"^the time split leaves no test rows: date runs from 2012-01-01"):
        splitting.time_order(dated(), time_config(test_start="2020-01-01"))
    with pytest.raises(DataError, match="holds numbers"):
        splitting.time_order(dated().assign(date=range(300)), time_config())
    with pytest.raises(DataError, match="is not a column"):
        splitting.time_order(dated().drop(columns=["date"]), time_config())


def test_a_random_split_has_no_time_order():
    assert splitting.time_order(dated(), config()) is None


def test_tune_cv_folds_cover_the_train_split_once_each_stratified_or_forward_in_time():
    import numpy as np

    from pipeline.data.splitting import CV_AUTO_MAX_ROWS, cv_folds, validation_folds
    from tests.helpers import small_config_with

    frame = pd.DataFrame({"x": np.arange(200.0), "target": [0] * 160 + [1] * 40})
    split = small_config_with({}).split
    # auto: folds for a search against the clock on a small train split; a fixed count of trials keeps the holdout.
    assert cv_folds(CV_AUTO_MAX_ROWS, "auto", timed=True) == 5 and cv_folds(CV_AUTO_MAX_ROWS + 1, "auto", True) == 1
    assert cv_folds(100, "auto", timed=False) == 1
    assert cv_folds(100, "none", True) == 1 and cv_folds(100, 3, False) == 3
    folds = validation_folds(frame, split, "target", True, 5)
    validated = pd.concat([valid for _, valid in folds])
    assert len(folds) == 5 and sorted(validated["x"]) == list(frame["x"])  # every row validated once
    assert all(valid["target"].mean() == 0.2 for _, valid in folds)  # stratified: the class shares kept
    assert all(not set(fit.index) & set(valid.index) for fit, valid in folds)
    dated = small_config_with({"split.method": "time", "split.time_column": "day"}).split
    forward = validation_folds(frame, dated, "target", True, 4)
    assert all(fit.index.max() < valid.index.min() for fit, valid in forward)  # later rows validate
    (holdout,) = validation_folds(frame, split, "target", True, 1)
    assert len(holdout[1]) == 40  # one fold: the validation_size holdout, as before


def test_date_ranges_give_each_date_columns_earliest_and_latest_on_both_frames():
    import dask.dataframe as dd

    from pipeline.data.splitting import date_ranges

    table = pd.DataFrame(
        {
            "signup date": ["2024-03-01", "2023-12-31", None, "2025-01-15"],
            "seen": ["2024-01-01T10:30:00", "2024-01-02T00:00:00", "2024-01-01T00:00:00", "2024-01-03T08:00:00"],
            "x": [1, 2, 3, 4],
        }
    )
    expected = {
        "data.date_range.signup date": "2023-12-31 to 2025-01-15",
        "data.date_range.seen": "2024-01-01 to 2024-01-03T08:00:00",
    }
    train, test = table.iloc[:2], table.iloc[2:]  # the range spans both splits
    assert date_ranges([train, test], ["signup date", "seen", "not_in_the_splits"]) == expected
    dask_splits = [dd.from_pandas(train, npartitions=1), dd.from_pandas(test, npartitions=2)]
    assert date_ranges(dask_splits, ["signup date", "seen"]) == expected
    assert date_ranges([train, test], []) == {}


def test_a_date_range_param_name_is_one_mlflow_takes_and_never_overwrites_another():
    from mlflow.utils.validation import _validate_param_name

    from pipeline.data.splitting import date_ranges

    day = "2024-01-01"
    table = pd.DataFrame({"a/..": [day], "a?b": [day], "a!b": [day], "x" * 300: [day], "empty": [None]})
    ranges = date_ranges([table], list(table.columns))
    assert set(ranges) == {
        "data.date_range.a_..",
        "data.date_range.a_b",
        "data.date_range.a_b_2",
        "data.date_range." + "x" * 200,
    }  # an all-missing column has no range
    for key in ranges:
        _validate_param_name(key)
