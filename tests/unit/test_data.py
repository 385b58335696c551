import pandas as pd
import pytest

from pipeline.config import DataConfig, SplitConfig
from pipeline.data import RATIO_FEATURE, derive_features, load_source, read_table, require_columns, split_frame
from pipeline.errors import DataError


def test_ratio_feature_is_added_when_its_inputs_exist():
    frame = pd.DataFrame({"mean symmetry": [0.2, 0.3], "mean texture": [10.0, 0.0]})
    derived = derive_features(frame)
    assert derived[RATIO_FEATURE].iloc[0] == pytest.approx(0.02)
    assert pd.isna(derived[RATIO_FEATURE].iloc[1])  # a zero texture gives a missing value, not inf
    assert RATIO_FEATURE not in frame.columns


def test_feature_hook_is_skipped_without_its_inputs():
    frame = pd.DataFrame({"a": [1.0]})
    assert derive_features(frame) is frame


def test_sklearn_source_renames_the_target_and_rejects_unknown_names():
    frame = load_source(DataConfig(source="sklearn:breast_cancer", target="label"))
    assert "label" in frame.columns and len(frame) == 569
    with pytest.raises(DataError, match="unknown scikit-learn dataset 'nope'"):
        load_source(DataConfig(source="sklearn:nope", target="label"))


def test_missing_target_column_is_named(tmp_path):
    path = tmp_path / "rows.csv"
    pd.DataFrame({"a": [1, 2], "b": [3, 4]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="target column 'label' not in .*rows.csv \\(columns: a, b\\)"):
        load_source(DataConfig(source=str(path), target="label"))


def test_read_table_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "data.txt").write_text("a\n1\n")
    with pytest.raises(DataError, match="unsupported type"):
        read_table(tmp_path / "data.txt")
    (tmp_path / "header.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="holds no rows"):
        read_table(tmp_path / "header.csv")


def test_split_is_seeded_and_stratified():
    frame = pd.DataFrame({"x": range(100), "y": [0] * 80 + [1] * 20})
    split = SplitConfig(test_size=0.25, validation_size=0.2, seed=3, stratify=True)
    train, test = split_frame(frame, "y", split)
    assert len(test) == 25 and test["y"].sum() == 5
    assert split_frame(frame, "y", split)[1]["x"].tolist() == test["x"].tolist()


def test_require_columns_names_every_missing_one():
    with pytest.raises(DataError, match="lacks 2 column\\(s\\) the model needs: b, c"):
        require_columns(pd.DataFrame({"a": [1]}), ["a", "b", "c"], "evaluation data")
