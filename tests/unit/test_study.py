"""Study naming, storage handling and pruner choice."""

import optuna
import pytest

from pipeline.config import load_config
from pipeline.errors import ConfigError, TrackingError
from pipeline.tuning.study import (
    describe_storage,
    enqueue_start_points,
    make_pruner,
    open_storage,
    search_digest,
    study_name,
    threads_per_trial,
)
from tests.helpers import TEST_CONFIG


def with_tune(config, **changes):
    return config.model_copy(update={"tune": config.tune.model_copy(update=changes)})


def test_study_name_is_stable_across_run_settings(small_config):
    name = study_name(small_config, "exp", "data-1")
    assert name.startswith("exp-tune-")
    assert (
        study_name(
            with_tune(
                small_config,
                n_trials=99,
                n_jobs=2,
                timeout_s=5.0,
                storage="sqlite:///x.db",
                start_points=[{"max_depth": 3}],
            ),
            "exp",
            "data-1",
        )
        == name
    )


def test_study_name_changes_with_search_or_data(small_config):
    name = study_name(small_config, "exp", "data-1")
    assert study_name(small_config, "exp", "data-2") != name
    assert study_name(with_tune(small_config, max_boosting_rounds=61), "exp", "data-1") != name
    assert study_name(small_config, "other-exp", "data-1") != name
    assert study_name(with_tune(small_config, study_name="mine"), "exp", "data-1") == "mine"


def test_storage_passwords_are_masked():
    shown = describe_storage("postgresql://alice:s3cret@db.example:5432/optuna")
    assert "s3cret" not in shown and "alice" in shown and "db.example" in shown
    assert describe_storage(None) == "in-memory"
    assert describe_storage("journal:/tmp/study.log") == "journal:/tmp/study.log"


def test_bad_storage_url_is_a_config_error(small_config):
    with pytest.raises(
        ConfigError, match="tune.storage 'nosuchdb://user:\\*\\*\\*@host/db' is not a usable storage URL"
    ):
        open_storage(with_tune(small_config, storage="nosuchdb://user:pw@host/db").tune)


def test_unreachable_storage_is_a_tracking_error(small_config):
    tune = with_tune(small_config, storage="postgresql://postgres:pw@127.0.0.1:1/optuna").tune
    with pytest.raises(TrackingError, match="cannot reach the Optuna storage 'postgresql://postgres:\\*\\*\\*@"):
        open_storage(tune)


def test_a_process_that_loses_the_race_to_create_the_schema_retries(small_config, tmp_path, monkeypatch):
    """Workers (or a process loading the study) opening an empty SQLite storage together: one checks that the tables
    are missing, another creates them, the first one's CREATE TABLE fails with "already exists"."""
    from optuna.storages._rdb import models

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.storages.RDBStorage(url)  # the other process created the schema...
    create_all, calls = models.BaseModel.metadata.create_all, []

    def after_the_check(bind, **kwargs):  # ...after this one found it missing
        calls.append(bind)
        return create_all(bind, checkfirst=len(calls) > 1)

    monkeypatch.setattr(models.BaseModel.metadata, "create_all", after_the_check)
    storage = open_storage(with_tune(small_config, storage=url, heartbeat_s=1).tune)
    assert len(calls) == 2 and storage.get_all_studies() == []


def test_a_storage_that_cannot_be_opened_is_not_retried(small_config, tmp_path, monkeypatch):
    monkeypatch.setattr("pipeline.tuning.study.time.sleep", lambda seconds: pytest.fail(f"retried ({seconds} s)"))
    tune = with_tune(small_config, storage=f"sqlite:///{tmp_path / 'no' / 'such' / 'folder.db'}").tune
    with pytest.raises(TrackingError, match="cannot reach the Optuna storage .*unable to open database file"):
        open_storage(tune)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("median", optuna.pruners.MedianPruner),
        ("successive_halving", optuna.pruners.SuccessiveHalvingPruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
        ("none", optuna.pruners.NopPruner),
    ],
)
def test_pruner_follows_the_config(small_config, kind, expected):
    pruner = small_config.tune.pruner.model_copy(update={"type": kind})
    assert isinstance(make_pruner(with_tune(small_config, pruner=pruner).tune), expected)


