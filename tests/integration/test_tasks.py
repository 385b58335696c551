"""The template on other data, by configuration alone: multiclass, regression, and a CSV with text categories and
missing values. Each chain runs in-process with few trials; the tests check what the registry ends up serving."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline import cli
from pipeline.config import load_config
from pipeline.contract import (
    CALIBRATION_ARTIFACT,
    FEATURE_IMPORTANCE_ARTIFACT,
    SHAP_SUMMARY_ARTIFACT,
    STEP_TAG,
    TASK_TAG,
)
from pipeline.steps.chain import run_chain
from tests.helpers import DEFAULT_CONFIG, TEST_CONFIGS

pytestmark = pytest.mark.heavy


def config_for(name: str, **overrides):
    return load_config(TEST_CONFIGS / f"{name}.yaml", overrides)


def train_plots(client, chain) -> set[str]:
    return {item.path for item in client.list_artifacts(chain.step("train").run_id, "plots")}


def schema_of(client, run_id: str) -> dict:
    return json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/data/schema.json"))


def test_multiclass_wine(client):
    config = config_for("wine")
    chain = run_chain(config)
    preprocess = client.get_run(chain.step("preprocess").run_id)
    assert preprocess.data.tags[TASK_TAG] == "multiclass" and preprocess.data.params["data.task"] == "multiclass"
    assert schema_of(client, preprocess.info.run_id)["classes"] == [0, 1, 2]
    evaluate_run = client.get_run(chain.step("evaluate").run_id)
    assert {"accuracy_score", "f1_score", "log_loss", "roc_auc"} <= set(evaluate_run.data.metrics)
    assert chain.step("train").metrics["test_log_loss"] > 0
    rows = pd.read_parquet(_test_split(client, chain)).drop(columns=["target"])
    answer = mlflow.pyfunc.load_model(f"models:/{config.registry.model_name}/1").predict(rows)
    assert list(answer.columns) == ["prediction", "probability_0", "probability_1", "probability_2"]
    assert set(answer["prediction"]) <= {0, 1, 2}
    assert answer.filter(like="probability_").sum(axis=1).to_numpy() == pytest.approx(1.0, abs=1e-5)
    # the shap extra: test's; the reliability diagram: classification
    assert train_plots(client, chain) == {FEATURE_IMPORTANCE_ARTIFACT, SHAP_SUMMARY_ARTIFACT, CALIBRATION_ARTIFACT}


def _test_split(client, chain) -> str:
    return mlflow.artifacts.download_artifacts(f"runs:/{chain.step('preprocess').run_id}/data/test.parquet")


def test_regression_diabetes(client):
    config = config_for("diabetes")
    chain = run_chain(config)
    assert client.get_run(chain.step("preprocess").run_id).data.tags[TASK_TAG] == "regression"
    tune_run = client.get_run(chain.step("tune").run_id)
    assert "best_valid_rmse" in tune_run.data.metrics
    assert set(chain.step("train").metrics) == {"test_rmse", "test_mae", "test_r2"}
    evaluate_run = client.get_run(chain.step("evaluate").run_id)
    assert {"root_mean_squared_error", "mean_absolute_error", "r2_score"} <= set(evaluate_run.data.metrics)
    assert "r2_score" in chain.step("evaluate").verdict_reason  # the regression gate was the one applied
    rows = pd.read_parquet(_test_split(client, chain)).drop(columns=["target"])
    answer = mlflow.pyfunc.load_model(f"models:/{config.registry.model_name}/1").predict(rows)
    assert list(answer.columns) == ["prediction"] and len(answer) == len(rows)
    assert answer["prediction"].dtype.kind == "f" and answer["prediction"].nunique() > 10


def customers(rows: int, seed: int) -> pd.DataFrame:
    """A small table as people have them: an id, text categories, a yes/no column, gaps, an all-empty column."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    calls = rng.poisson(2, rows).astype(float)
    churned = ((plan == "basic") ^ (calls > 2) ^ (rng.random(rows) < 0.1)).astype(int)
    calls[rng.random(rows) < 0.1] = np.nan
    region = rng.choice(["north", "south", None], rows)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(rows)],
            "plan": plan,
            "region": region,
            "support_calls": calls,
            "partner": rng.choice(["yes", "no"], rows),
            "notes": [None] * rows,
            "churned": churned,
        }
    )


