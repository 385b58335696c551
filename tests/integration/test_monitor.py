"""Watching the model (engine local; engine dask: test_dask_engine.py): the reference profile travels inside the
registered model, predict records a batch's drift from it (and with `monitor.on_drift: fail` exits 6 after writing
its output), the monitor command compares without scoring to a file, and a batch too small gets no verdict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline import cli
from pipeline.contract import DRIFT_PLOT_ARTIFACT, DRIFT_REPORT_ARTIFACT, ERROR_TAG, PROFILE_ARTIFACT, STEP_TAG
from pipeline.steps.chain import run_chain
from tests.helpers import DEFAULT_CONFIG, small_config_with

pytestmark = pytest.mark.heavy
MODEL = "watch-xgb"


def accounts(rows: int, seed: int, shift: float = 0.0, north: float = 0.1) -> pd.DataFrame:
    """Accounts with a skewed balance, a region and a churn label."""
    rng = np.random.default_rng(seed)
    others = (1 - north) / 3
    frame = pd.DataFrame(
        {
            "balance": rng.lognormal(3, 0.8, rows),
            "tenure": rng.integers(1, 60, rows).astype(float),
            "region": rng.choice(["north", "south", "east", "west"], rows, p=[north, others, others, others]),
        }
    )
    frame["balance"] += shift * frame["balance"].std()
    frame["churned"] = np.where(rng.random(rows) < 1 / (1 + np.exp(frame["tenure"] / 20 - 1)), "yes", "no")
    return frame


@pytest.fixture(scope="module")
def watched(module_store, tmp_path_factory) -> dict:
    """A champion trained on 4,000 accounts, and batches: like training, shifted, one row, lacking a column."""
    folder = tmp_path_factory.mktemp("watch")
    accounts(4000, 0).to_csv(folder / "accounts.csv", index=False)
    config = small_config_with(
        {
            "experiment": "watch",
            "data.source": str(folder / "accounts.csv"),
            "data.target": "churned",
            "features.derived": False,
            "registry.model_name": MODEL,
            "evaluate.binary.thresholds": {},
        }
    )
    result = run_chain(config)
    batches = {
        "same": accounts(3000, 1).drop(columns=["churned"]),
        "shifted": accounts(3000, 2, shift=0.5, north=0.4).drop(columns=["churned"]),
        "one_row": accounts(1, 3, shift=3.0).drop(columns=["churned"]),
        "no_region": accounts(600, 4).drop(columns=["churned", "region"]),
    }
    for name, frame in batches.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    return {"folder": folder, "train_run_id": result.step("train").run_id, "experiment": "watch"}


def command(step: str, folder: Path, batch: str, *more: str) -> list[str]:
    argv = [step, "--config", str(DEFAULT_CONFIG), "--set", f"registry.model_name={MODEL}"]
    argv += ["--set", "experiment=watch", "--input", str(folder / f"{batch}.csv"), *more]
    return argv + ["--result-file", str(folder / f"{step}-{batch}.json")]


def result_of(folder: Path, step: str, batch: str) -> dict:
    return json.loads((folder / f"{step}-{batch}.json").read_text())


def test_the_profile_travels_inside_the_model_and_a_copy_of_its_folder_alone_has_it(watched, module_client, tmp_path):
    logged = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=watched["train_run_id"], artifact_path=PROFILE_ARTIFACT, dst_path=str(tmp_path / "run")
            )
        ).read_text()
    )
    folder = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL}/1", dst_path=str(tmp_path / "model")))
    alone = shutil.copytree(folder, tmp_path / "elsewhere" / "model")  # no store, no registry: the folder alone
    served = mlflow.pyfunc.load_model(str(alone)).unwrap_python_model()
    assert served.profile == logged
    assert set(served.profile["features"]) == {"balance", "tenure", "region"}
    assert served.profile["output"]["name"] == "probability_yes"


def test_predict_records_the_batchs_drift_and_fails_with_exit_6_after_writing_its_output(watched, module_client):
    folder = watched["folder"]
    assert cli.main(command("predict", folder, "same", "--output", str(folder / "same-out.csv"))) == 0
    same = module_client.get_run(result_of(folder, "predict", "same")["run_id"])
    assert same.data.metrics["drift_n_alert"] == 0 and same.data.metrics["drift_psi_max"] < 0.1
    artifacts = {item.path for item in module_client.list_artifacts(same.info.run_id, "drift")}
    artifacts |= {item.path for item in module_client.list_artifacts(same.info.run_id, "plots")}
    assert {DRIFT_REPORT_ARTIFACT, DRIFT_PLOT_ARTIFACT} <= artifacts
    assert "no column drifted" in same.data.tags["mlflow.note.content"]

    output = folder / "shifted-out.csv"
    argv = command("predict", folder, "shifted", "--output", str(output), "--set", "monitor.on_drift=fail")
    assert cli.main(argv) == 6
    result = result_of(folder, "predict", "shifted")
    assert result["exit_code"] == 6 and set(result["drifted"]) >= {"balance", "region"}
    assert len(pd.read_csv(output)) == 3000  # the output is written before the step fails
    failed = module_client.get_run(result["run_id"])
    assert failed.info.status == "FAILED" and "drift alert: " in failed.data.tags[ERROR_TAG]
    report = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(run_id=failed.info.run_id, artifact_path=DRIFT_REPORT_ARTIFACT)
        ).read_text()
    )
    assert report["verdict"] == "alert" and report["columns"]["region"]["psi"] > 0.25


def test_monitor_compares_without_scoring_to_a_file_and_reports_the_verdict(watched, module_client):
    folder = watched["folder"]
    assert cli.main(command("monitor", folder, "shifted")) == 0  # on_drift: warn
    result = result_of(folder, "monitor", "shifted")
    assert result["verdict"] == "alert" and result["outputs"]["drift_report"].endswith(DRIFT_REPORT_ARTIFACT)
    run = module_client.get_run(result["run_id"])
    assert run.data.tags[STEP_TAG] == "monitor" and run.data.tags["pipeline.model.version"] == "1"
    assert run.data.metrics["drift_n_alert"] >= 2 and run.data.metrics["n_rows"] == 3000
    assert "column(s) alerted" in run.data.tags["mlflow.note.content"]
    assert not module_client.list_artifacts(run.info.run_id, "predictions")
    assert cli.main(command("monitor", folder, "shifted", "--set", "monitor.on_drift=fail")) == 6


def test_a_batch_below_min_rows_gets_no_verdict_and_a_missing_column_is_one_line(watched, module_client):
    folder = watched["folder"]
    assert cli.main(command("monitor", folder, "one_row", "--set", "monitor.on_drift=fail")) == 0
    result = result_of(folder, "monitor", "one_row")
    assert result["verdict"] == "too_few_rows" and result["metrics"]["drift_rows"] == 1.0
    assert "drift_psi_max" not in result["metrics"]
    assert cli.main(command("monitor", folder, "no_region")) == 2
    error = result_of(folder, "monitor", "no_region")["error"]
    assert error == f"monitor input {folder / 'no_region.csv'} lacks 1 column(s) the model needs: region"
