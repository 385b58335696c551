"""The README, the MLproject and the CLI describe the same parameters."""

import re

import yaml

from pipeline.cli import build_parser
from tests.conftest import REPO_ROOT

MLPROJECT = yaml.safe_load((REPO_ROOT / "MLproject").read_text())
README = (REPO_ROOT / "README.md").read_text()


def test_every_entry_point_passes_each_parameter_to_the_cli():
    options = {action.option_strings[0] for action in build_parser()._actions if action.option_strings}
    for name, entry in MLPROJECT["entry_points"].items():
        for parameter in entry["parameters"]:
            assert f"--{parameter} {{{parameter}}}" in entry["command"], (name, parameter)
            assert f"--{parameter}" in options, parameter
            assert entry["parameters"][parameter]["default"] == "", "defaults live in configs/pipeline.yaml only"


def test_the_readme_documents_every_parameter_with_its_entry_points():
    table = {
        row[0].strip("` "): row[-1]
        for row in (line.strip("|").split("|") for line in README.splitlines() if line.startswith("| `"))
    }
    for name, entry in MLPROJECT["entry_points"].items():
        for parameter in entry["parameters"]:
            assert parameter in table, f"README lacks -P {parameter}"
            assert name in table[parameter] or "all" in table[parameter], (parameter, name)


def test_readme_step_commands_name_real_entry_points():
    for entry_point in re.findall(r"mlflow run \. -e (\w+)", README):
        assert entry_point in MLPROJECT["entry_points"]
