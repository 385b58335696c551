"""The upstream lookup and lineage rules of docs/design.md, on hand-made runs in a private store."""

import pytest
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from pipeline.config import load_config
from pipeline.contract import STEP_TAG, upstream_tag
from pipeline.errors import UpstreamError
from pipeline.tracking.lookup import follow_lineage, latest_finished_run, read_json_artifact, resolve_upstream
from tests.helpers import DEFAULT_CONFIG

EXPERIMENT = "0"


def make_run(
    client: MlflowClient, step: str | None, status: str = "FINISHED", end_time: int = 1000, **tags: str
) -> str:
    all_tags = dict(tags)
    if step:
        all_tags[STEP_TAG] = step
    run = client.create_run(EXPERIMENT, start_time=end_time - 10, tags=all_tags)
    if status != "RUNNING":
        client.set_terminated(run.info.run_id, status=status, end_time=end_time)
    return run.info.run_id


def test_newest_finished_run_wins_and_failed_or_running_are_skipped(client):
    make_run(client, "tune", end_time=1000)
    newest_finished = make_run(client, "tune", end_time=2000)
    make_run(client, "tune", status="FAILED", end_time=3000)
    make_run(client, "tune", status="KILLED", end_time=3500)
    make_run(client, "tune", status="RUNNING", end_time=4000)
    make_run(client, "preprocess", end_time=5000)
    assert latest_finished_run(client, EXPERIMENT, "tune").info.run_id == newest_finished


def test_nested_trial_runs_are_never_picked(client):
    import datetime

    import optuna

    from pipeline.tuning.trial_runs import TrialRunLogger

    parent = make_run(client, "tune", end_time=1000)
    # A trial run written by the real callback, finishing long after its parent: still not a tune run.
    later = datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC)
    trial = optuna.trial.create_trial(params={}, distributions={}, value=0.1)
    trial.datetime_start, trial.datetime_complete = later, later
    study = optuna.create_study()
    TrialRunLogger(client, EXPERIMENT, parent, "logloss")(study, trial)
    (child,) = client.search_runs([EXPERIMENT], f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent}'")
    assert child.info.status == "FINISHED" and child.info.end_time > client.get_run(parent).info.end_time
    assert resolve_upstream(client, EXPERIMENT, "train").info.run_id == parent


def test_no_upstream_names_step_experiment_and_command(client):
    with pytest.raises(UpstreamError) as error:
        resolve_upstream(client, EXPERIMENT, "train")
    message = str(error.value)
    assert "no finished 'tune' run" in message
    assert "experiment 'Default'" in message
    assert "mlflow run . -e tune --env-manager local" in message


def test_pinned_run_overrides_the_search(client):
    older = make_run(client, "tune", end_time=1000)
    make_run(client, "tune", end_time=2000)
    assert resolve_upstream(client, EXPERIMENT, "train", pinned_run_id=older).info.run_id == older


@pytest.mark.parametrize(
    ("step", "status", "expected"),
    [
        ("preprocess", "FINISHED", "is a 'preprocess' run, not a 'tune' run"),
        ("tune", "FAILED", "is FAILED, not FINISHED"),
        ("tune", "RUNNING", "is RUNNING, not FINISHED"),
    ],
)
def test_pinned_run_of_wrong_step_or_unfinished_is_refused(client, step, status, expected):
    pinned = make_run(client, step, status=status)
    with pytest.raises(UpstreamError, match=expected):
        resolve_upstream(client, EXPERIMENT, "train", pinned_run_id=pinned)


def test_pinned_run_that_does_not_exist(client):
    with pytest.raises(UpstreamError, match="run '0123abc' does not exist"):
        resolve_upstream(client, EXPERIMENT, "train", pinned_run_id="0123abc")


def test_train_follows_the_preprocess_run_that_tune_used(client):
    used = make_run(client, "preprocess", end_time=1000)
    tune = make_run(client, "tune", end_time=2000, **{upstream_tag("preprocess"): used})
    make_run(client, "preprocess", end_time=3000)  # newer, but not in tune's lineage
    tune_run = resolve_upstream(client, EXPERIMENT, "train")
    assert tune_run.info.run_id == tune
    assert follow_lineage(client, tune_run, "preprocess").info.run_id == used


def test_lineage_tag_missing_is_an_error(client):
    tune = make_run(client, "tune")
    with pytest.raises(UpstreamError, match="has no 'pipeline.upstream.preprocess' tag"):
        follow_lineage(client, client.get_run(tune), "preprocess")


def test_a_deleted_run_is_never_used(client):
    deleted = make_run(client, "tune", end_time=2000)
    client.delete_run(deleted)
    with pytest.raises(UpstreamError, match=f"run {deleted} is deleted"):
        resolve_upstream(client, EXPERIMENT, "train", pinned_run_id=deleted)
    with pytest.raises(UpstreamError, match="no finished 'tune' run"):
        resolve_upstream(client, EXPERIMENT, "train")


def test_an_upstream_runs_artifacts_are_read_and_a_missing_one_is_named(client):
    run_id = make_run(client, "tune")
    client.log_dict(run_id, {"max_depth": 4}, "best_params.json")
    run = client.get_run(run_id)
    assert read_json_artifact(run, "best_params.json") == {"max_depth": 4}
    with pytest.raises(UpstreamError, match=f"^tune run {run_id} has no artifact 'data/schema.json'$"):
        read_json_artifact(run, "data/schema.json")


