"""The leakage guards through preprocess, in-process on a private store: a table with a feature copied from the target
(with noise) and rows repeated across the splits. warn names it (log, run note, param, and the registered version's
description), fail ends preprocess FAILED in one line (exit 2), drop leaves it out of the schema and the splits;
`data/leakage.json` and the metrics on every run; the same on engine dask."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from loguru import logger
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

from pipeline import cli
from pipeline.contract import ERROR_TAG, LEAKAGE_ARTIFACT, STEP_TAG
from pipeline.data.leakage import REPORT_GROUP
from pipeline.steps import preprocess
from pipeline.steps.chain import run_chain
from tests.helpers import DEFAULT_CONFIG, small_config_with

pytestmark = pytest.mark.heavy

REPEATED = 100  # rows of the table that are one row repeated


def orders(rows: int = 800, seed: int = 0) -> pd.DataFrame:
    """Honest features, `refund_amount` (known only once the order is returned: the target with noise), and
    REPEATED copies of one row, which the random split puts on both sides."""
    rng = np.random.default_rng(seed)
    basket = rng.gamma(2.0, 30.0, rows)
    channel = rng.choice(["web", "shop", "phone"], rows)
    returned = ((basket / 60 + (channel == "phone") + rng.normal(size=rows)) > 1.5).astype(int)
    table = pd.DataFrame(
        {
            "basket": basket.round(2),
            "channel": channel,
            "items": rng.poisson(3, rows),
            "refund_amount": returned * 25 + rng.normal(scale=1.0, size=rows),
            "returned": returned,
        }
    )
    return pd.concat([table, table.iloc[[0] * REPEATED]], ignore_index=True)


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "orders.csv"
    orders().to_csv(path, index=False)
    return path


def overrides(source, action: str, **more) -> dict:
    return {"data.source": str(source), "data.target": "returned", "data.leakage.action": action, **more}


@pytest.fixture
def warnings_logged():
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="WARNING")
    yield lines
    logger.remove(sink)


def leakage_document(run_id: str) -> dict:
    return json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/{LEAKAGE_ARTIFACT}"))


def schema_document(run_id: str) -> dict:
    return json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/data/schema.json"))


def test_warn_names_the_suspect_in_the_log_the_note_and_the_model_version(client, source, warnings_logged):
    chain = run_chain(
        small_config_with(
            overrides(source, "warn", **{"registry.model_name": "orders", "evaluate.binary.thresholds": {}})
        )
    )
    run = client.get_run(chain.step("preprocess").run_id)
    document = leakage_document(run.info.run_id)
    assert (
        document["suspects"] == ["refund_amount"] and document["action"] == "warn" and document["metric"] == "roc_auc"
    )
    assert document["scores"]["refund_amount"] >= 0.98 and document["scores"]["basket"] < 0.9
    assert set(document["scores"]) == {"basket", "channel", "items", "refund_amount"}
    assert document["threshold"] == 0.98 and document["sample_rows"] == run.data.metrics["n_train"]
    assert run.data.metrics["n_suspect_features"] == 1 and run.data.params["data.suspect_features"] == "refund_amount"
    assert "refund_amount" in schema_document(run.info.run_id)["columns"]  # warned, kept
    (line,) = [text for text in warnings_logged if "suspected leakage" in text]
    assert "'refund_amount' (roc_auc" in line and "data.leakage.action: warn" in line
    assert "refund_amount" in run.data.tags[MLFLOW_RUN_NOTE] and "leakage" in run.data.tags[MLFLOW_RUN_NOTE]
    version = client.get_model_version("orders", chain.step("train").model_version)
    assert "**Suspected leakage**: refund_amount" in version.description


def test_fail_ends_preprocess_in_one_line_with_a_failed_run(client, source, capfd):
    command = ["preprocess", "--config", str(DEFAULT_CONFIG)]
    for key, value in overrides(source, "fail").items():
        command += ["--set", f"{key}={value}"]
    assert cli.main(command) == 2
    errors = [line for line in capfd.readouterr().err.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "'refund_amount' (roc_auc" in errors[0] and "data.leakage.action: fail" in errors[0]
    (run,) = client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'preprocess'")
    assert run.info.status == "FAILED" and "refund_amount" in run.data.tags[ERROR_TAG]
    assert leakage_document(run.info.run_id)["suspects"] == ["refund_amount"]  # the scores, to see why
    assert run.data.metrics["n_suspect_features"] == 1
    assert client.search_runs(["0"], "attributes.status = 'FINISHED'") == []


def test_drop_leaves_the_suspect_out_of_the_schema_and_the_splits(client, source, warnings_logged):
    result = preprocess.run(small_config_with(overrides(source, "drop")))
    run = client.get_run(result.run_id)
    schema = schema_document(run.info.run_id)
    assert "refund_amount" not in schema["columns"] and "refund_amount" in schema["ignored_inputs"]
    assert schema["report"][REPORT_GROUP] == ["refund_amount"]
    assert leakage_document(run.info.run_id)["dropped"] == ["refund_amount"]
    train = pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/data/train.parquet"))
    assert "refund_amount" not in train.columns and run.data.metrics["n_features"] == 3
    assert any("dropping feature(s) 'refund_amount'" in text for text in warnings_logged)
    assert "Dropped" in run.data.tags[MLFLOW_RUN_NOTE] and "refund_amount" in run.data.tags[MLFLOW_RUN_NOTE]


def test_test_rows_also_in_the_train_split_are_counted(client, source, warnings_logged):
    result = preprocess.run(small_config_with(overrides(source, "warn")))
    run_id = result.run_id
    splits = {
        name: pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/data/{name}.parquet"))
        for name in ("train", "test")
    }
    seen = set(map(tuple, splits["train"].astype(str).to_numpy()))
    expected = sum(tuple(row) in seen for row in splits["test"].astype(str).to_numpy())
    assert expected >= 10  # the repeated row, on both sides
    metrics = mlflow.get_run(run_id).data.metrics
    assert metrics["n_test_rows_in_train"] == expected and leakage_document(run_id)["n_test_rows_in_train"] == expected
    (line,) = [text for text in warnings_logged if "also appear in the train split" in text]
    assert f"{expected} of the {len(splits['test'])} test rows" in line


def test_engine_dask_drops_and_counts_alike(client, tmp_path, warnings_logged):
    pytest.importorskip("distributed")
    source = tmp_path / "orders.parquet"
    orders(rows=1500).to_parquet(source, index=False)
    config = small_config_with(overrides(source, "drop", engine="dask"))
    result = preprocess.run(config)
    run = client.get_run(result.run_id)
    document = leakage_document(run.info.run_id)
    assert document["dropped"] == ["refund_amount"] and 0 < document["sample_rows"] <= run.data.metrics["n_train"]
    assert "refund_amount" not in schema_document(run.info.run_id)["columns"]
    train = pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/data/train.parquet"))
    assert "refund_amount" not in train.columns
    assert run.data.metrics["n_test_rows_in_train"] >= 10
