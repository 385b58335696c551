"""The rules for targets, labels and columns: what preprocess infers from the training split, and what evaluate,
predict and the served model demand of incoming rows."""

import numpy as np
import pandas as pd
import pytest

from pipeline.config import DataConfig, load_config
from pipeline.data import transform
from pipeline.data.labels import infer_task, settle_labels
from pipeline.data.schema import Schema, build_schema, check_target, conform, detect_datetime_columns, report_columns
from pipeline.errors import DataError
from tests.helpers import DEFAULT_CONFIG

SPLIT = load_config(DEFAULT_CONFIG).split.model_copy(update={"test_size": 0.2, "seed": 42, "stratify": True})


def settle(values, task="auto", positive=None):
    data = DataConfig.whole_table(source="x.csv", target="y", task=task, positive_class=positive)
    return settle_labels(pd.Series(values, name="y"), data, SPLIT, "data")


@pytest.mark.parametrize(
    ("values", "task"),
    [
        ([0, 1, 1, 0], "binary"),
        ([1, 2, 2, 1], "binary"),  # two integers are two classes, whatever their values
        ([-1, 1, 1], "binary"),
        ([0, 2, 1, 1], "multiclass"),
        ([True, False, True], "binary"),
        (["yes", "no", "yes"], "binary"),
        (["Adelie", "Gentoo", "Chinstrap"], "multiclass"),
        ([25.0, 151.0, 75.0, 141.0], "regression"),  # integral, but not labels 0..k-1 (diabetes)
        ([1, 2, 3, 5], "regression"),  # ambiguous: the reason says how to choose multiclass
        ([0.5, 1.5, 2.0], "regression"),
        (list(range(30)), "regression"),  # too many values to be classes
    ],
)
def test_task_inference(values, task):
    assert infer_task(pd.Series(values, name="y"))[0] == task


def test_an_ambiguous_integer_target_says_how_to_choose():
    assert "set data.task: multiclass" in infer_task(pd.Series([1, 2, 3, 5] * 3, name="y"))[1]


@pytest.mark.parametrize(
    ("values", "positive", "classes"),
    [
        (["no", "yes"] * 5, None, ["no", "yes"]),
        (["Yes", "No"] * 5, None, ["No", "Yes"]),  # case does not matter
        (["stayed", "churned"] * 5, None, ["churned", "stayed"]),  # no obvious positive: the second sorted label
        (["stayed", "churned"] * 5, "churned", ["stayed", "churned"]),
        ([1, 2] * 5, None, [2, 1]),  # 1 reads as positive
        ([-1, 1] * 5, None, [-1, 1]),
        ([True, False] * 5, None, [False, True]),
        ([0, 1] * 5, 0, [1, 0]),
    ],
)
def test_binary_labels_put_the_positive_class_second(values, positive, classes):
    task, found, positive_class = settle(values, positive=positive)
    assert (task, found, positive_class) == ("binary", classes, classes[1])


def test_multiclass_labels_are_sorted():
    assert settle(["b", "c", "a"] * 5) == ("multiclass", ["a", "b", "c"], None)


@pytest.mark.parametrize(
    ("values", "kwargs", "message"),
    [
        ([0, 1, None, None], {}, "target column 'y' is empty in 2 of 4 rows"),
        (["a"] * 9, {"task": "binary"}, "holds one class \\('a', 9 rows\\); a classifier needs at least two"),
        ([2.5, 2.5], {"task": "regression"}, "holds a single value"),
        (
            ["a"] * 9 + ["b"],
            {},
            "class 'b' of target column 'y' has 1 row\\(s\\); the split \\(test_size=0.2\\) needs at least 5 per class",
        ),
        ([0, 1, 2] * 5, {"task": "binary"}, "data.task is binary but target column 'y' holds 3 classes"),
        (["a", "b"] * 5, {"task": "regression"}, "must be numeric for regression"),
        (["no", "yes"] * 5, {"positive": True}, "data.positive_class True is not a label .*quote the label"),
    ],
)
def test_bad_targets_are_named(values, kwargs, message):
    with pytest.raises(DataError, match=message):
        settle(values, **kwargs)


def test_labels_round_trip_through_the_model_order():
    classes = ["stayed", "churned"]
    codes = transform.encode_labels(pd.Series(["churned", "stayed", "churned"], name="y"), classes)
    assert codes.tolist() == [1, 0, 1]
    answer = transform.answer(np.array([[0.2, 0.8], [0.9, 0.1]]), classes, pd.RangeIndex(2))
    assert answer["prediction"].tolist() == ["churned", "stayed"]
    assert list(answer.columns) == ["prediction", "probability_stayed", "probability_churned"]
    with pytest.raises(transform.InputError, match="label\\(s\\) the model does not know, such as 'maybe'"):
        transform.encode_labels(pd.Series(["maybe"], name="y"), classes)


@pytest.mark.parametrize(
    ("label", "column"),
    [
        ("yes", "probability_yes"),
        ("Gentoo penguin", "probability_Gentoo_penguin"),
        (-1, "probability_-1"),
        (True, "probability_True"),
        ("a/b:c", "probability_a_b_c"),
        (2.5, "probability_2.5"),
    ],
)
def test_probability_columns_escape_unsafe_characters(label, column):
    assert transform.probability_column(label) == column


