import pandas as pd
import pytest

from pipeline.config import DataConfig, load_config
from pipeline.data import feature_hook, splitting, transform
from pipeline.data.sources import load_source, read_table, require_columns
from pipeline.errors import ConfigError, DataError
from tests.helpers import DEFAULT_CONFIG


def test_the_example_hook_adds_the_ratio_when_its_inputs_exist():
    hook = feature_hook.load(feature_hook.PROJECT_ROOT / "pipeline" / "features.py")
    frame = pd.DataFrame({"mean symmetry": [0.2, 0.3], "mean texture": [10.0, 0.0]})
    derived = hook(frame)
    if "symmetry_texture_ratio" not in derived.columns:
        pytest.skip("pipeline/features.py is not the example hook any more (replaced for other data)")
    assert derived["symmetry_texture_ratio"].iloc[0] == pytest.approx(0.02)
    assert pd.isna(derived["symmetry_texture_ratio"].iloc[1])  # a zero texture gives a missing value, not inf
    assert "symmetry_texture_ratio" not in frame.columns
    assert hook(pd.DataFrame({"a": [1.0]})).columns.tolist() == ["a"]  # other tables pass through


def _hook_file(tmp_path, body: str):
    path = tmp_path / "hook.py"
    path.write_text(body)
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("x = 1\n", "defines no function derive_features"),
        ("import not_a_module\n", "cannot be imported: ModuleNotFoundError: No module named 'not_a_module'"),
    ],
)
def test_a_broken_hook_file_is_named(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        feature_hook.load(_hook_file(tmp_path, body))
    with pytest.raises(ConfigError, match="features.hook: .*nope.py not found"):
        feature_hook.load(tmp_path / "nope.py")


def test_a_hook_that_fails_on_rows_is_a_data_error(tmp_path):
    hook = feature_hook.load(_hook_file(tmp_path, "def derive_features(frame):\n    return frame['b'] * 2\n"))
    with pytest.raises(DataError, match="rows: the feature hook failed: KeyError"):
        feature_hook.apply(pd.DataFrame({"a": [1]}), hook, "rows")
    shrinking = feature_hook.load(_hook_file(tmp_path, "def derive_features(frame):\n    return frame.head(1)\n"))
    with pytest.raises(DataError, match="must return a DataFrame with one row per input row"):
        feature_hook.apply(pd.DataFrame({"a": [1, 2]}), shrinking, "rows")


def test_two_hooks_with_the_same_file_name_stay_apart(tmp_path):
    (tmp_path / "one").mkdir(), (tmp_path / "two").mkdir()
    first = _hook_file(tmp_path / "one", "def derive_features(frame):\n    return frame.assign(v=1)\n")
    second = _hook_file(tmp_path / "two", "def derive_features(frame):\n    return frame.assign(v=2)\n")
    rows = pd.DataFrame({"a": [0]})
    assert transform.load_hook(first)(rows)["v"].tolist() == [1]
    assert transform.load_hook(second)(rows)["v"].tolist() == [2]
    assert transform.load_hook(first)(rows)["v"].tolist() == [1]


def test_sklearn_source_renames_the_target_and_rejects_unknown_names():
    frame = load_source(DataConfig.whole_table(source="sklearn:breast_cancer", target="label"))
    assert "label" in frame.columns and len(frame) == 569
    with pytest.raises(DataError, match="unknown scikit-learn dataset 'nope'"):
        load_source(DataConfig.whole_table(source="sklearn:nope", target="label"))


def test_missing_target_column_is_named(tmp_path):
    path = tmp_path / "rows.csv"
    pd.DataFrame({"a": [1, 2], "b": [3, 4]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="target column 'label' not in .*rows.csv \\(columns: a, b\\)"):
        load_source(DataConfig.whole_table(source=str(path), target="label"))


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
    split = load_config(DEFAULT_CONFIG).split.model_copy(update={"test_size": 0.25, "seed": 3, "stratify": True})
    train, test = splitting.test_split(frame, split, "y")
    assert len(test) == 25 and test["y"].sum() == 5
    assert splitting.test_split(frame, split, "y")[1]["x"].tolist() == test["x"].tolist()


def test_require_columns_names_every_missing_one():
    with pytest.raises(DataError, match="lacks 2 column\\(s\\) the model needs: b, c"):
        require_columns(pd.DataFrame({"a": [1]}), ["a", "b", "c"], "evaluation data")


def test_id_columns_are_dropped_and_a_feature_list_selects(tmp_path):
    path = tmp_path / "rows.csv"
    pd.DataFrame({"id": [1, 2], "a": [1.0, 2.0], "b": ["x", "y"], "label": [0, 1]}).to_csv(path, index=False)
    assert list(load_source(DataConfig.whole_table(source=str(path), target="label", id_columns=["id"])).columns) == [
        "a",
        "b",
        "label",
    ]
    assert list(load_source(DataConfig.whole_table(source=str(path), target="label", features=["b"])).columns) == [
        "b",
        "label",
    ]
    with pytest.raises(DataError, match="has no column\\(s\\) nope"):
        load_source(DataConfig.whole_table(source=str(path), target="label", id_columns=["nope"]))


def test_a_table_is_read_from_an_http_url(tmp_path):
    import functools
    import http.server
    import threading

    pd.DataFrame({"a": [1.0, 2.0], "label": [0, 1]}).to_csv(tmp_path / "rows.csv", index=False)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        frame = load_source(DataConfig.whole_table(source=f"{url}/rows.csv", target="label"))
        assert frame["a"].tolist() == [1.0, 2.0]
        with pytest.raises(DataError, match="rows2.csv cannot be read: HTTP Error 404"):
            read_table(f"{url}/rows2.csv")
    finally:
        server.shutdown()


def test_a_table_is_read_from_an_s3_bucket(tmp_path, monkeypatch):
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for key, value in {
            "AWS_ACCESS_KEY_ID": "test-key",
            "AWS_SECRET_ACCESS_KEY": "test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_S3_ENDPOINT_URL": f"http://{host}:{port}",
        }.items():
            monkeypatch.setenv(key, value)
        pd.DataFrame({"a": [1.0, 2.0], "label": [0, 1]}).to_parquet(tmp_path / "rows.parquet", index=False)
        s3 = boto3.client("s3", endpoint_url=f"http://{host}:{port}")
        s3.create_bucket(Bucket="tables")
        s3.upload_file(str(tmp_path / "rows.parquet"), "tables", "in/rows.parquet")
        frame = load_source(DataConfig.whole_table(source="s3://tables/in/rows.parquet", target="label"))
        assert frame["a"].tolist() == [1.0, 2.0]
        with pytest.raises(DataError, match="s3://tables/missing.csv cannot be downloaded"):
            read_table("s3://tables/missing.csv")
    finally:
        server.stop()
