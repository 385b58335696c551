"""The whole chain in-process on a private store: the run tree, tags, artifacts, registry and aliases.

The tests that only read what one chain left share it (`chain`, made once in the module's store); the tests that add
runs or move aliases start from a chain of their own (`own_chain`, on the test's own store)."""

import json

import mlflow
import pytest
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NOTE

from pipeline import cli
from pipeline.contract import (
    BEST_PARAMS_ARTIFACT,
    CHAIN_STEPS,
    CHAIN_TAG,
    ENSEMBLE_ARTIFACT,
    FINGERPRINT_TAG,
    MODEL_VERSION_TAG,
    STEP_TAG,
    VERDICT_TAG,
    upstream_tag,
)
from pipeline.modeling.promotion import PROMOTED, REJECTED
from pipeline.steps import evaluate
from pipeline.steps.chain import run_chain
from pipeline.tracking.lookup import read_json_artifact
from tests.helpers import DEFAULT_CONFIG, small_config_with
from tests.hooks.breast_cancer_ratio import RATIO_FEATURE

pytestmark = pytest.mark.heavy


def artifact_paths(client, run_id, path=None):
    found = []
    for item in client.list_artifacts(run_id, path):
        found += artifact_paths(client, run_id, item.path) if item.is_dir else [item.path]
    return found


def step_runs(client, step):
    return client.search_runs(["0"], f"tags.`{STEP_TAG}` = '{step}'")


@pytest.fixture(scope="module")
def client(module_client):
    """The module's store: the read-only tests below look at the one chain made there."""
    return module_client


@pytest.fixture(scope="module")
def chain(module_client):
    return run_chain(small_config_with({}))


@pytest.fixture
def own_client(tracking_uri):
    return MlflowClient(tracking_uri)


@pytest.fixture
def own_chain(own_client, small_config):
    """A champion on the test's own store, for a test that adds runs or moves aliases."""
    return run_chain(small_config)


def test_one_run_per_step_nested_under_the_chain_run_sharing_the_chain_id(client, chain):
    for step in ("preprocess", "tune", "train", "evaluate"):
        (run,) = step_runs(client, step)
        assert run.info.status == "FINISHED"
        assert run.data.tags[CHAIN_TAG] == chain.chain_id
        assert run.data.tags[MLFLOW_PARENT_RUN_ID] == chain.run_id  # one row per chain in the UI's run list
        assert run.info.run_name.startswith(f"{step}-")
        assert len(run.data.tags[FINGERPRINT_TAG]) == 16
        assert f"logs/{step}.log" in artifact_paths(client, run.info.run_id)
        assert "config/resolved.yaml" in artifact_paths(client, run.info.run_id)
    (chain_run,) = step_runs(client, "main")
    assert chain_run.info.run_id == chain.chain_id and chain_run.info.status == "FINISHED"
    assert MLFLOW_PARENT_RUN_ID not in chain_run.data.tags and chain_run.info.run_name.startswith("main-")
    assert "chain.json" in artifact_paths(client, chain.chain_id)


def test_the_runs_hold_what_the_contract_declares(client, chain):
    """Every step of pipeline.contract.CHAIN: exactly its recorded upstream tags, its run tags, its artifacts, and
    the model-version tags it sets; so chain, cache, lineage view and docs, which read the contract, see the truth."""
    from pipeline.contract import CHAIN, MODEL_ARTIFACT, UPSTREAM_TAG_PREFIX

    version = client.get_model_version(chain.step("train").model_name, chain.step("train").model_version)
    for step in CHAIN:
        run = client.get_run(chain.step(step.name).run_id)
        upstream = {
            key.removeprefix(UPSTREAM_TAG_PREFIX) for key in run.data.tags if key.startswith(UPSTREAM_TAG_PREFIX)
        }
        assert upstream == set(step.records), step.name
        assert set(step.run_tags) <= set(run.data.tags), step.name
        logged = artifact_paths(client, run.info.run_id)
        for artifact in set(step.artifacts) - {MODEL_ARTIFACT}:
            assert artifact in logged, (step.name, artifact)
        first_version_tags = set(step.version_tags) - {"pipeline.previous_champion"}  # set from the 2nd promotion
        assert first_version_tags <= set(version.tags), step.name
    model_id = chain.step("train").outputs["model_uri"].removeprefix("models:/")
    assert client.get_logged_model(model_id).name == MODEL_ARTIFACT