def _schema(frame: pd.DataFrame, **data) -> Schema:
    config = DataConfig.whole_table(source="x.csv", target="y", **data)
    return build_schema(frame, frame, config, ("binary", [0, 1], 1), False, "data")[0]


@pytest.fixture
def schema() -> Schema:
    return _schema(
        pd.DataFrame(
            {"size": [1.0, 2.0, np.nan], "color": ["red", None, "blue"], "flag": [True, False, True], "y": [0, 1, 0]}
        )
    )


def test_schema_kinds_and_sorted_categories(schema):
    assert schema.columns == {"size": "numeric", "color": "categorical", "flag": "numeric"}
    assert schema.categories == {"color": ["blue", "red"]} and schema.features == ["size", "color", "flag"]
    assert schema.inputs == {"size": "numeric", "color": "text", "flag": "boolean"}
    assert Schema.from_dict(schema.to_dict()) == schema


def test_conform_types_columns_as_in_training(schema):
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
    with pytest.raises(DataError, match="rows lacks the target column 'y'"):
        conform(pd.DataFrame({"size": [1.0], "color": ["red"], "flag": [1]}), schema, "rows", with_target=True)


def test_numbers_written_as_text_are_accepted(schema):
    conformed = conform(pd.DataFrame({"size": ["1.5", None], "color": ["red", "red"], "flag": [1, 0]}), schema, "r")
    assert conformed["size"].iloc[0] == 1.5 and np.isnan(conformed["size"].iloc[1])


def test_useless_columns_are_reported():
    ids = [f"C{i:04d}" for i in range(30)]
    frame = pd.DataFrame(
        {
            "empty": [None] * 30,
            "same": [3] * 30,
            "useful": range(30),
            "key": ids,
            "name": ids,
            "plan": ["a", "b", "c"] * 10,
        }
    )
    data = DataConfig.whole_table(source="x.csv", target="y", features=["useful", "name", "plan", "same", "empty"])
    assert report_columns(frame, data) == {
        "all_missing": ["empty"],
        "constant": ["same"],
        "id_like": ["key"],
    }  # `name` is kept: data.features lists it


def test_id_like_text_is_dropped_but_stays_an_optional_input():
    frame = pd.DataFrame({"key": [f"K{i}" for i in range(40)], "x": np.arange(40.0), "y": [0, 1] * 20})
    schema = _schema(frame)
    assert "key" not in schema.columns and schema.inputs["key"] == "text" and schema.ignored_inputs == ["key"]
    assert transform.required_inputs(schema.to_dict()) == ["x"]


def test_integer_codes_become_categories_when_named():
    frame = pd.DataFrame({"zip": [94107, 10001, 94107, 60601], "x": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]})
    schema = _schema(frame, categorical_columns=["zip"])
    assert schema.columns["zip"] == "categorical" and schema.categories["zip"] == ["10001", "60601", "94107"]
    # A zip code read as a float (a gap in a CSV column) is the same category.
    rows = conform(pd.DataFrame({"zip": [94107.0, None], "x": [1.0, 2.0]}), schema, "rows")
    assert rows["zip"].tolist()[0] == "94107" and pd.isna(rows["zip"].tolist()[1])


def test_dates_become_numeric_parts():
    frame = pd.DataFrame(
        {
            "signed": ["2024-01-31", "2024-02-29", None, "2023-12-25"],
            "when": pd.to_datetime(["2024-01-01 10:30", "2024-01-02", "2024-01-03", "2024-01-04"], format="ISO8601"),
            "x": [1.0, 2.0, 3.0, 4.0],
            "y": [0, 1, 0, 1],
        }
    )
    schema = _schema(frame)
    assert schema.datetime_columns == {
        "signed": list(transform.DATE_PARTS),
        "when": [*transform.DATE_PARTS, "hour"],
    }  # a time of day adds the hour
    assert schema.inputs["signed"] == "text" and schema.inputs["when"] == "datetime"
    rows = conform(frame, schema, "rows", dates=True)
    assert rows["signed_year"].tolist()[:2] == [2024, 2024] and rows["signed_day_of_year"].tolist()[1] == 60
    assert rows["signed_day_of_week"].tolist()[0] == 2 and np.isnan(rows["signed_month"].tolist()[2])
    assert rows["when_hour"].tolist()[0] == 10 and "signed" not in rows.columns


def test_unparseable_dates_are_named():
    frame = pd.DataFrame({"signed": ["2024-01-31", "someday"], "y": [0, 1]})
    with pytest.raises(
        DataError, match="column 'signed' holds 1 value\\(s\\) that are not ISO 8601 dates, such as 'someday'"
    ):
        detect_datetime_columns(frame, ["signed"], "data")
    assert detect_datetime_columns(frame, [], "data") == {}  # not named, not all dates: a text column


def test_no_feature_left_is_an_error():
    with pytest.raises(DataError, match="no feature column is left besides the target 'y'"):
        _schema(pd.DataFrame({"y": [0, 1]}))


def test_eval_rows_with_an_unknown_label_are_named(schema):
    with pytest.raises(DataError, match="label\\(s\\) the model does not know, such as 7"):
        check_target(pd.Series([0, 7], name="y"), schema, "rows")
