"""`history`: every promotion and rollback of a registered model in order, and who was champion when; read from
what evaluate and rollback record, including registries made before those records existed.

The history is built without training: registered versions with no model behind them, promoted by evaluate's own
`_record` inside a real evaluate step run and rolled back by `rollback.run`, on the test's private store."""

from __future__ import annotations

import getpass
import json
from datetime import timedelta

import mlflow
import pytest

from pipeline import cli
from pipeline.contract import (
    LAST_ROLLBACK_TAG,
    MODEL_NAME_TAG,
    MODEL_VERSION_TAG,
    PREVIOUS_CHAMPION_TAG,
    PROMOTION_TAG,
    STEP_TAG,
    TASK_TAG,
    VERDICT_TAG,
    version_run_tag,
)
from pipeline.errors import ConfigError
from pipeline.modeling.promotion import PROMOTED, REJECTED, Verdict
from pipeline.steps import evaluate, history, rollback
from pipeline.tracking.lookup import quoted
from pipeline.tracking.promotion_log import iso, parse_time
from pipeline.tracking.runs import RunContext, step_run
from tests.helpers import DEFAULT_CONFIG


def new_version(client, name: str) -> str:
    """A registered version with no model behind it: history reads tags, aliases and runs only."""
    if not client.search_registered_models(f"name = {quoted(name)}"):
        client.create_registered_model(name)
    return str(client.create_model_version(name, source="/nowhere/model").version)


def preprocess_run(client, task: str = "binary") -> str:
    run = client.create_run("0", tags={STEP_TAG: "preprocess", TASK_TAG: task})
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def judge(config, version: str, preprocess: str, verdict: Verdict, roc_auc: float, champion: float | None = None):
    """An evaluate run that records `verdict` for `version` with evaluate's own `_record` (which promotes)."""
    with step_run("evaluate", config, RunContext()) as active:
        active.set_upstream("preprocess", preprocess)
        mlflow.set_tags({MODEL_NAME_TAG: config.registry.model_name, MODEL_VERSION_TAG: version})
        mlflow.log_metrics({"roc_auc": roc_auc, **({"champion_roc_auc": champion} if champion is not None else {})})
        evaluate._record(active, verdict, config, version)
    return active.run_id


def promote(config, version, preprocess, roc_auc, champion=None):
    return judge(config, version, preprocess, Verdict(PROMOTED, "passed roc_auc"), roc_auc, champion)


@pytest.fixture
def lived(client, small_config):
    """v1 promoted; v2 promoted over it; v3 rejected, then promoted; rolled back to v2; v2 re-judged while champion
    (no move); a promotion of v4 that failed afterwards (undone); v4 promoted. Returns the run ids."""
    name = small_config.registry.model_name
    pre = preprocess_run(client)
    ids = {}
    ids["p1"] = promote(small_config, new_version(client, name), pre, 0.90)
    ids["p2"] = promote(small_config, new_version(client, name), pre, 0.92, champion=0.90)
    v3 = new_version(client, name)
    judge(small_config, v3, pre, Verdict(REJECTED, "roc_auc failed"), 0.80, champion=0.92)
    ids["p3"] = promote(small_config, v3, pre, 0.95, champion=0.92)
    ids["r1"] = rollback.run(small_config, reason="drift on Mondays").run_id
    judge(small_config, "2", pre, Verdict(PROMOTED, "passed roc_auc (version 2 already is the champion)"), 0.92)
    v4 = new_version(client, name)
    with pytest.raises(RuntimeError, match="after the promotion"):
        with step_run("evaluate", small_config, RunContext()) as active:
            mlflow.set_tags({MODEL_NAME_TAG: name, MODEL_VERSION_TAG: v4})
            evaluate._record(active, Verdict(PROMOTED, "passed roc_auc"), small_config, v4)
            raise RuntimeError("failed after the promotion")
    ids["failed"] = active.run_id
    ids["p4"] = promote(small_config, v4, pre, 0.96, champion=0.92)
    return ids


