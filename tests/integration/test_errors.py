"""Bad input: a one-line error, a non-zero exit, a FAILED run (never RUNNING), nothing registered or promoted."""

import json

import pandas as pd
import pytest

from pipeline import cli, evaluate, preprocess, train
from pipeline.chain import run_chain
from pipeline.lineage import ERROR_TAG, STEP_TAG
from tests.conftest import DEFAULT_CONFIG, SMALL_OVERRIDES
from tests.hooks.breast_cancer_ratio import RATIO_FEATURE

SMALL = [arg for key, value in SMALL_OVERRIDES.items() for arg in ("--set", f"{key}={value}")]


def run_cli(*args: str) -> int:
    return cli.main([args[0], "--config", str(DEFAULT_CONFIG), *SMALL, *args[1:]])


def only_run(client, step):
    (run,) = client.search_runs(["0"], f"tags.`{STEP_TAG}` = '{step}'")
    return run


def test_no_finished_upstream_fails_the_run_with_the_fix(client, capfd, tmp_path):
    assert run_cli("tune", "--result-file", str(tmp_path / "result.json")) == 3
    run = only_run(client, "tune")
    assert run.info.status == "FAILED"
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["run_id"] == run.info.run_id and result["exit_code"] == 3
    assert "no finished 'preprocess' run" in run.data.tags[ERROR_TAG]
    error_lines = [line for line in capfd.readouterr().err.splitlines() if " ERROR " in line]
    assert error_lines and "mlflow run . -e preprocess --env-manager local" in error_lines[-1]


@pytest.mark.parametrize("step", ["tune", "train", "evaluate"])
def test_pinned_run_that_does_not_exist(client, step):
    assert run_cli(step, "--upstream-run-id", "deadbeef") == 3
    assert only_run(client, step).info.status == "FAILED"


def test_pinned_run_of_the_wrong_step(client):
    assert run_cli("preprocess") == 0
    preprocess_id = only_run(client, "preprocess").info.run_id
    assert run_cli("train", "--upstream-run-id", preprocess_id) == 3
    assert "is a 'preprocess' run, not a 'tune' run" in only_run(client, "train").data.tags[ERROR_TAG]


@pytest.mark.parametrize("override", [["--test-size", "1.5"], ["--n-trials", "0"], ["--set", "tune.bogus=1"]])
def test_bad_config_exits_2_before_any_run(client, override, tmp_path):
    result_file = tmp_path / "result.json"
    assert run_cli("main", *override, "--result-file", str(result_file)) == 2
    assert client.search_runs(["0"]) == []
    result = json.loads(result_file.read_text())
    assert result["status"] == "FAILED" and result["exit_code"] == 2 and "`" in result["error"]


def test_missing_target_column_fails_preprocess(client, tmp_path):
    csv = tmp_path / "no_target.csv"
    pd.DataFrame({"a": [1, 2, 3], "b": [4, 5, 6]}).to_csv(csv, index=False)
    assert run_cli("preprocess", "--set", f"data.source={csv}") == 2
    run = only_run(client, "preprocess")
    assert run.info.status == "FAILED"
    assert "target column 'target' not in" in run.data.tags[ERROR_TAG]


def aliases(client, config):
    return {alias: str(version) for alias, version in
            client.get_registered_model(config.registry.model_name).aliases.items()}


@pytest.mark.parametrize(
    ("spoil", "message"),
    [(lambda frame: frame.drop(columns=["mean radius", "worst area"]), "mean radius, worst area"),
     (lambda frame: frame.assign(**{"mean radius": "big"}), "column 'mean radius' must be numeric but holds"),
     (lambda frame: frame.assign(target=frame["target"].where(frame.index > 2)), "is empty in 3 of"),
     (lambda frame: frame.assign(target="malignant"), "label(s) the model does not know, such as 'malignant'")],
)
def test_bad_evaluation_file_fails_and_promotes_nothing(client, small_config, tmp_path, spoil, message):
    run_chain(small_config)
    train.run(small_config)  # a new challenger (version 2) that a bad evaluation must not promote
    test_split = pd.read_parquet(next((tmp_path / "artifacts").rglob("test.parquet")))
    bad = tmp_path / "eval.csv"
    spoil(test_split).to_csv(bad, index=False)
    assert run_cli("evaluate", "--eval-data", str(bad)) == 2
    failed = client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'evaluate' and attributes.status = 'FAILED'")
    assert len(failed) == 1
    assert message in failed[0].data.tags[ERROR_TAG]
    assert "pipeline.verdict" not in failed[0].data.tags
    assert aliases(client, small_config) == {"champion": "1", "challenger": "2"}


