"""A step called from option values (the CLI and main): the contract's options become `run(...)`'s keywords."""

import pytest

from pipeline.contract import CHAIN_OPTIONS, STEPS
from pipeline.errors import ConfigError
from pipeline.steps.calls import step_keywords


def test_options_become_keywords_and_empty_values_are_left_to_the_step():
    values = {"input_path": "in.csv", "output_path": "out.csv", "alias": "", "version": None, "chunk_rows": "500"}
    assert step_keywords(STEPS["predict"], values) == {
        "input_path": "in.csv",
        "output_path": "out.csv",
        "chunk_rows": 500,
    }
    assert step_keywords(STEPS["tune"], {"upstream_run_id": "abc", "eval_data": "x.csv"}) == {"upstream_run_id": "abc"}
    assert step_keywords(STEPS["preprocess"], {"upstream_run_id": "abc"}) == {}  # reads no upstream run


def test_a_missing_required_option_names_every_required_one():
    with pytest.raises(ConfigError, match=r"^predict needs --input and --output \(-P input=\.\.\. -P output=\.\.\.\)$"):
        step_keywords(STEPS["predict"], {"input_path": "in.csv"})


@pytest.mark.parametrize("bad", ["0", "-3", "many", "1.5"])
def test_a_count_must_be_a_positive_integer(bad):
    with pytest.raises(ConfigError, match=f"^--chunk-rows must be a positive integer, got '{bad}'$"):
        step_keywords(STEPS["predict"], {"input_path": "a", "output_path": "b", "chunk_rows": bad})


def test_main_hands_evaluate_its_eval_data():
    assert [option.flag for option in CHAIN_OPTIONS] == ["--eval-data"]
    assert step_keywords(STEPS["evaluate"], {"eval_data": "rows.csv", "upstream_run_id": "r"}) == {
        "eval_data": "rows.csv",
        "upstream_run_id": "r",
    }


@pytest.mark.parametrize("command", ["monitor", "predict"])
def test_model_version_is_another_name_for_version(command):
    from pipeline.cli import build_parser

    output = ["--output", "scored.csv"] if command == "predict" else []
    argv = [command, "--input", "rows.csv", "--model-version", "3", *output]
    assert build_parser().parse_args(argv).version == "3"


def test_an_option_is_never_taken_for_an_abbreviation_of_another(capsys):
    from pipeline.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["monitor", "--input", "rows.csv", "--model", "churn"])  # reproduce's option
    assert "unrecognized arguments: --model churn" in capsys.readouterr().err