def test_the_history_lists_every_promotion_and_rollback_in_order(client, small_config, lived):
    result = history.run(small_config)
    events = result["events"]
    assert [(e["event"], e["version"], e["from_version"]) for e in events] == [
        ("promoted", "1", None),
        ("promoted", "2", "1"),
        ("promoted", "3", "2"),
        ("rolled back", "2", "3"),
        ("promoted", "4", "2"),
    ]
    assert [e["run_id"] for e in events] == [lived["p1"], lived["p2"], lived["p3"], lived["r1"], lived["p4"]]
    assert [e["evaluate_run"] for e in events] == [lived["p1"], lived["p2"], lived["p3"], None, lived["p4"]]
    assert [(e["metric"], e["value"], e["champion_value"]) for e in events] == [
        ("roc_auc", 0.90, None),
        ("roc_auc", 0.92, 0.90),
        ("roc_auc", 0.95, 0.92),
        (None, None, None),
        ("roc_auc", 0.96, 0.92),
    ]
    times = [parse_time(e["at"]) for e in events]
    assert times == sorted(times) and all(e["at"].endswith("Z") for e in events)
    assert {e["by"] for e in events} == {getpass.getuser()}
    assert events[3]["reason"] == "drift on Mondays" and events[0]["reason"] is None
    assert all(not e["unknown"] and not e["approximate"] for e in events)
    assert result["champion"] == "4" and result["notes"] == []
    # what the new records are: one per promotion on its evaluate run, the model on each rollback run
    record = json.loads(client.get_run(lived["p2"]).data.tags[PROMOTION_TAG])
    assert (record["from"], record["to"], record["at"]) == ("1", "2", events[1]["at"])
    failed = client.get_run(lived["failed"])  # its promotion was undone, and so was the record of it
    assert failed.info.status == "FAILED" and PROMOTION_TAG not in failed.data.tags
    rollback_run = client.get_run(lived["r1"])
    assert rollback_run.data.tags[MODEL_NAME_TAG] == small_config.registry.model_name
    assert rollback_run.data.tags[MODEL_VERSION_TAG] == "2"


def test_at_answers_who_was_champion_then(client, small_config, lived):
    events = history.run(small_config)["events"]
    times = [parse_time(e["at"]) for e in events]

    def at(when):
        return history.run(small_config, at=iso(when))

    before = at(times[0] - timedelta(days=1))
    assert before["champion"] is None and before["since"] is None
    assert before["first_promotion"]["version"] == "1"
    between = at(times[1] + (times[2] - times[1]) / 2)
    assert (between["champion"], between["since"], between["until"]) == ("2", events[1]["at"], events[2]["at"])
    assert between["event"]["event"] == "promoted"
    rolled = at(times[3])  # the moment of the rollback: it has happened
    assert (rolled["champion"], rolled["since"], rolled["until"]) == ("2", events[3]["at"], events[4]["at"])
    assert rolled["event"]["event"] == "rolled back" and rolled["event"]["reason"] == "drift on Mondays"
    after = at(times[4] + timedelta(days=1))
    assert (after["champion"], after["since"], after["until"]) == ("4", events[4]["at"], None)
    # a time without a zone is UTC; another zone is converted
    naive = history.run(small_config, at=events[3]["at"].removesuffix("Z"))
    assert naive["champion"] == "2" and naive["at"] == events[3]["at"]
    zoned = (times[3] + timedelta(hours=2)).replace(tzinfo=None).isoformat() + "+02:00"
    assert history.run(small_config, at=zoned)["at"] == events[3]["at"]


