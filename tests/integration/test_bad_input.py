"""The reliability table: every bad input the README's error table names, through the CLI as an orchestrator runs
it. Each case must give one ERROR line naming the problem, its exit code (also in the result file), a FAILED run
(never RUNNING) holding the same words, nothing registered or promoted, and no partial output file.

The tables run in test-fast: they stop before any model is trained. The cases on rows handed to evaluate and
predict need a champion first (marked heavy). The rows of engine dask (scheduler unreachable, dask extra missing,
a worker lost) are in test_dask_engine.py, which starts a cluster."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from pipeline import cli
from pipeline.contract import ERROR_TAG, STEP_TAG, VERDICT_TAG
from pipeline.steps import train
from pipeline.steps.chain import run_chain
from tests.helpers import DEFAULT_CONFIG
from tests.hooks.breast_cancer_ratio import RATIO_FEATURE

GOOD_ROWS = "a,b,target\n" + "".join(f"{i}.0,{10 - i}.5,{i % 2}\n" for i in range(10))  # 5 rows a class
# The runs a case leaves, {step: status}: none for a bad config (refused before any run opens); else the chain's run
# and the step that found the problem FAILED, the steps before it FINISHED, none after it.
NO_RUN: dict[str, str] = {}
AT_PREPROCESS = {"main": "FAILED", "preprocess": "FAILED"}
AT_TUNE = {"main": "FAILED", "preprocess": "FINISHED", "tune": "FAILED"}

# (case, file content or None for no file, extra CLI arguments, exit code, words the error line must hold, the
# runs left)
SOURCE_CASES = [
    ("missing file", None, [], 2, "data.csv not found", AT_PREPROCESS),
    ("empty file", "", [], 2, "cannot be read: No columns to parse", AT_PREPROCESS),
    ("header only", "a,b,target\n", [], 2, "holds no rows", AT_PREPROCESS),
    ("wrong delimiter", GOOD_ROWS.replace(",", ";"), [], 2, "seems to use ';' between columns", AT_PREPROCESS),
    ("missing target", "a,b\n1,2\n3,4\n", [], 2, "target column 'target' not in", AT_PREPROCESS),
    (
        "tiny class",
        "a,target\n1,yes\n2,no\n3,yes\n4,no\n5,no\n6,no\n7,no\n",
        [],
        2,
        "class 'yes' of target column 'target' has 2 row(s); the split (test_size=0.2) needs at least 5 per class",
        AT_PREPROCESS,
    ),
    (
        "single class",
        "a,target\n1,0\n2,0\n3,0\n",
        ["--set", "data.task=binary"],
        2,
        "holds one class (0, 3 rows); a classifier needs at least two",
        AT_PREPROCESS,
    ),
    ("single value", "a,target\n1.0,1\n2.0,1\n3.0,1\n4.0,1\n", [], 2, "holds a single value (1)", AT_PREPROCESS),
    (
        "more classes than the task",
        "a,target\n" + "".join(f"{i},{i % 3}\n" for i in range(15)),
        ["--set", "data.task=binary"],
        2,
        "data.task is binary but target column 'target' holds 3 classes",
        AT_PREPROCESS,
    ),
    (
        "text target for regression",
        "a,target\n" + "".join(f"{i},{'BM'[i % 2]}\n" for i in range(10)),
        ["--set", "data.task=regression"],
        2,
        "target column 'target' must be numeric for regression",
        AT_PREPROCESS,
    ),
    (
        "unknown positive class",
        GOOD_ROWS,
        ["--set", "data.positive_class=maybe"],
        2,
        "data.positive_class 'maybe' is not a label of target column 'target' (labels: 0, 1)",
        AT_PREPROCESS,
    ),
    (
        "unparseable date",
        "a,signed,target\n" + "".join(f"{i},2024-01-0{i % 9 + 1},{i % 2}\n" for i in range(12)) + "5,someday,1\n",
        ["--set", "data.datetime_columns=[signed]"],
        2,
        "column 'signed' holds 1 value(s) that are not ISO 8601 dates, such as 'someday'",
        AT_PREPROCESS,
    ),
    ("NaN-only target", "a,target\n1,\n2,\n3,\n", [], 2, "is empty in 3 of 3 rows", AT_PREPROCESS),
    (
        "target empty in a row (data.missing_target: fail)",
        "a,target\n1.0,0\n2.0,1\n3.0,\n4.0,1\n",
        ["--set", "data.missing_target=fail"],
        2,
        "is empty in 1 of 4 rows; drop or fill those rows",
        AT_PREPROCESS,
    ),
    (
        "target empty in most rows",
        "a,target\n1.0,0\n2.0,\n3.0,\n4.0,1\n5.0,\n",
        [],
        2,
        "is empty in 3 of 5 rows, more than half",
        AT_PREPROCESS,
    ),
    ("duplicate columns", "a,a,target\n1,2,0\n3,4,1\n", [], 2, "duplicate column names: a", AT_PREPROCESS),
    ("no feature left", "target\n" + "0\n1\n" * 5, [], 2, "no feature column is left", AT_PREPROCESS),
    ("bad config value", GOOD_ROWS, ["--set", "split.test_size=1.5"], 2, "`split.test_size`", NO_RUN),
    ("bad parameter value", GOOD_ROWS, ["--test-size", "1.5"], 2, "`split.test_size`", NO_RUN),
    ("no trials", GOOD_ROWS, ["--n-trials", "0"], 2, "`tune.n_trials`", NO_RUN),
    ("unknown config key", GOOD_ROWS, ["--set", "tune.bogus=1"], 2, "`tune.bogus`: unknown key", NO_RUN),
    (
        "metric unfit for the task",
        GOOD_ROWS,
        ["--set", "tune.metric=rmse"],
        2,
        "tune.metric 'rmse' does not fit a binary task",
        AT_TUNE,
    ),
    (
        "metric unfit for regression",
        "a,target\n1.0,0.5\n2.0,1.5\n3.0,2.5\n4.0,3.5\n",
        ["--set", "tune.metric=auc"],
        2,
        "tune.metric 'auc' does not fit a regression task",
        AT_TUNE,
    ),
]


def error_lines(capfd) -> list[str]:
    return [line for line in capfd.readouterr().err.splitlines() if " ERROR " in line]


def assert_nothing_half_done(client, tmp_path):
    assert client.search_runs(["0"], "attributes.status = 'RUNNING'") == []
    assert client.search_registered_models() == []
    assert not [path for path in tmp_path.rglob("*") if path.name.startswith((".predict-", "out"))]


@pytest.mark.parametrize(
    ("case", "content", "options", "code", "words", "left"), SOURCE_CASES, ids=[case[0] for case in SOURCE_CASES]
)
def test_bad_source_or_config(client, tmp_path, capfd, case, content, options, code, words, left):
    source = tmp_path / "data.csv"
    if content is not None:
        source.write_text(content)
    result_file = tmp_path / "result.json"
    command = ["main", "--config", str(DEFAULT_CONFIG), "--set", f"data.source={source}", *options]
    assert cli.main([*command, "--result-file", str(result_file)]) == code
    errors = error_lines(capfd)
    assert len(errors) == 1 and words in errors[0], errors
    result = json.loads(result_file.read_text())
    assert result["status"] == "FAILED" and result["exit_code"] == code and words in result["error"]
    runs = client.search_runs(["0"])
    assert len(runs) == len(left) and {run.data.tags[STEP_TAG]: run.info.status for run in runs} == left
    assert all(words in run.data.tags[ERROR_TAG] for run in runs if run.info.status == "FAILED")
    assert_nothing_half_done(client, tmp_path)


def test_unreachable_tracking_store_exits_4_quickly(monkeypatch, tmp_path, capfd):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    (tmp_path / "data.csv").write_text(GOOD_ROWS)
    result_file = tmp_path / "result.json"
    command = ["main", "--config", str(DEFAULT_CONFIG), "--set", f"data.source={tmp_path / 'data.csv'}"]
    started = time.monotonic()
    assert cli.main([*command, "--result-file", str(result_file)]) == 4
    assert time.monotonic() - started < 30
    errors = error_lines(capfd)
    assert len(errors) == 1 and "cannot reach the tracking store http://127.0.0.1:9" in errors[0], errors
    assert "cannot reach the tracking store http://127.0.0.1:9" in json.loads(result_file.read_text())["error"]
    assert cli.main(["preprocess", "--config", str(DEFAULT_CONFIG), "--result-file", str(result_file)]) == 4
    result = json.loads(result_file.read_text())
    assert result["exit_code"] == 4 and "cannot reach the tracking store http://127.0.0.1:9" in result["error"]


def test_unknown_step_is_refused_by_the_command_line(capfd):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["deploy"])
    assert exit_.value.code == 2 and "invalid choice: 'deploy'" in capfd.readouterr().err


# (case, run preprocess first, the command (a step and its arguments), words in the error line and the run's error
# tag, the fix the error line names or None)
UPSTREAM_CASES = [
    ("tune without preprocess", False, ["tune"], "no finished 'preprocess' run", "mlflow run . -e preprocess"),
    ("train without tune", False, ["train"], "no finished 'tune' run", "mlflow run . -e tune"),
    *(
        (f"{step} pinned to no run", False, [step, "--upstream-run-id", "deadbeef"], "'deadbeef' does not exist", None)
        for step in ("tune", "train", "evaluate")
    ),
    (
        "train pinned to preprocess",
        True,
        ["train", "--upstream-run-id", "{preprocess}"],
        "is a 'preprocess' run, not a 'tune' run",
        None,
    ),
    (
        "evaluate pinned to preprocess",
        True,
        ["evaluate", "--upstream-run-id", "{preprocess}"],
        "is a 'preprocess' run, not a 'train' run",
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "with_preprocess", "command", "words", "fix"), UPSTREAM_CASES, ids=[case[0] for case in UPSTREAM_CASES]
)
def test_no_usable_upstream_exits_3_with_a_failed_run(
    client, capfd, tmp_path, case, with_preprocess, command, words, fix
):
    preprocess_id = ""
    if with_preprocess:
        assert cli.main(["preprocess", "--config", str(DEFAULT_CONFIG)]) == 0
        (preprocess_run,) = client.search_runs(["0"], "attributes.status = 'FINISHED'")
        preprocess_id = preprocess_run.info.run_id
        capfd.readouterr()
    step, *arguments = [argument.replace("{preprocess}", preprocess_id) for argument in command]
    result_file = tmp_path / "result.json"
    assert cli.main([step, "--config", str(DEFAULT_CONFIG), *arguments, "--result-file", str(result_file)]) == 3
    errors = error_lines(capfd)
    assert len(errors) == 1 and words in errors[0], errors
    assert fix is None or f"{fix} --env-manager local" in errors[0]
    (run,) = client.search_runs(["0"], f"tags.`{STEP_TAG}` = '{step}'")
    assert run.info.status == "FAILED" and words in run.data.tags[ERROR_TAG]
    result = json.loads(result_file.read_text())
    assert result["run_id"] == run.info.run_id and result["exit_code"] == 3
    assert client.search_runs(["0"], "attributes.status = 'RUNNING'") == []


def aliases(client, name: str) -> dict[str, str]:
    return {alias: str(version) for alias, version in client.get_registered_model(name).aliases.items()}


@pytest.fixture
def champion_rows(client, small_config, tmp_path) -> pd.DataFrame:
    """A champion (version 1) and the chain's test split, as a user could hand it back."""
    run_chain(small_config)
    return pd.read_parquet(next((tmp_path / "artifacts").rglob("test.parquet")))