def test_a_step_run_alone_gets_the_fingerprint_main_gave_it(client, chain):
    """main computes a step's fingerprint from the contract before the step runs; the step run alone computes it
    from the upstream runs it really read: the two must agree, or `main` would never reuse a step run alone."""
    from pipeline.tracking.cache import step_fingerprint
    from pipeline.tracking.reuse import input_digest

    config = small_config_with({})
    for result in chain.steps:  # result.upstream: the runs the step itself recorded as read
        alone = step_fingerprint(result.step, config, result.upstream, input_digest(result.step, config, {}))
        assert alone == client.get_run(result.run_id).data.tags[FINGERPRINT_TAG], result.step


def test_each_step_is_pinned_to_the_run_made_just_before_it(client, chain):
    ids = {result.step: result.run_id for result in chain.steps}
    tags = {step: client.get_run(run_id).data.tags for step, run_id in ids.items()}
    assert tags["tune"][upstream_tag("preprocess")] == ids["preprocess"]
    assert tags["train"][upstream_tag("tune")] == ids["tune"]
    assert tags["train"][upstream_tag("preprocess")] == ids["preprocess"]
    assert tags["evaluate"][upstream_tag("train")] == ids["train"]
    assert tags["evaluate"][upstream_tag("preprocess")] == ids["preprocess"]


def test_preprocess_logs_splits_as_artifacts_and_dataset_inputs(client, chain):
    run = client.get_run(chain.step("preprocess").run_id)
    assert {"data/train.parquet", "data/test.parquet"} <= set(artifact_paths(client, run.info.run_id))
    inputs = {dataset.dataset.name: dataset.tags[0].value for dataset in run.inputs.dataset_inputs}
    assert inputs == {"breast_cancer-train": "training", "breast_cancer-test": "testing"}
    assert run.data.metrics["n_rows"] == 569
    assert run.data.metrics["n_train"] + run.data.metrics["n_test"] == 569
    assert run.data.metrics["n_features"] == 31  # 30 columns + the derived ratio