def churn_config(source):
    """The default config switched to the CSV (no gates: the tests look at the model, not at its promotion)."""
    return config_for(
        "pipeline",
        **{
            "data.source": str(source),
            "data.target": "churned",
            "data.id_columns": "[customer_id]",
            "registry.model_name": "churn",
            "evaluate.binary.thresholds": {},
        },
    )


def predict_cli(source, target) -> int:
    return cli.main(
        [
            "predict",
            "--config",
            str(DEFAULT_CONFIG),
            "--input",
            str(source),
            "--output",
            str(target),
            "--set",
            "registry.model_name=churn",
        ]
    )


@pytest.fixture(scope="module")
def churn_chain(module_store):
    """The chain on a customers CSV, made once in the module's store (the tests below predict and read)."""
    path = module_store[1] / "customers.csv"
    customers(300, seed=1).to_csv(path, index=False)
    return run_chain(churn_config(path))


def test_a_csv_with_text_categories_and_missing_values(module_client, churn_chain, own_experiment, tmp_path):
    client, chain = module_client, churn_chain
    preprocess_id = chain.step("preprocess").run_id
    schema = schema_of(client, preprocess_id)
    assert schema["task"] == "binary"  # inferred from the 0/1 target
    assert schema["columns"] == {
        "plan": "categorical",
        "region": "categorical",
        "support_calls": "numeric",
        "partner": "categorical",
    }
    assert schema["categories"]["plan"] == ["basic", "plus", "pro"] and schema["report"]["all_missing"] == ["notes"]
    assert client.get_run(preprocess_id).data.metrics["n_categorical"] == 3
    evaluate_run = client.get_run(chain.step("evaluate").run_id)
    assert evaluate_run.data.metrics["roc_auc"] > 0.8  # the categories were learnt, not ignored
    plots = {FEATURE_IMPORTANCE_ARTIFACT, SHAP_SUMMARY_ARTIFACT, CALIBRATION_ARTIFACT}
    assert train_plots(client, chain) == plots  # categories, gaps

    # New rows: a category never seen in training and missing values still get an answer, ids pass through.
    fresh = customers(40, seed=2).assign(plan=lambda t: t["plan"].where(t.index > 0, "enterprise"))
    fresh.loc[1, ["region", "support_calls"]] = None
    fresh.drop(columns=["churned", "notes"]).to_csv(tmp_path / "fresh.csv", index=False)
    assert predict_cli(tmp_path / "fresh.csv", tmp_path / "out.csv") == 0
    scored = pd.read_csv(tmp_path / "out.csv")
    assert scored["customer_id"].tolist() == fresh["customer_id"].tolist()
    assert scored[["probability_0", "probability_1"]].notna().all().all()
    served = mlflow.pyfunc.load_model("models:/churn/1").predict(fresh.drop(columns=["churned"]))
    assert served["probability_1"].to_numpy() == pytest.approx(scored["probability_1"].to_numpy(), abs=1e-6)


def test_a_numeric_column_holding_text_is_named(module_client, churn_chain, own_experiment, tmp_path):
    bad = customers(10, seed=3).drop(columns=["churned"]).astype({"support_calls": object})
    bad.loc[4, "support_calls"] = "three"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    assert predict_cli(tmp_path / "bad.csv", tmp_path / "out.csv") == 2 and not (tmp_path / "out.csv").exists()
    (run,) = module_client.search_runs([own_experiment], f"tags.`{STEP_TAG}` = 'predict'")
    assert (
        "column 'support_calls' must be numeric but holds 1 value(s) such as 'three'" in run.data.tags["pipeline.error"]
    )