def test_the_command_prints_a_table_json_and_answers_at(client, small_config, lived, capsys):
    config = ["--config", str(DEFAULT_CONFIG)]
    assert cli.main(["history", *config]) == 0
    out = capsys.readouterr().out
    assert "promotions and rollbacks of breast-cancer-xgb (times in UTC" in out
    assert "drift on Mondays" in out and "roc_auc 0.95 (champion 0.92)" in out and lived["p3"] in out
    assert out.rstrip().endswith("champion now: version 4")

    assert cli.main(["history", *config, "--json"]) == 0
    out = capsys.readouterr().out.strip()
    result = json.loads(out)  # nothing but the JSON line
    assert [e["version"] for e in result["events"]] == ["1", "2", "3", "2", "4"]
    assert result["step"] == "history" and result["status"] == "FINISHED"

    rollback_at = result["events"][3]["at"]
    assert cli.main(["history", *config, "--at", rollback_at]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"breast-cancer-xgb at {rollback_at} (UTC): version 2, champion since {rollback_at}")
    assert "rollback from version 3" in line and "drift on Mondays" in line
    assert cli.main(["history", *config, "--at", rollback_at, "--json", "true"]) == 0
    assert json.loads(capsys.readouterr().out)["champion"] == "2"
    assert cli.main(["history", *config, "--at", "2000-01-01"]) == 0
    assert "no champion yet; the first promotion was at" in capsys.readouterr().out


