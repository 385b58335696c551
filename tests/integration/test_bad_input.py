"""The reliability table: every bad input the README's error table names, through the CLI as an orchestrator runs
it. Each case must give one ERROR line naming the problem, its exit code, a FAILED run (never RUNNING), nothing
registered or promoted, and no partial output file."""

from __future__ import annotations

import pytest

from pipeline import cli
from pipeline.chain import run_chain
from pipeline.lineage import ERROR_TAG
from tests.conftest import DEFAULT_CONFIG, SMALL_OVERRIDES

SMALL = [arg for key, value in SMALL_OVERRIDES.items() for arg in ("--set", f"{key}={value}")]
GOOD_ROWS = "a,b,target\n" + "".join(f"{i}.0,{10 - i}.5,{i % 2}\n" for i in range(10))  # 5 rows a class

# (case, file content or None, extra CLI arguments, exit code, words the error line must hold)
SOURCE_CASES = [
    ("empty file", "", [], 2, "cannot be read: No columns to parse"),
    ("header only", "a,b,target\n", [], 2, "holds no rows"),
    ("wrong delimiter", GOOD_ROWS.replace(",", ";"), [], 2, "seems to use ';' between columns"),
    ("missing target", "a,b\n1,2\n3,4\n", [], 2, "target column 'target' not in"),
    ("tiny class", "a,target\n1,yes\n2,no\n3,yes\n4,no\n5,no\n6,no\n7,no\n", [], 2,
     "class 'yes' of target column 'target' has 2 row(s); the split (test_size=0.2) needs at least 5 per class"),
    ("single class", "a,target\n1,0\n2,0\n3,0\n", ["--set", "data.task=binary"], 2,
     "holds one class (0, 3 rows); a classifier needs at least two"),
    ("unknown positive class", GOOD_ROWS, ["--set", "data.positive_class=maybe"], 2,
     "data.positive_class 'maybe' is not a label of target column 'target' (labels: 0, 1)"),
    ("unparseable date", "a,signed,target\n" + "".join(f"{i},2024-01-0{i % 9 + 1},{i % 2}\n" for i in range(12))
     + "5,someday,1\n", ["--set", "data.datetime_columns=[signed]"], 2,
     "column 'signed' holds 1 value(s) that are not ISO 8601 dates, such as 'someday'"),
    ("NaN-only target", "a,target\n1,\n2,\n3,\n", [], 2, "is empty in 3 of 3 rows"),
    ("duplicate columns", "a,a,target\n1,2,0\n3,4,1\n", [], 2, "duplicate column names: a"),
    ("no feature left", "target\n" + "0\n1\n" * 5, [], 2, "no feature column is left"),
    ("bad config value", GOOD_ROWS, ["--set", "split.test_size=1.5"], 2, "`split.test_size`"),
    ("unknown config key", GOOD_ROWS, ["--set", "tune.bogus=1"], 2, "`tune.bogus`: unknown key"),
    ("metric unfit for the task", GOOD_ROWS, ["--set", "tune.metric=rmse"], 2,
     "tune.metric 'rmse' does not fit a binary task"),
    ("unreachable tracking store", GOOD_ROWS, ["--tracking", "http://127.0.0.1:9"], 4,
     "cannot reach the tracking store http://127.0.0.1:9"),
]


def error_lines(capfd) -> list[str]:
    return [line for line in capfd.readouterr().err.splitlines() if " ERROR " in line]


def assert_nothing_half_done(client, tmp_path):
    assert client.search_runs(["0"], "attributes.status = 'RUNNING'") == []
    assert client.search_registered_models() == []
    assert not [path for path in tmp_path.rglob("*") if path.name.startswith((".predict-", "out"))]


@pytest.mark.parametrize(("case", "content", "options", "code", "words"), SOURCE_CASES,
                         ids=[case[0] for case in SOURCE_CASES])