def test_a_code_change_invalidates_only_the_steps_that_run_that_code(tmp_path):
    import shutil

    from pipeline.contract import STEPS
    from pipeline.tracking import cache

    package = tmp_path / "pipeline"
    shutil.copytree(cache.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    before = {step: cache.code_digest(step, package) for step in STEPS}
    expected = {
        "steps/train.py": {"train"},
        "tuning/study.py": {"tune"},
        "tuning/ensemble.py": {"tune"},  # the selection runs in tune; train reads its result, not its code
        "steps/chain.py": set(),
        "data/sql_source.py": {"preprocess", "tune", "train", "evaluate", "predict", "monitor", "rollback"},
        "engines/local/train.py": {"train"},
        "modeling/bagging.py": {"train"},  # train's bag, not tune's code (tune only logs the param it reads)
        "engines/dask/train.py": set(),  # the steps' fingerprints below are on engine local
        "contract.py": set(STEPS),
    }
    for module, steps in expected.items():
        cache.code_digest.cache_clear()
        (package / module).write_text((package / module).read_text() + "\n# changed\n")
        after = {step: cache.code_digest(step, package) for step in STEPS}
        assert {step for step in STEPS if after[step] != before[step]} == steps, module
        before = after
    cache.code_digest.cache_clear()
    (package / "data" / "transform.py").write_text((package / "data" / "transform.py").read_text() + "\n# changed\n")
    changed = {step for step in STEPS if cache.code_digest(step, package) != before[step]}
    cache.code_digest.cache_clear()
    assert {"preprocess", "train", "evaluate"} <= changed  # the raw-row code of preprocess and of the model


def test_a_steps_fingerprint_covers_every_module_it_loads():
    """The import closure read from the source holds every module Python really loads for the step."""
    import json
    import subprocess
    import sys

    from pipeline.contract import STEPS
    from pipeline.engines import ENGINES
    from pipeline.tracking import cache

    # One process imports the libraries the steps use (none of this package), then forks a child per step and
    # engine that imports the step's module and its engine module (which engine_for loads by name) and prints what
    # of the package got loaded: each child starts from no module of the package, without paying for the libraries.
    show = """
import importlib, json, os, sys
for library in ("mlflow", "pandas", "sklearn.metrics", "xgboost", "optuna", "dask.dataframe", "distributed"):
    importlib.import_module(library)
found = {}
for group in json.loads(sys.argv[1]):
    read, write = os.pipe()
    if os.fork() == 0:
        os.close(read)
        [importlib.import_module(name) for name in group]
        os.write(write, " ".join(m for m in sys.modules if m.startswith("pipeline")).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        found[" ".join(group)] = answer.read().split()
    os.wait()
print(json.dumps(found))
"""
    modules = {(step, engine): cache.step_modules(step, engine) for step in STEPS for engine in ENGINES}
    assert modules["train", "dask"] == ("pipeline.steps.train", "pipeline.engines.dask.train")
    groups = sorted({names for names in modules.values()})
    answer = subprocess.run(
        [sys.executable, "-c", show, json.dumps(groups)], capture_output=True, text=True, check=True
    )
    loaded_by = json.loads(answer.stdout.splitlines()[-1])
    assert len(loaded_by) == len(groups) == 13  # rollback has no engine module: the same group on both engines
    for names in groups:
        loaded = set(loaded_by[" ".join(names)])
        assert set(names) <= loaded
        closure = {name for module in names for name in cache.import_closure(module)}
        assert loaded <= closure, names


def test_train_bag_changes_trains_fingerprint_but_not_tunes():
    """tune's fingerprint covers the train section (fixed_params and class_weight shape its trials), less train.bag,
    which only train reads: trying another bag size reuses the search."""
    from pipeline.tracking import cache

    one, ten = (load_config(DEFAULT_CONFIG, {"train.bag": bag}) for bag in (1, 10))
    fixed = load_config(DEFAULT_CONFIG, {"train.fixed_params.max_bin": 64})
    assert cache.step_fingerprint("tune", one, {}) == cache.step_fingerprint("tune", ten, {})
    assert cache.step_fingerprint("train", one, {}) != cache.step_fingerprint("train", ten, {})
    assert cache.step_fingerprint("tune", fixed, {}) != cache.step_fingerprint("tune", one, {})
    assert one.train.bag == 1  # the fingerprint's copy of the config was cut, not the config


def test_editing_the_feature_hook_changes_only_preprocess_fingerprint(tmp_path):
    from pipeline.tracking import cache

    hook = tmp_path / "hook.py"
    hook.write_text("def derive_features(frame):\n    return frame\n")
    config = load_config(DEFAULT_CONFIG, {"features.hook": str(hook)})
    before = {step: cache.step_fingerprint(step, config, {}) for step in ("preprocess", "tune", "train")}
    hook.write_text("def derive_features(frame):\n    return frame.assign(one=1)\n")
    after = {step: cache.step_fingerprint(step, config, {}) for step in before}
    assert {step for step in before if before[step] != after[step]} == {"preprocess"}