def test_evaluation_on_a_user_file_works(client, small_config, tmp_path):
    run_chain(small_config)
    test_split = pd.read_parquet(next((tmp_path / "artifacts").rglob("test.parquet")))
    raw = tmp_path / "eval.csv"
    test_split.drop(columns=[RATIO_FEATURE]).to_csv(raw, index=False)  # derived again on load
    result_file = tmp_path / "result.json"
    assert run_cli("evaluate", "--eval-data", str(raw), "--result-file", str(result_file)) == 0
    result = json.loads(result_file.read_text())
    assert result["step"] == "evaluate" and result["status"] == "FINISHED" and result["verdict"] == "promoted"
    assert result["metrics"]["roc_auc"] > 0.9


def test_fail_on_reject_exits_5_and_keeps_the_champion(client, small_config):
    run_chain(small_config)
    code = run_cli("evaluate", "--fail-on-reject", "true", "--set", "evaluate.binary.thresholds.roc_auc.threshold=1.01")
    assert code == 5
    failed = client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'evaluate' and attributes.status = 'FAILED'")
    assert len(failed) == 1 and failed[0].data.tags["pipeline.verdict"] == "rejected"
    model = client.get_registered_model(small_config.registry.model_name)
    assert str(model.aliases["champion"]) == "1"


def test_a_failing_step_fails_the_chain_run_too(client, tmp_path):
    assert run_cli("main", "--set", f"data.source={tmp_path / 'missing.csv'}") == 2
    assert only_run(client, "preprocess").info.status == "FAILED"
    chain_run = only_run(client, "main")
    assert chain_run.info.status == "FAILED" and "missing.csv not found" in chain_run.data.tags[ERROR_TAG]
    assert client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'tune'") == []


@pytest.mark.parametrize(
    ("frame", "options", "message"),
    [(pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "target": [0, 1, None, 1]}), [], "is empty in 1 of 4 rows"),
     (pd.DataFrame({"a": range(10), "target": ["B"] * 9 + ["M"]}), [],
      "class 'M' of target column 'target' has 1 row(s); the split (test_size=0.2) needs at least 5 per class"),
     (pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "target": [1, 1, 1, 1]}), [], "holds a single value (1)"),
     (pd.DataFrame({"a": range(15), "target": [0, 1, 2] * 5}), ["--set", "data.task=binary"],
      "data.task is binary but target column 'target' holds 3 classes"),
     (pd.DataFrame({"a": range(10), "target": ["B", "M"] * 5}), ["--set", "data.task=regression"],
      "target column 'target' must be numeric for regression"),
     (pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "target": [0.5, 1.5, 2.5, 3.5]}), ["--set", "tune.metric=auc"],
      "tune.metric 'auc' does not fit a regression task")],
)
def test_unusable_training_data_fails(client, tmp_path, frame, options, message):
    csv = tmp_path / "data.csv"
    frame.to_csv(csv, index=False)
    step = "main" if "tune.metric=auc" in options else "preprocess"
    assert run_cli(step, "--set", f"data.source={csv}", *options) == 2
    failed = client.search_runs(["0"], "attributes.status = 'FAILED'")
    assert failed and all(message in run.data.tags[ERROR_TAG] for run in failed)


def full_disk(*args, **kwargs):
    raise OSError("No space left on device")


def test_a_failure_after_registration_takes_the_version_back(client, small_config, monkeypatch):
    run_chain(small_config)
    monkeypatch.setattr("pipeline.tracking.StepRun.fingerprint", full_disk)  # runs after the step's body
    with pytest.raises(OSError):
        train.run(small_config)
    (failed,) = client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'train' and attributes.status = 'FAILED'")
    assert failed.data.tags["pipeline.model.version"] == "2"  # it was registered, then taken back
    assert [str(v.version) for v in client.search_model_versions("")] == ["1"]
    assert aliases(client, small_config) == {"champion": "1", "challenger": "1"}


def test_a_failed_log_upload_fails_the_run(client, small_config, monkeypatch):
    monkeypatch.setattr("pipeline.tracking.mlflow.log_artifact", full_disk)
    with pytest.raises(OSError):
        preprocess.run(small_config)
    assert only_run(client, "preprocess").info.status == "FAILED"


def test_a_failure_after_promotion_puts_the_champion_back(client, small_config, monkeypatch):
    run_chain(small_config)
    train.run(small_config)
    monkeypatch.setattr("pipeline.tracking.StepRun.fingerprint", full_disk)  # runs after the step's body
    with pytest.raises(OSError):
        evaluate.run(small_config)
    (failed,) = client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'evaluate' and attributes.status = 'FAILED'")
    assert failed.data.tags["pipeline.verdict"] == "promoted"  # decided, then taken back by the failure
    assert aliases(client, small_config) == {"champion": "1", "challenger": "2"}


def test_unreachable_tracking_store_exits_4_quickly(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    result_file = tmp_path / "result.json"
    assert run_cli("preprocess", "--result-file", str(result_file)) == 4
    assert "cannot reach the tracking store http://127.0.0.1:9" in json.loads(result_file.read_text())["error"]