@pytest.fixture
def challenger(champion_rows, small_config) -> pd.DataFrame:
    """And a newer challenger (version 2) that a bad evaluation must not promote."""
    train.run(small_config)
    return champion_rows


# (case, how the test split is spoiled, words of the error, whether predict is asked too: rows without the target)
BAD_ROWS = [
    (
        "missing columns",
        lambda rows: rows.drop(columns=["mean radius", "worst area"]),
        "lacks 2 column(s) the model needs: mean radius, worst area",
        True,
    ),
    (
        "mistyped column",
        lambda rows: rows.astype({"mean texture": object}).assign(**{"mean texture": "soft"}),
        "column 'mean texture' must be numeric but holds",
        True,
    ),
    (
        "text in a numeric column",
        lambda rows: rows.assign(**{"mean radius": "big"}),
        "column 'mean radius' must be numeric but holds",
        True,
    ),
    (
        "target with gaps",
        lambda rows: rows.assign(target=rows["target"].where(rows.index > 2)),
        "is empty in 3 of",
        False,
    ),
    (
        "unknown label",
        lambda rows: rows.assign(target="malignant"),
        "label(s) the model does not know, such as 'malignant'",
        False,
    ),
]


@pytest.mark.heavy
@pytest.mark.parametrize(("case", "spoil", "words", "predict"), BAD_ROWS, ids=[case[0] for case in BAD_ROWS])
def test_bad_rows_for_evaluate_and_predict(
    client, challenger, small_config, tmp_path, capfd, case, spoil, words, predict
):
    name = small_config.registry.model_name
    spoil(challenger).to_csv(tmp_path / "rows.csv", index=False)
    capfd.readouterr()
    assert cli.main(["evaluate", "--config", str(DEFAULT_CONFIG), "--eval-data", str(tmp_path / "rows.csv")]) == 2
    errors = error_lines(capfd)
    assert len(errors) == 1 and words in errors[0], errors
    (failed_evaluate,) = client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'evaluate' and attributes.status = 'FAILED'")
    assert VERDICT_TAG not in failed_evaluate.data.tags
    if predict:
        output = ["--output", str(tmp_path / "out.csv")]
        assert (
            cli.main(["predict", "--config", str(DEFAULT_CONFIG), "--input", str(tmp_path / "rows.csv"), *output]) == 2
        )
        errors = error_lines(capfd)
        assert len(errors) == 1 and words in errors[0], errors
        assert not (tmp_path / "out.csv").exists() and not list(tmp_path.glob(".predict-*"))
    assert [str(version.version) for version in client.search_model_versions(f"name = '{name}'")] == ["2", "1"]
    assert aliases(client, name) == {"champion": "1", "challenger": "2"}
    failed = client.search_runs(["0"], "attributes.status = 'FAILED'")
    assert len(failed) == (2 if predict else 1) and all(words in run.data.tags[ERROR_TAG] for run in failed)
    assert client.search_runs(["0"], "attributes.status = 'RUNNING'") == []