def test_bad_source_or_config(client, tmp_path, capfd, monkeypatch, case, content, options, code, words):
    source = tmp_path / "data.csv"
    source.write_text(content)
    options = list(options)
    if "--tracking" in options:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", options.pop(options.index("--tracking") + 1))
        options.remove("--tracking")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    assert cli.main(["main", "--config", str(DEFAULT_CONFIG), *SMALL, "--set", f"data.source={source}",
                     *options]) == code
    errors = error_lines(capfd)
    assert len(errors) == 1 and words in errors[0], errors
    if code != 4:
        failed = client.search_runs(["0"], "attributes.status = 'FAILED'")
        assert all(words in run.data.tags[ERROR_TAG] for run in failed)
        assert_nothing_half_done(client, tmp_path)


def test_unknown_step_is_refused_by_the_command_line(capfd):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["deploy"])
    assert exit_.value.code == 2 and "invalid choice: 'deploy'" in capfd.readouterr().err


@pytest.fixture
def champion(client, small_config):
    run_chain(small_config)
    return client.get_registered_model(small_config.registry.model_name)


def test_missing_upstream_and_a_pin_of_the_wrong_step(client, capfd):
    assert cli.main(["train", "--config", str(DEFAULT_CONFIG)]) == 3
    assert "no finished 'tune' run" in error_lines(capfd)[-1]
    assert cli.main(["preprocess", "--config", str(DEFAULT_CONFIG)]) == 0
    (preprocess_run,) = client.search_runs(["0"], "attributes.status = 'FINISHED'")
    assert cli.main(["evaluate", "--config", str(DEFAULT_CONFIG), "--upstream-run-id",
                     preprocess_run.info.run_id]) == 3
    assert "is a 'preprocess' run, not a 'train' run" in error_lines(capfd)[-1]
    assert client.search_runs(["0"], "attributes.status = 'RUNNING'") == []


@pytest.mark.parametrize(("case", "spoil", "words"), [
    ("missing columns", lambda rows: rows.drop(columns=["mean radius", "worst area"]),
     "lacks 2 column(s) the model needs: mean radius, worst area"),
    ("mistyped column", lambda rows: rows.astype({"mean texture": object}).assign(**{"mean texture": "soft"}),
     "column 'mean texture' must be numeric but holds"),
])
def test_bad_rows_for_evaluate_and_predict(client, champion, tmp_path, capfd, case, spoil, words):
    import pandas as pd

    test_split = pd.read_parquet(next((tmp_path / "artifacts").rglob("test.parquet")))
    spoil(test_split).to_csv(tmp_path / "rows.csv", index=False)
    versions = len(client.search_model_versions(f"name = '{champion.name}'"))
    assert cli.main(["evaluate", "--config", str(DEFAULT_CONFIG), "--eval-data", str(tmp_path / "rows.csv")]) == 2
    assert words in error_lines(capfd)[-1]
    assert cli.main(["predict", "--config", str(DEFAULT_CONFIG), "--input", str(tmp_path / "rows.csv"),
                     "--output", str(tmp_path / "out.csv")]) == 2
    assert words in error_lines(capfd)[-1]
    assert not (tmp_path / "out.csv").exists() and not list(tmp_path.glob(".predict-*"))
    assert len(client.search_model_versions(f"name = '{champion.name}'")) == versions
    assert {a: str(v) for a, v in client.get_registered_model(champion.name).aliases.items()}["champion"] == "1"
    failed = client.search_runs(["0"], "attributes.status = 'FAILED'")
    assert len(failed) == 2 and all(words in run.data.tags[ERROR_TAG] for run in failed)


def test_a_missing_evaluation_file_fails_the_chain_in_one_line(client, tmp_path, capfd):
    assert cli.main(["main", "--config", str(DEFAULT_CONFIG), *SMALL, "--eval-data", str(tmp_path / "nope.csv")]) == 2
    errors = error_lines(capfd)
    assert len(errors) == 1 and "nope.csv not found" in errors[0]
    assert client.search_runs(["0"], "attributes.status = 'RUNNING'") == []
    assert {alias for alias in client.get_registered_model("breast-cancer-xgb").aliases} == {"challenger"}
