"""Bad input: a one-line error, a non-zero exit, a FAILED run (never RUNNING), nothing registered or promoted."""

import json

import pandas as pd
import pytest

from pipeline import cli
from pipeline.chain import run_chain
from pipeline.lineage import ERROR_TAG, STEP_TAG
from tests.conftest import DEFAULT_CONFIG, SMALL_OVERRIDES

SMALL = [arg for key, value in SMALL_OVERRIDES.items() for arg in ("--set", f"{key}={value}")]


def run_cli(*args: str) -> int:
    return cli.main([args[0], "--config", str(DEFAULT_CONFIG), *SMALL, *args[1:]])


def only_run(client, step):
    (run,) = client.search_runs(["0"], f"tags.`{STEP_TAG}` = '{step}'")
    return run


def test_no_finished_upstream_fails_the_run_with_the_fix(client, capfd):
    assert run_cli("tune") == 3
    run = only_run(client, "tune")
    assert run.info.status == "FAILED"
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


def test_evaluation_file_missing_features_fails_and_promotes_nothing(client, small_config, tmp_path):
    run_chain(small_config)
    test_split = pd.read_parquet(next((tmp_path / "artifacts").rglob("test.parquet")))
    bad = tmp_path / "eval.csv"
    test_split.drop(columns=["mean radius", "worst area"]).to_csv(bad, index=False)
    versions_before = client.search_model_versions("")
    assert run_cli("evaluate", "--eval-data", str(bad)) == 2
    failed = client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'evaluate' and attributes.status = 'FAILED'")
    assert len(failed) == 1
    assert "mean radius, worst area" in failed[0].data.tags[ERROR_TAG]
    assert "pipeline.verdict" not in failed[0].data.tags
    assert len(client.search_model_versions("")) == len(versions_before)


def test_evaluation_on_a_user_file_works(client, small_config, tmp_path):
    run_chain(small_config)
    test_split = pd.read_parquet(next((tmp_path / "artifacts").rglob("test.parquet")))
    raw = tmp_path / "eval.csv"
    test_split.drop(columns=["symmetry_texture_ratio"]).to_csv(raw, index=False)  # derived again on load
    result_file = tmp_path / "result.json"
    assert run_cli("evaluate", "--eval-data", str(raw), "--result-file", str(result_file)) == 0
    result = json.loads(result_file.read_text())
    assert result["step"] == "evaluate" and result["status"] == "FINISHED" and result["verdict"] == "promoted"
    assert result["metrics"]["roc_auc"] > 0.9


def test_fail_on_reject_exits_5_and_keeps_the_champion(client, small_config):
    run_chain(small_config)
    code = run_cli("evaluate", "--fail-on-reject", "true", "--set", "evaluate.thresholds.roc_auc.threshold=1.01")
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