def test_an_unknown_model_fails_in_one_line_and_a_model_never_promoted_says_so(client, small_config, capsys):
    config = ["--config", str(DEFAULT_CONFIG)]
    assert cli.main(["history", *config, "--name", "no-such-model"]) == 3
    captured = capsys.readouterr()
    assert "no registered model 'no-such-model'" in captured.err and "Traceback" not in captured.err
    new_version(client, "never-promoted")
    assert cli.main(["history", *config, "--name", "never-promoted"]) == 0
    assert capsys.readouterr().out.strip() == "never-promoted has never been promoted"
    assert cli.main(["history", *config, "--name", "never-promoted", "--at", "2026-11-20T12:00", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["champion"] is None and answer["at"] == "2026-11-20T12:00:00Z"
    assert cli.main(["history", *config, "--at", "next tuesday"]) == 2


def test_a_model_name_with_a_quote_has_its_history(client, small_config, capsys):
    name = "churn's model"
    config = small_config.model_copy(update={"registry": small_config.registry.model_copy(update={"model_name": name})})
    pre = preprocess_run(client)
    first = promote(config, new_version(client, name), pre, 0.90)
    promote(config, new_version(client, name), pre, 0.93, champion=0.90)
    assert cli.main(["history", "--config", str(DEFAULT_CONFIG), "--name", name, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [e["version"] for e in result["events"]] == ["1", "2"] and result["events"][0]["run_id"] == first
    assert result["champion"] == "2"
    with pytest.raises(ConfigError, match="both ' and"):
        quoted('it\'s "ours"')


def test_a_registry_made_before_the_records_says_what_it_does_not_know(client, small_config, lived):
    """Strip what this change added (the promotion record, the model on rollback runs, and on the first evaluate
    run the model name, as the oldest runs lack it): the same events, with what the old records cannot say."""
    for key in ("p1", "p2", "p3", "p4"):
        client.delete_tag(lived[key], PROMOTION_TAG)
    client.delete_tag(lived["p1"], MODEL_NAME_TAG)
    client.delete_tag(lived["r1"], MODEL_NAME_TAG)
    client.delete_tag(lived["r1"], MODEL_VERSION_TAG)
    name = small_config.registry.model_name
    assert client.get_model_version(name, "1").tags[version_run_tag("evaluate")] == lived["p1"]
    result = history.run(small_config)
    events = result["events"]
    assert [(e["event"], e["version"]) for e in events] == [
        ("promoted", "1"),
        ("promoted", "2"),
        ("promoted", "3"),
        ("rolled back", "2"),  # found through its config/resolved.yaml
        ("promoted", "4"),
    ]  # and the re-judged champion (version 2, after the rollback) is still no event
    assert all(e["approximate"] == ["at"] for e in events if e["event"] == "promoted")
    assert events[3]["approximate"] == [] and events[3]["reason"] == "drift on Mondays"
    # version 2 was judged again later, so its tag no longer tells which champion its promotion replaced
    assert [e["from_version"] for e in events] == [None, None, "2", "3", "2"]
    assert [("from_version" in e["unknown"]) for e in events] == [False, True, False, False, False]
    # runs opened outside `mlflow run` carry no mlflow.user: only the new records said who promoted
    assert [e["by"] for e in events] == [None, None, None, getpass.getuser(), None]
    assert all("by" in e["unknown"] for e in events if e["event"] == "promoted")
    assert "?" in history.render(result)
    assert result["champion"] == "4" and result["notes"] == []


def test_a_rollback_known_only_from_the_model_tag_and_an_alias_moved_by_hand(client, small_config, lived):
    name = small_config.registry.model_name
    last = parse_time(history.run(small_config)["events"][-1]["at"]) + timedelta(minutes=5)
    record = {"from": "4", "to": "3", "by": "carol", "at": iso(last), "reason": "its run was deleted for good"}
    client.set_registered_model_tag(name, LAST_ROLLBACK_TAG, json.dumps(record))
    result = history.run(small_config)
    lost = result["events"][-1]
    assert (lost["event"], lost["version"], lost["from_version"], lost["by"], lost["run_id"]) == (
        "rolled back",
        "3",
        "4",
        "carol",
        None,
    )
    assert any(LAST_ROLLBACK_TAG in note for note in result["notes"])
    assert any("@champion points at version 4" in note for note in result["notes"])  # the alias never moved


def test_rejected_runs_leave_no_event(client, small_config):
    name = small_config.registry.model_name
    pre = preprocess_run(client)
    judge(small_config, new_version(client, name), pre, Verdict(REJECTED, "roc_auc failed"), 0.5)
    assert client.get_model_version(name, "1").tags[VERDICT_TAG] == REJECTED
    assert history.run(small_config)["events"] == []
    assert history.render(history.run(small_config)) == f"{name} has never been promoted"
    client.set_registered_model_alias(name, small_config.registry.champion_alias, "1")  # by hand, in the UI
    (note,) = history.run(small_config)["notes"]
    assert note.startswith("@champion points at version 1, but the recorded history holds no promotion")


@pytest.mark.parametrize("through", ["database", "server"])
def test_a_promotion_racing_another_one_promotes_over_the_winner(client, small_config, monkeypatch, through):
    """Two chains promoting to one model at once (seen on PostgreSQL): both create the champion alias row, the store
    keeps one and refuses the other. The loser reads the champion again and promotes over the winner, whose version
    becomes the previous champion; nothing fails. `server`: the refusal as its text came through a tracking server."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
    from sqlalchemy.exc import IntegrityError

    name = small_config.registry.model_name
    pre = preprocess_run(client)
    theirs, ours = new_version(client, name), new_version(client, name)
    set_alias = MlflowClient.set_registered_model_alias
    refused = []

    def racing(self, model, alias, version):
        if not refused:  # the other chain's promotion lands between our read of the champion and our write
            refused.append(alias)
            set_alias(self, model, alias, theirs)
            if through == "server":
                raise MlflowException('duplicate key value violates unique constraint "registered_model_alias_pk"')
            raise MlflowException("(IntegrityError)") from IntegrityError("INSERT", {}, Exception("duplicate"))
        set_alias(self, model, alias, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", racing)
    run_id = promote(small_config, ours, pre, 0.9)
    assert refused == [small_config.registry.champion_alias]
    assert client.get_model_version_by_alias(name, small_config.registry.champion_alias).version == int(ours)
    assert client.get_model_version_by_alias(name, small_config.registry.previous_champion_alias).version == int(theirs)
    assert client.get_model_version(name, ours).tags[PREVIOUS_CHAMPION_TAG] == theirs
    assert json.loads(client.get_run(run_id).data.tags[PROMOTION_TAG])["from"] == theirs


def test_a_registry_error_that_is_no_race_fails_the_promotion_at_once(client, small_config, monkeypatch):
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    name = small_config.registry.model_name
    pre = preprocess_run(client)
    version = new_version(client, name)
    calls = []

    def refusing(self, model, alias, version):
        calls.append(alias)
        raise MlflowException("permission denied")

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", refusing)
    with pytest.raises(MlflowException, match="permission denied"):
        promote(small_config, version, pre, 0.9)
    assert len(calls) == 1
    assert client.get_registered_model(name).aliases == {}