def test_threads_are_shared_between_parallel_trials(small_config, monkeypatch):
    monkeypatch.setattr("pipeline.tuning.study.usable_cores", lambda: 8)
    big, small = 1_000_000, 500
    assert threads_per_trial(with_tune(small_config, n_jobs=1).tune, big) == 8
    assert threads_per_trial(with_tune(small_config, n_jobs=3).tune, big) == 2
    assert threads_per_trial(with_tune(small_config, n_jobs=16).tune, big) == 1
    assert threads_per_trial(with_tune(small_config, n_jobs=1).tune, small) == 7  # a core for the trial-run writer
    assert threads_per_trial(with_tune(small_config, n_jobs=16).tune, small) == 1
    assert threads_per_trial(with_tune(small_config, n_jobs=2, threads_per_trial=1).tune, big) == 1


def test_a_stored_study_refuses_another_search(small_config, tmp_path):
    from pipeline.tuning.study import open_study

    stored = with_tune(small_config, storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="fixed")
    open_study(stored, "fixed", "digest-a")
    assert open_study(stored, "fixed", "digest-a").study_name == "fixed"  # the same search resumes
    with pytest.raises(ConfigError, match="holds another search"):
        open_study(stored, "fixed", "digest-b")
    with pytest.raises(ConfigError, match="created to minimize its metric, but tune.metric 'auc' needs maximize"):
        open_study(with_tune(stored, metric="auc"), "fixed", "digest-a")


def test_only_in_memory_studies_are_seeded(small_config, tmp_path):
    from pipeline.tuning.study import open_study

    assert open_study(small_config, "memory")._storage is not None
    seeded = [open_study(small_config, f"m{i}").sampler._rng.rng.random() for i in range(2)]
    assert seeded[0] == seeded[1]
    stored = with_tune(small_config, storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    draws = [open_study(stored, f"s{i}").sampler._rng.rng.random() for i in range(2)]
    assert draws[0] != draws[1]


def test_a_trial_left_before_its_first_heartbeat_is_failed_after_the_grace_period(small_config, tmp_path):
    # A worker killed between creating a trial and its first heartbeat: Optuna alone leaves it RUNNING for ever.
    import time

    from pipeline.tuning.study import open_study

    stored = with_tune(small_config, storage=f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat_s=1)
    study = open_study(stored, "orphan")
    orphan = study.ask()
    assert study._storage._get_stale_trial_ids(study._study_id) == []  # within the grace period: maybe alive
    time.sleep(2.2)
    optuna.storages.fail_stale_trials(study)
    assert study.trials[orphan.number].state == optuna.trial.TrialState.FAIL


def _pruned_study(pruner: optuna.pruners.BasePruner) -> list[tuple[str, float | None]]:
    """40 seeded trials reporting a noisy learning curve every 5 rounds from round 25: (state, value) of each."""
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=3), pruner=pruner)

    def objective(trial: optuna.Trial) -> float:
        rate = trial.suggest_float("rate", 0.01, 1.0, log=True)
        value = 1.0
        for step in range(24, 100, 5):
            value = 1.0 / (1.0 + rate * step) + trial.number % 3 * 0.01
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study.optimize(objective, n_trials=40)
    return [(trial.state.name, trial.value) for trial in study.trials]


def test_the_median_pruner_reading_once_decides_as_optunas_with_one_worker(small_config):
    from pipeline.tuning.study import _MedianPrunerReadingOnce

    settings = {"n_startup_trials": 5, "n_warmup_steps": 20, "interval_steps": 5}
    decided = _pruned_study(_MedianPrunerReadingOnce(**settings))
    assert decided == _pruned_study(optuna.pruners.MedianPruner(**settings))
    assert any(state == "PRUNED" for state, _ in decided)  # the comparison covers pruning decisions


