"""Batch prediction: same numbers as the model loaded in Python, chunked, checked input, no partial output.

One champion for the module (its store, made once); each test logs its predict runs in an experiment of its own."""

import mlflow
import pandas as pd
import pytest

from pipeline import cli
from pipeline.config import load_config
from pipeline.contract import ERROR_TAG, MODEL_VERSION_TAG, STEP_TAG
from pipeline.data.sources import load_source
from pipeline.steps import predict
from pipeline.steps.chain import run_chain
from tests.helpers import DEFAULT_CONFIG

pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def champion(module_store):
    """A champion, raw rows of the source table as a user has them (no target, no derived feature, an id column
    the model does not know) and the registered model loaded in Python."""
    small_config = load_config(DEFAULT_CONFIG)
    run_chain(small_config)
    source = load_source(small_config.data).drop(columns=[small_config.data.target])
    raw = source.sample(120, random_state=0).reset_index(drop=True).assign(customer_id=range(120))
    return raw, mlflow.pyfunc.load_model(f"models:/{small_config.registry.model_name}@champion")


@pytest.fixture
def client(module_client):
    return module_client


@pytest.fixture
def scored_chain(champion, own_experiment):
    raw, loaded = champion
    return raw.copy(), loaded  # each test its own rows to hand over


def predict_cli(*args: str) -> int:
    return cli.main(["predict", "--config", str(DEFAULT_CONFIG), *args])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_predictions_equal_the_model_loaded_in_python(client, scored_chain, own_experiment, tmp_path, suffix):
    raw, loaded = scored_chain
    source, target = tmp_path / f"rows{suffix}", tmp_path / f"scored{suffix}"
    raw.to_csv(source, index=False) if suffix == ".csv" else raw.to_parquet(source, index=False)
    assert predict_cli("--input", str(source), "--output", str(target), "--chunk-rows", "17") == 0
    scored = pd.read_csv(target) if suffix == ".csv" else pd.read_parquet(target)
    expected = loaded.predict(raw)  # the raw rows, through MLflow's own schema enforcement
    assert len(scored) == len(raw) and scored["customer_id"].tolist() == raw["customer_id"].tolist()
    assert scored["probability_1"].to_numpy() == pytest.approx(expected["probability_1"].to_numpy(), abs=1e-6)
    assert scored["prediction"].tolist() == expected["prediction"].tolist()
    # ... and the same as the XGBoost model inside, given the features the model derives itself.
    served = loaded.unwrap_python_model()
    assert expected["probability_1"].to_numpy() == pytest.approx(
        served.model.predict_proba(served.features(raw))[:, 1], abs=1e-6
    )
    (run,) = client.search_runs([own_experiment], f"tags.`{STEP_TAG}` = 'predict'")
    assert run.data.tags[MODEL_VERSION_TAG] == "1" and run.data.metrics["n_rows"] == len(raw)
    assert [a.path for a in client.list_artifacts(run.info.run_id, "predictions")] == [f"predictions/{target.name}"]


def test_missing_columns_fail_without_a_partial_file(client, scored_chain, own_experiment, tmp_path):
    raw, _ = scored_chain
    source, target = tmp_path / "rows.csv", tmp_path / "scored.csv"
    raw.drop(columns=["mean radius", "worst area"]).to_csv(source, index=False)
    assert predict_cli("--input", str(source), "--output", str(target)) == 2
    assert not target.exists() and not list(tmp_path.glob(".predict-*"))
    (run,) = client.search_runs([own_experiment], f"tags.`{STEP_TAG}` = 'predict'")
    assert run.info.status == "FAILED" and "mean radius, worst area" in run.data.tags[ERROR_TAG]


def test_a_bad_chunk_late_in_the_file_leaves_no_partial_file(client, scored_chain, tmp_path):
    raw, _ = scored_chain
    spoiled = raw.astype({"mean radius": object})
    spoiled.loc[len(raw) - 1, "mean radius"] = "huge"
    source, target = tmp_path / "rows.csv", tmp_path / "scored.csv"
    spoiled.to_csv(source, index=False)
    assert predict_cli("--input", str(source), "--output", str(target), "--chunk-rows", "10") == 2
    assert not target.exists()


def test_unknown_alias_and_bad_paths(client, scored_chain, tmp_path):
    raw, _ = scored_chain
    raw.to_csv(tmp_path / "rows.csv", index=False)
    assert (
        predict_cli("--input", str(tmp_path / "rows.csv"), "--output", str(tmp_path / "o.csv"), "--alias", "nope") == 3
    )
    assert predict_cli("--input", str(tmp_path / "rows.csv"), "--output", str(tmp_path / "o.txt")) == 2
    assert predict_cli("--input", str(tmp_path / "missing.csv"), "--output", str(tmp_path / "o.csv")) == 2
    assert predict_cli("--input", str(tmp_path / "rows.csv")) == 2
    assert not (tmp_path / "o.csv").exists()


def test_predict_by_version(client, scored_chain, small_config, tmp_path):
    raw, _ = scored_chain
    raw.to_csv(tmp_path / "rows.csv", index=False)
    result = predict.run(
        small_config, input_path=str(tmp_path / "rows.csv"), output_path=str(tmp_path / "o.csv"), version="1"
    )
    assert result.model_version == "1" and result.metrics["n_rows"] == len(raw)
