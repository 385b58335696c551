"""Promotion records the champion it replaces; rollback walks back one promotion at a time, with a record."""

import json

import pytest

from pipeline import cli
from pipeline.contract import STEP_TAG
from pipeline.errors import UpstreamError
from pipeline.steps import rollback, train
from pipeline.steps.chain import run_chain
from tests.helpers import DEFAULT_CONFIG, small_config_with

pytestmark = pytest.mark.heavy


def aliases(client, config):
    model = client.get_registered_model(config.registry.model_name)
    return {alias: str(version) for alias, version in model.aliases.items()}


def test_a_promotion_keeps_the_replaced_champion(client, small_config):
    run_chain(small_config)
    assert "previous-champion" not in aliases(client, small_config)
    run_chain(small_config, force=["all"])  # the same config again: computed anew, not reused
    assert aliases(client, small_config) == {"champion": "2", "challenger": "2", "previous-champion": "1"}
    version = client.get_model_version(small_config.registry.model_name, "2")
    assert version.tags["pipeline.previous_champion"] == "1"


def test_rollback_restores_the_previous_champion_with_a_record(client, small_config, tmp_path):
    for _ in range(3):
        run_chain(small_config, force=["all"])
    assert aliases(client, small_config)["champion"] == "3"
    result_file = tmp_path / "rollback.json"
    assert (
        cli.main(
            [
                "rollback",
                "--config",
                str(DEFAULT_CONFIG),
                "--reason",
                "drift on Mondays",
                "--result-file",
                str(result_file),
            ]
        )
        == 0
    )
    assert aliases(client, small_config) == {"champion": "2", "challenger": "3", "previous-champion": "1"}
    model = client.get_registered_model(small_config.registry.model_name)
    record = json.loads(model.tags["pipeline.last_rollback"])
    assert record["from"] == "3" and record["to"] == "2" and record["reason"] == "drift on Mondays"
    assert record["by"] and record["at"].endswith("Z")
    assert client.get_model_version(small_config.registry.model_name, "3").tags["pipeline.rolled_back"] == (
        "drift on Mondays"
    )
    (run,) = client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'rollback'")
    assert run.info.status == "FINISHED" and run.data.params["rollback.from"] == "3"
    assert json.loads(result_file.read_text())["model_version"] == "2"
    # A second rollback goes one step further back; then there is nothing left to go back to.
    rollback.run(small_config, reason="again")
    assert aliases(client, small_config) == {"champion": "1", "challenger": "3"}
    with pytest.raises(UpstreamError, match="has no @previous-champion version to go back to"):
        rollback.run(small_config)
    assert aliases(client, small_config)["champion"] == "1"


def test_a_rejected_challenger_leaves_the_promotion_record_alone(client, small_config):
    run_chain(small_config)
    strict = small_config_with({"evaluate.binary.thresholds.roc_auc.threshold": 1.01})
    train.run(strict)
    from pipeline.steps import evaluate

    assert evaluate.run(strict).verdict == "rejected"
    assert aliases(client, small_config) == {"champion": "1", "challenger": "2"}


def test_rollback_without_history_fails_cleanly(client, small_config):
    run_chain(small_config)
    assert cli.main(["rollback", "--config", str(DEFAULT_CONFIG)]) == 3
    (run,) = client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'rollback'")
    assert run.info.status == "FAILED"
    assert aliases(client, small_config)["champion"] == "1"