def test_tune_has_one_nested_run_per_trial_and_best_params(client, chain, small_config):
    tune_id = chain.step("tune").run_id
    children = client.search_runs(["0"], f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{tune_id}'")
    assert len(children) == small_config.tune.n_trials
    assert sorted(int(child.data.tags["optuna.trial_number"]) for child in children) == [0, 1, 2]
    assert all("valid_logloss" in child.data.metrics and child.data.params for child in children)
    tune_run = client.get_run(tune_id)
    best_child = min(children, key=lambda child: child.data.metrics["valid_logloss"])
    assert tune_run.data.metrics["best_valid_logloss"] == best_child.data.metrics["valid_logloss"]
    assert tune_run.data.metrics["n_trials"] == 3
    assert tune_run.data.params["max_depth"] == best_child.data.params["max_depth"]
    assert int(tune_run.data.params["n_estimators"]) == int(best_child.data.metrics["best_iteration"]) + 1
    assert {"best_params.json", "plots/optimization_history.png", "plots/param_importances.png"} <= set(
        artifact_paths(client, tune_id)
    )


def test_train_registers_a_challenger_and_evaluate_promotes_it(client, chain, small_config):
    name = small_config.registry.model_name
    (version,) = client.search_model_versions(f"name = '{name}'")
    assert version.run_id == chain.step("train").run_id
    assert client.get_run(version.run_id).data.tags[MODEL_VERSION_TAG] == str(version.version)
    aliases = client.get_registered_model(name).aliases
    assert {alias: str(v) for alias, v in aliases.items()} == {"challenger": "1", "champion": "1"}
    evaluate_run = client.get_run(chain.step("evaluate").run_id)
    assert evaluate_run.data.tags[VERDICT_TAG] == PROMOTED
    assert evaluate_run.data.metrics["roc_auc"] > 0.95
    registered = client.get_model_version(name, version.version)
    assert registered.tags[VERDICT_TAG] == PROMOTED
    ids = {result.step: result.run_id for result in chain.steps}
    assert {key: registered.tags[f"pipeline.{key}_run"] for key in ids} == ids  # lineage from the model page
    assert ids["train"] in registered.description and ids["preprocess"] in registered.description
    info = mlflow.models.get_model_info(f"models:/{name}@champion")
    # The signature describes the raw columns a client sends: the hook's derived column is computed inside.
    inputs = info.signature.inputs.input_names()
    assert "mean radius" in inputs and RATIO_FEATURE not in inputs
    assert info.saved_input_example_info is not None


def booster_rounds(model_uri: str) -> int:
    return mlflow.pyfunc.load_model(model_uri).unwrap_python_model().model.get_booster().num_boosted_rounds()


def test_a_search_without_a_time_budget_keeps_one_model(client, chain, small_config):
    tune_run, train_run = (client.get_run(chain.step(step).run_id) for step in ("tune", "train"))
    assert "tune.timeout_s" not in tune_run.data.params  # n_trials alone: bag auto fits one model
    assert train_run.data.params["train.bag"] == "1"
    rounds = int(train_run.data.params["n_estimators"])
    assert booster_rounds(f"models:/{small_config.registry.model_name}@champion") == rounds


def test_after_a_search_against_the_clock_the_model_averages_an_ensemble_of_trials(own_client):
    # bag and ensemble auto, 455 train rows; a learnt threshold: its out-of-fold models are the same ensemble
    result = run_chain(small_config_with({"tune.timeout_s": 5, "decision.threshold": {"optimize": "f1"}}))
    tune_run, train_run = (own_client.get_run(result.step(step).run_id) for step in ("tune", "train"))
    assert float(tune_run.data.params["tune.timeout_s"]) == 5
    members = read_json_artifact(tune_run, ENSEMBLE_ARTIFACT)["members"]
    assert members[0]["params"] == read_json_artifact(tune_run, BEST_PARAMS_ARTIFACT)  # the best trial first
    assert sum(member["weight"] for member in members) == pytest.approx(1.0)
    assert tune_run.data.metrics["ensemble_trials"] == len(members) == int(train_run.data.params["train.ensemble"])
    # train.bag auto's fits shared out by weight (twenty for an ensemble, ten for one trial), at least one each; the
    # merged model holds every fit's trees
    fits = [max(1, round((20 if len(members) > 1 else 10) * member["weight"])) for member in members]
    assert int(train_run.data.params["train.bag"]) == sum(fits)
    rounds = sum(count * member["params"]["n_estimators"] for count, member in zip(fits, members, strict=True))
    assert booster_rounds(result.step("train").outputs["model_uri"]) == rounds
    note = train_run.data.tags[MLFLOW_RUN_NOTE]
    if len(members) > 1:
        assert f"weighted average of {sum(fits)} fits of {len(members)} trials' params" in note
        assert tune_run.data.metrics["ensemble_valid_logloss"] <= tune_run.data.metrics["best_valid_logloss"] + 0.01
    else:
        assert "the average of 10 fits of the tuned params (train.bag)" in note
    assert train_run.data.metrics["test_roc_auc"] > 0.95
    assert train_run.data.params["decision.objective"] == "f1" and "held_out_f1" in train_run.data.metrics


def test_an_ensemble_after_a_count_of_trials_merges_one_fit_per_chosen_trial(own_client):
    # seeded TPE, a count of trials: the same trials every run, and on this table selection picks more than one
    result = run_chain(small_config_with({"tune.n_trials": 8, "tune.ensemble": 10}))
    tune_run, train_run = (own_client.get_run(result.step(step).run_id) for step in ("tune", "train"))
    members = read_json_artifact(tune_run, ENSEMBLE_ARTIFACT)["members"]
    assert len(members) > 1 and members[0]["params"] == read_json_artifact(tune_run, BEST_PARAMS_ARTIFACT)
    assert sum(member["weight"] for member in members) == pytest.approx(1.0)
    assert tune_run.data.metrics["ensemble_valid_logloss"] <= tune_run.data.metrics["best_valid_logloss"]
    # bag auto after a search without a time budget: one fit per trial, each weighing the trial's weight
    assert train_run.data.params["train.bag"] == train_run.data.params["train.ensemble"] == str(len(members))
    rounds = sum(member["params"]["n_estimators"] for member in members)
    assert booster_rounds(result.step("train").outputs["model_uri"]) == rounds
    assert (
        f"weighted average of {len(members)} fits of {len(members)} trials' params"
        in train_run.data.tags[MLFLOW_RUN_NOTE]
    )


def test_with_ensemble_none_the_model_is_a_bag_of_the_best_trial(own_client):
    result = run_chain(small_config_with({"tune.timeout_s": 3, "tune.ensemble": "none"}))
    tune_run, train_run = (own_client.get_run(result.step(step).run_id) for step in ("tune", "train"))
    assert read_json_artifact(tune_run, ENSEMBLE_ARTIFACT)["members"][0]["weight"] == 1.0
    assert tune_run.data.metrics["ensemble_trials"] == 1 and train_run.data.params["train.ensemble"] == "1"
    rounds = int(train_run.data.params["n_estimators"])
    assert train_run.data.params["train.bag"] == "10"
    assert booster_rounds(result.step("train").outputs["model_uri"]) == 10 * rounds


def test_a_second_equal_chain_ties_with_the_champion_and_is_promoted(own_client, own_chain, small_config):
    second = run_chain(small_config, force=["all"])  # same seeds: the same model, a tie is not a defeat
    name = small_config.registry.model_name
    evaluate_run = own_client.get_run(second.step("evaluate").run_id)
    assert evaluate_run.data.metrics["champion_roc_auc"] == evaluate_run.data.metrics["roc_auc"]
    assert evaluate_run.data.tags[VERDICT_TAG] == PROMOTED
    assert "and the champion" in evaluate_run.data.tags["pipeline.verdict_reason"]
    aliases = own_client.get_registered_model(name).aliases
    assert str(aliases["champion"]) == "2" and str(aliases["challenger"]) == "2"


def test_a_weaker_challenger_loses_to_the_champion(own_client, own_chain, small_config):
    weak = small_config_with({"tune.max_boosting_rounds": 1, "evaluate.binary.thresholds": {}})
    second = run_chain(weak)
    evaluate_run = own_client.get_run(second.step("evaluate").run_id)
    assert evaluate_run.info.status == "FINISHED"
    assert evaluate_run.data.metrics["roc_auc"] < evaluate_run.data.metrics["champion_roc_auc"]
    assert evaluate_run.data.tags[VERDICT_TAG] == REJECTED
    assert "roc_auc minimum relative change check failed" in evaluate_run.data.tags["pipeline.verdict_reason"]
    aliases = own_client.get_registered_model(small_config.registry.model_name).aliases
    assert str(aliases["champion"]) == "1" and str(aliases["challenger"]) == "2"
    assert own_client.get_model_version(small_config.registry.model_name, "2").tags[VERDICT_TAG] == REJECTED


def test_reevaluating_the_champion_says_so(own_client, own_chain, small_config):
    again = evaluate.run(small_config, upstream_run_id=own_chain.step("train").run_id)
    assert again.verdict == PROMOTED and "already is the champion" in again.verdict_reason


def test_a_rejected_challenger_is_a_finished_run_and_keeps_the_champion(own_client, own_chain, small_config):
    strict = small_config_with({"evaluate.binary.thresholds.roc_auc.threshold": 1.01})
    second = run_chain(strict)
    assert second.step("evaluate").verdict == REJECTED
    evaluate_run = own_client.get_run(second.step("evaluate").run_id)
    assert evaluate_run.info.status == "FINISHED"
    assert "roc_auc" in evaluate_run.data.tags["pipeline.verdict_reason"]
    assert str(own_client.get_registered_model(small_config.registry.model_name).aliases["champion"]) == "1"


def test_step_alone_after_the_chain_follows_the_lineage(own_client, own_chain, tracking_uri):
    from tests.helpers import DEFAULT_CONFIG

    # A newer preprocess run with another split: train must still use the one the newest tune run used.
    assert cli.main(["preprocess", "--config", str(DEFAULT_CONFIG), "--test-size", "0.3"]) == 0
    assert cli.main(["train", "--config", str(DEFAULT_CONFIG)]) == 0
    newest_train = own_client.search_runs(
        ["0"], f"tags.`{STEP_TAG}` = 'train'", order_by=["attributes.start_time DESC"], max_results=1
    )[0]
    assert newest_train.data.tags[upstream_tag("tune")] == own_chain.step("tune").run_id
    assert newest_train.data.tags[upstream_tag("preprocess")] == own_chain.step("preprocess").run_id


def test_the_lineage_of_the_champion_is_printed_and_carded(client, chain, capsys):
    from tests.helpers import DEFAULT_CONFIG

    ids = {result.step: result.run_id for result in chain.steps}
    assert cli.main(["lineage", "--config", str(DEFAULT_CONFIG), "--json"]) == 0
    printed = capsys.readouterr().out.splitlines()
    result = json.loads(printed[-1])
    assert result["runs"] == ids and result["title"] == "lineage of breast-cancer-xgb version 1"
    text = "\n".join(printed[:-1])
    assert all(run_id in text for run_id in ids.values()) and "verdict=promoted" in text and "test_roc_auc=" in text
    assert cli.main(["lineage", "--config", str(DEFAULT_CONFIG), "--run-id", ids["train"], "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out.splitlines()[-1])["runs"]) == {"preprocess", "tune", "train"}
    card = mlflow.artifacts.load_text(f"runs:/{ids['evaluate']}/lineage.md")
    assert all(f"`{run_id}`" in card for run_id in ids.values()) and "Verdict: passed" in card


def test_people_read_what_each_run_did_in_its_description(client, chain, small_config):
    notes = {result.step: client.get_run(result.run_id).data.tags[MLFLOW_RUN_NOTE] for result in chain.steps}
    preprocess, tune, train, evaluate_ = (client.get_run(chain.step(s).run_id) for s in CHAIN_STEPS)
    assert (
        f"{preprocess.data.metrics['n_rows']:,.0f} rows" in notes["preprocess"] and "binary task" in notes["preprocess"]
    )
    assert f"finished {tune.data.metrics['n_finished']:,.0f}" in notes["tune"] and "| max_depth |" in notes["tune"]
    assert f"test_roc_auc {train.data.metrics['test_roc_auc']:.4f}" in notes["train"]
    assert f"/runs/{preprocess.info.run_id})" in notes["train"] and f"/runs/{tune.info.run_id})" in notes["train"]
    assert evaluate_.data.tags[VERDICT_TAG] in notes["evaluate"]
    card = client.get_run(chain.run_id).data.tags[MLFLOW_RUN_NOTE]
    assert all(f"`{result.run_id}`" in card for result in chain.steps)
    name = small_config.registry.model_name
    description = client.get_model_version(name, chain.step("train").model_version).description
    assert description.startswith(f"binary XGBoost model, test_roc_auc {train.data.metrics['test_roc_auc']:.4f}")
    verdict = f"evaluate: **{PROMOTED}**. {evaluate_.data.tags['pipeline.verdict_reason']}"
    assert description.endswith(f"{verdict}. Model card: `runs:/{evaluate_.info.run_id}/model_card.md`.")
    assert f"Model card: `runs:/{train.info.run_id}/model_card.md`." in description  # train's, before the verdict
    evaluated_card = mlflow.artifacts.load_text(f"runs:/{evaluate_.info.run_id}/model_card.md")
    assert evaluated_card.startswith(f"# Model card: {name} version {chain.step('train').model_version}")
    evaluation = evaluated_card.split("## Evaluation")[1]
    assert "95% bootstrap interval" in evaluated_card and f"**{PROMOTED}**" in evaluation
    assert f"- Gate `roc_auc` >= 0.95: {evaluate_.data.metrics['roc_auc']:.4f}, passed." in evaluation
    assert f"(#/runs/{train.info.run_id})" in evaluated_card  # the lineage links to each run
    # The thread counts reproduce sets again (XGBoost's CPU results depend on them).
    assert int(train.data.params["train.threads"]) >= 1 and int(tune.data.params["tune.threads"]) >= 1


def test_a_weaker_challengers_description_shows_the_comparison(own_client, own_chain, small_config):
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

    second = run_chain(small_config_with({"tune.max_boosting_rounds": 1, "evaluate.binary.thresholds": {}}))
    note = own_client.get_run(second.step("evaluate").run_id).data.tags[MLFLOW_RUN_NOTE]
    assert f"**{REJECTED}**" in note and "| metric | challenger | champion |" in note and "| roc_auc |" in note
    card = mlflow.artifacts.load_text(f"runs:/{second.step('evaluate').run_id}/model_card.md")
    evaluation = card.split("## Evaluation")[1]  # the version's card says so too
    assert f"**{REJECTED}**" in evaluation and "| metric | challenger | champion |" in evaluation


def test_every_step_reused_gives_the_result_it_gave_when_computed(own_client, own_chain, small_config, tmp_path):
    """What `main` hands an orchestrator for a reused step (read back from its run) is what the step returned when it
    ran: the same outputs, upstream runs and model version, for every step of the contract."""
    from pipeline.contract import STEPS
    from pipeline.data.sources import load_source
    from pipeline.steps import monitor, predict, rollback
    from pipeline.tracking.reuse import reused_result

    rows = tmp_path / "rows.csv"
    load_source(small_config.data).drop(columns=[small_config.data.target]).head(20).to_csv(rows, index=False)
    second = run_chain(small_config, force=["all"])  # promoted too: rollback then has a version to go back to
    computed = [
        *own_chain.steps,
        *second.steps,
        predict.run(small_config, input_path=str(rows), output_path=str(tmp_path / "scored.csv")),
        monitor.run(small_config, input_path=str(rows)),
        rollback.run(small_config, reason="checking results"),
    ]
    assert {result.step for result in computed} == set(STEPS)
    for result in computed:
        again = reused_result(own_client, own_client.get_run(result.run_id))
        assert set(result.outputs) == {output.name for output in STEPS[result.step].outputs}, result.step
        assert again.outputs == result.outputs, result.step
        assert (again.upstream, again.model_name, again.model_version) == (
            result.upstream,
            result.model_name,
            result.model_version,
        ), result.step


def test_lookups_find_the_newest_step_run_in_a_store_of_nested_and_flat_chains(own_client, small_config):
    """A chain from `main` (steps nested under its run) and one from an orchestrator (each step its own process:
    flat runs tagged with its chain id): each step's lookup takes the newest finished run of the step, either kind."""
    nested = run_chain(small_config)
    flat = {}
    for step in ("preprocess", "tune", "train"):
        argv = [step, "--config", str(DEFAULT_CONFIG), "--chain-id", "flat-chain", "--json"]
        assert cli.main(argv) == 0
        (flat[step],) = own_client.search_runs(
            [nested.experiment_id], f"tags.`{STEP_TAG}` = '{step}' and tags.`{CHAIN_TAG}` = 'flat-chain'"
        )
        assert MLFLOW_PARENT_RUN_ID not in flat[step].data.tags
    # Each flat step read the newest finished run of its upstream step: the flat one, not the nested chain's.
    assert flat["tune"].data.tags[upstream_tag("preprocess")] == flat["preprocess"].info.run_id
    assert flat["train"].data.tags[upstream_tag("tune")] == flat["tune"].info.run_id
    evaluated = evaluate.run(small_config)  # newest finished train: the flat chain's
    assert evaluated.upstream["train"] == flat["train"].info.run_id
    assert own_client.get_run(evaluated.run_id).data.tags[upstream_tag("preprocess")] == flat["preprocess"].info.run_id
