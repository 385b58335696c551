"""The decision inside the registered model, through the chain on engine local (engine dask: test_dask_engine.py):
on a generated 5%-positive table, a threshold chosen for F1 on out-of-fold predictions of the train split (never the
test split), isotonic calibration of class-weighted probabilities, both inside the model and applied by
`load_model`, predict and evaluate alike; the params, metrics, plots and description that say so."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline import cli
from pipeline.contract import CALIBRATION_ARTIFACT, MODEL_VERSION_TAG, TRAIN_ARTIFACT
from pipeline.modeling import decision
from pipeline.steps.chain import run_chain
from pipeline.tracking.lookup import read_parquet_artifact
from tests.helpers import DEFAULT_CONFIG, small_config_with

pytestmark = pytest.mark.heavy


def credit_table(folder: Path, rows: int = 3000) -> Path:
    """A 5%-positive table (defaults yes/no) with a text category."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(rows, 4))
    frame = pd.DataFrame(x, columns=["income", "debt", "age", "noise"])
    frame["region"] = rng.choice(["north", "south", "east"], rows)
    default = rng.random(rows) < 1 / (1 + np.exp(-(-3.8 + 1.5 * frame["debt"] - frame["income"])))
    frame["default"] = np.where(default, "yes", "no")
    path = folder / "credit.csv"
    frame.to_csv(path, index=False)
    return path


def credit_keys(path: Path, **more: object) -> dict[str, object]:
    return {
        "data.source": str(path),
        "data.target": "default",
        "features.derived": False,
        "registry.model_name": "credit-xgb",
        "evaluate.binary.thresholds": {},
        "tune.n_trials": 2,
        **more,
    }


@pytest.fixture
def held_out_seen(monkeypatch) -> list[decision.HeldOut]:
    """Every set of held-out predictions the decision is fitted on, as train hands them over."""
    seen: list[decision.HeldOut] = []
    fit_decision = decision.fit_decision

    def spy(config, task, held_out):
        seen.append(held_out)
        return fit_decision(config, task, held_out)

    monkeypatch.setattr("pipeline.steps.train.fit_decision", spy)
    return seen


def test_the_threshold_and_calibration_live_in_the_model_and_every_caller_applies_them(client, tmp_path, held_out_seen):
    keys = credit_keys(
        credit_table(tmp_path),
        **{
            "decision.threshold": {"optimize": "f1"},
            "decision.calibration": "isotonic",
            "train.class_weight": "balanced",
        },
    )
    result = run_chain(small_config_with(keys))
    train_run = client.get_run(result.step("train").run_id)
    evaluate_run = client.get_run(result.step("evaluate").run_id)
    preprocess_run = client.get_run(result.step("preprocess").run_id)
    params, metrics = train_run.data.params, train_run.data.metrics
    threshold = float(params["decision.threshold"])
    assert params["decision.objective"] == "f1" and params["decision.calibration"] == "isotonic"
    assert params["train.class_weight"] == "balanced" and 0 < threshold < 0.5
    assert 0 < metrics["held_out_f1"] <= 1 and 0 < metrics["test_brier_score"] < 0.1
    assert metrics["test_average_precision"] > 0.05  # the positive share is 5%

    # Chosen on the train split's out-of-fold predictions: every train row once, no test row.
    (held_out,) = held_out_seen
    train_split = read_parquet_artifact(preprocess_run, TRAIN_ARTIFACT)
    assert len(held_out.truth) == len(train_split) == int(preprocess_run.data.metrics["n_train"])
    assert held_out.truth.sum() == (train_split["default"] == "yes").sum()

    version = train_run.data.tags[MODEL_VERSION_TAG]
    model = mlflow.pyfunc.load_model(f"models:/credit-xgb/{version}")
    folder = Path(mlflow.artifacts.download_artifacts(f"models:/credit-xgb/{version}", dst_path=str(tmp_path / "m")))
    stored = json.loads((folder / "artifacts" / "decision.json").read_text())
    assert (
        stored["threshold"] == pytest.approx(threshold, abs=1e-6) and stored["calibration"][0]["method"] == "isotonic"
    )
    rows = pd.read_csv(tmp_path / "credit.csv").drop(columns=["default"])
    answer = model.predict(rows)
    assert ((answer["prediction"] == "yes") == (answer["probability_yes"] >= threshold)).all()
    assert (answer["prediction"] == "yes").mean() > (answer["probability_yes"] >= 0.5).mean()

    # evaluate scores the answers the model gives: at its threshold, on its calibrated probabilities.
    evaluated = evaluate_run.data.metrics
    assert evaluated["f1_score"] == pytest.approx(metrics["test_f1"], abs=1e-9)
    assert evaluated["accuracy_score"] == pytest.approx(metrics["test_accuracy"], abs=1e-9)
    assert evaluated["brier_score"] == pytest.approx(metrics["test_brier_score"], abs=1e-9)
    assert evaluated["average_precision"] == pytest.approx(metrics["test_average_precision"], abs=1e-9)
    for run in (train_run, evaluate_run):
        assert CALIBRATION_ARTIFACT in [item.path for item in client.list_artifacts(run.info.run_id, "plots")]
    description = client.get_model_version("credit-xgb", version).description
    assert f"answers the positive label at probability >= {threshold:.4f}" in description
    assert "isotonic-calibrated probabilities" in description

    # predict (engine local) answers as the loaded model does.
    scored = tmp_path / "scored.csv"
    rows.to_csv(tmp_path / "rows.csv", index=False)
    argv = ["predict", "--config", str(DEFAULT_CONFIG), "--set", "registry.model_name=credit-xgb"]
    assert cli.main([*argv, "--input", str(tmp_path / "rows.csv"), "--output", str(scored)]) == 0
    assert pd.read_csv(scored)["prediction"].tolist() == answer["prediction"].tolist()


def test_by_default_the_model_answers_the_most_probable_label_and_fits_no_folds(client, tmp_path, held_out_seen):
    result = run_chain(small_config_with(credit_keys(credit_table(tmp_path, rows=800))))
    params = client.get_run(result.step("train").run_id).data.params
    assert params["decision.threshold"] == "0.5" and params["decision.objective"] == "fixed"
    assert held_out_seen == [None]  # no fold model was fitted
    version = client.get_run(result.step("train").run_id).data.tags[MODEL_VERSION_TAG]
    answer = mlflow.pyfunc.load_model(f"models:/credit-xgb/{version}").predict(
        pd.read_csv(tmp_path / "credit.csv").drop(columns=["default"])
    )
    assert ((answer["prediction"] == "yes") == (answer["probability_yes"] >= 0.5)).all()


def test_a_constraint_the_held_out_predictions_cannot_meet_fails_train_and_registers_nothing(client, tmp_path):
    keys = credit_keys(credit_table(tmp_path, rows=800), **{"decision.threshold": {"precision_at_least": 1.0}})
    overrides = [f"{key}={json.dumps(value) if isinstance(value, dict) else value}" for key, value in keys.items()]
    assert cli.main(["main", "--config", str(DEFAULT_CONFIG), *(f"--set={item}" for item in overrides)]) == 2
    (failed,) = client.search_runs(
        [client.get_experiment_by_name("Default").experiment_id], "tags.`pipeline.step` = 'train'"
    )
    assert failed.info.status == "FAILED"
    assert failed.data.tags["pipeline.error"].startswith("decision.threshold: no threshold reaches precision >= 1")
    assert not client.search_registered_models("name = 'credit-xgb'")