def test_only_a_stored_median_study_skips_reporting_the_warmup_rounds(small_config):
    from pipeline.tuning.study import first_report

    stored = small_config.tune.model_copy(update={"storage": "sqlite:///x.db"})
    assert first_report(stored) == small_config.tune.pruner.warmup_rounds
    assert first_report(small_config.tune) == 0
    hyperband = stored.model_copy(update={"pruner": stored.pruner.model_copy(update={"type": "hyperband"})})
    assert first_report(hyperband) == 0


def test_start_points_are_the_first_trials_of_a_fresh_study_only(small_config):
    points = [{"max_depth": 6, "learning_rate": 0.1}, {"max_depth": 3}]
    tune = with_tune(small_config, start_points=points).tune
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1))
    enqueue_start_points(study, tune)
    enqueue_start_points(study, tune)  # a second worker on the same fresh study: not doubled
    from pipeline.modeling.model import suggest_params

    study.optimize(lambda trial: float(suggest_params(trial, tune.search_space)["max_depth"]), n_trials=4)
    first, second = study.trials[0].params, study.trials[1].params
    assert first["max_depth"] == 6 and first["learning_rate"] == 0.1
    assert second["max_depth"] == 3 and set(second) == set(tune.search_space)  # the rest sampled
    enqueue_start_points(study, tune)  # resumed: it already has its start
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]


class _RecordingTrial:
    """Stands in for an Optuna trial: records what the callback reports, prunes from a given step on."""

    def __init__(self, prune_from: int | None = None) -> None:
        self.reports: dict[int, float] = {}
        self._prune_from = prune_from

    def report(self, value: float, step: int) -> None:
        self.reports[step] = value

    def should_prune(self) -> bool:
        return self._prune_from is not None and max(self.reports) >= self._prune_from


def _boost(callback, rounds: int) -> dict[int, int]:
    """Feed the callback `rounds` rounds of a falling score; the round (1-based) at which each step was reported."""
    reported_at = {}
    for epoch in range(rounds):
        before = set(callback._trial.reports)
        callback.after_iteration(None, epoch, {"validation_0": {"rmse": [100.0 - epoch]}})
        for step in set(callback._trial.reports) - before:
            reported_at[step] = epoch + 1
    return reported_at


def test_trials_are_compared_at_equal_learning_progress_not_equal_rounds():
    """A trial at learning rate 0.05 reaches step 20 after 40 rounds, one at 0.3 after 7: the median pruner compares
    them where each has learnt as much, instead of cutting every slow learner after its first rounds."""
    from pipeline.tuning.study import _ReportProgress

    slow = _boost(_ReportProgress(_RecordingTrial(), "rmse", 0.05, every=5), 100)
    fast = _boost(_ReportProgress(_RecordingTrial(), "rmse", 0.3, every=5), 100)
    assert slow[20] == 40 and fast[20] == 7
    assert set(slow) == {5 * k for k in range(1, 11)}  # every 5th step, each once
    assert set(slow) <= set(fast)  # the fast one went further in the same rounds, over the same grid
    warmed = _boost(_ReportProgress(_RecordingTrial(), "rmse", 0.1, every=5, first=20), 30)
    assert min(warmed) == 20 and warmed[20] == 20


def test_a_trial_the_pruner_cuts_stops_at_that_step():
    from pipeline.tuning.study import _ReportProgress

    trial = _RecordingTrial(prune_from=10)
    with pytest.raises(optuna.TrialPruned, match="round 20"):
        _boost(_ReportProgress(trial, "rmse", 0.05, every=5), 100)
    assert sorted(trial.reports) == [5, 10]


def test_the_study_name_of_a_search_without_conditions_is_the_one_it_had_before_they_existed():
    # Kept studies (tune.storage) resume by name: a config that does not use `when` must keep its digest.
    # The figure is tests/configs/pipeline.yaml's digest before `when`; a change to that file's tune section (or
    # split, fixed params) changes it legitimately: then take the new value from a checkout that still passes.
    assert search_digest(load_config(TEST_CONFIG), "data-x") == "1774e9db28b8"
    conditional = load_config(TEST_CONFIG, {"tune.search_space.grow_policy": "{choices: [depthwise, lossguide]}"})
    assert search_digest(conditional, "data-x") != "1774e9db28b8"