@pytest.mark.heavy
def test_evaluation_on_a_user_file_works(client, champion_rows, tmp_path):
    raw = tmp_path / "eval.csv"
    champion_rows.drop(columns=[RATIO_FEATURE]).to_csv(raw, index=False)  # derived again on load
    result_file = tmp_path / "result.json"
    evaluate = ["evaluate", "--config", str(DEFAULT_CONFIG), "--eval-data", str(raw), "--result-file", str(result_file)]
    assert cli.main(evaluate) == 0
    result = json.loads(result_file.read_text())
    assert result["step"] == "evaluate" and result["status"] == "FINISHED" and result["verdict"] == "promoted"
    assert result["metrics"]["roc_auc"] > 0.9


@pytest.mark.heavy
def test_fail_on_reject_exits_5_and_keeps_the_champion(client, small_config):
    run_chain(small_config)
    strict = ["--set", "evaluate.binary.thresholds.roc_auc.threshold=1.01"]
    assert cli.main(["evaluate", "--config", str(DEFAULT_CONFIG), "--fail-on-reject", "true", *strict]) == 5
    failed = client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'evaluate' and attributes.status = 'FAILED'")
    assert len(failed) == 1 and failed[0].data.tags[VERDICT_TAG] == "rejected"
    assert aliases(client, small_config.registry.model_name)["champion"] == "1"


@pytest.mark.heavy
def test_a_missing_evaluation_file_fails_the_chain_in_one_line(client, tmp_path, capfd):
    assert cli.main(["main", "--config", str(DEFAULT_CONFIG), "--eval-data", str(tmp_path / "nope.csv")]) == 2
    errors = error_lines(capfd)
    assert len(errors) == 1 and "nope.csv not found" in errors[0]
    assert client.search_runs(["0"], "attributes.status = 'RUNNING'") == []
    assert {alias for alias in client.get_registered_model("breast-cancer-xgb").aliases} == {"challenger"}
