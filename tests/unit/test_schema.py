"""The task and schema rules: what preprocess infers and what evaluate and predict demand of incoming rows."""

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import DataError
from pipeline.schema import Schema, build_schema, check_target, conform, infer_task, report_columns


@pytest.mark.parametrize(("values", "task"), [
    ([0, 1, 1, 0], "binary"),
    ([0, 2, 1, 1], "multiclass"),
    ([True, False, True], "binary"),
    ([25.0, 151.0, 75.0, 141.0], "regression"),   # integral, but not labels 0..k-1 (diabetes)
    ([0.5, 1.5, 2.0], "regression"),
    (list(range(30)), "regression"),               # too many values to be classes
    (["yes", "no", "yes"], "binary"),              # then refused by check_target: labels must be encoded
])
def test_task_inference(values, task):
    assert infer_task(pd.Series(values, name="y"))[0] == task


@pytest.mark.parametrize(("values", "task", "message"), [
    ([0, 1, None, None], "binary", "target column 'y' is empty in 2 of 4 rows"),
    (["a", "b"], "binary", "must hold integer class labels 0..k-1, not"),
    ([1, 1, 1], "binary", "holds a single value \\(1\\)"),
    ([2.5, 2.5], "regression", "holds a single value"),
    ([1, 2, 3], "multiclass", "must hold class labels 0..2, got 1, 2, 3"),
    ([0, 1, 2], "binary", "data.task is binary but target column 'y' holds 3 classes"),
    (["a", "b"], "regression", "must be numeric for regression"),
])
def test_bad_targets_are_named(values, task, message):
    with pytest.raises(DataError, match=message):
        check_target(pd.Series(values, name="y"), task, "data")


def test_regression_targets_give_no_classes():
    assert check_target(pd.Series([1.5, 2.5], name="y"), "regression", "data") == []
    assert check_target(pd.Series([1, 0, 2], name="y"), "multiclass", "data") == [0, 1, 2]


@pytest.fixture
def schema() -> Schema:
    frame = pd.DataFrame({"size": [1.0, 2.0, np.nan], "color": ["red", None, "blue"], "flag": [True, False, True],
                          "y": [0, 1, 0]})
    return build_schema(frame, "y", "binary", [0, 1], "data")


def test_schema_kinds_and_sorted_categories(schema):
    assert schema.columns == {"size": "numeric", "color": "categorical", "flag": "numeric"}
    assert schema.categories == {"color": ["blue", "red"]} and schema.features == ["size", "color", "flag"]
    assert Schema.from_dict(schema.to_dict()) == schema


def test_conform_types_columns_as_in_training(schema, caplog):
    rows = pd.DataFrame({"flag": [1, 0, 1], "color": ["red", "green", None], "size": [3, 4, 5], "id": [7, 8, 9]})
    conformed = conform(rows, schema, "rows")
    assert list(conformed.columns) == ["size", "color", "flag"]  # training order, extra columns left out
    assert conformed["size"].dtype == "float64" and conformed["flag"].dtype == "float64"
    assert list(conformed["color"].cat.categories) == ["blue", "red"]
    assert conformed["color"].iloc[0] == "red" and conformed["color"].isna().tolist() == [False, True, True]


def test_conform_names_missing_and_mistyped_columns(schema):
    with pytest.raises(DataError, match="rows lacks 2 column\\(s\\) the model needs: color, flag"):
        conform(pd.DataFrame({"size": [1.0]}), schema, "rows")
    with pytest.raises(DataError, match="column 'size' must be numeric but holds 1 value\\(s\\) such as 'big'"):
        conform(pd.DataFrame({"size": ["1.5", "big"], "color": ["red", "red"], "flag": [1, 0]}), schema, "rows")
    with pytest.raises(DataError, match="rows lacks 1 column\\(s\\) the model needs: y"):
        conform(pd.DataFrame({"size": [1.0], "color": ["red"], "flag": [1]}), schema, "rows", with_target=True)


def test_numbers_written_as_text_are_accepted(schema):
    conformed = conform(pd.DataFrame({"size": ["1.5", None], "color": ["red", "red"], "flag": [1, 0]}), schema, "r")
    assert conformed["size"].iloc[0] == 1.5 and np.isnan(conformed["size"].iloc[1])


def test_useless_columns_are_reported():
    frame = pd.DataFrame({"empty": [None, None], "same": [3, 3], "useful": [1, 2], "y": [0, 1]})
    assert report_columns(frame, "y", "data") == {"all_missing": ["empty"], "constant": ["same"]}


def test_no_feature_left_is_an_error():
    with pytest.raises(DataError, match="no feature column is left besides the target 'y'"):
        build_schema(pd.DataFrame({"y": [0, 1]}), "y", "binary", [0, 1], "data")
