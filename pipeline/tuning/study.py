"""The Optuna side of tuning: storage, study name, pruner, the objective and the search loop.

A study in a persistent storage (RDB URL or `journal:PATH`) is resumed by a rerun with the same tuning config and
the same preprocess data, and shared by concurrent workers; `n_trials` counts finished trials of the whole study.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

import mlflow
import numpy as np
import optuna
import pandas as pd
from loguru import logger
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState
from xgboost.callback import TrainingCallback

from pipeline import interrupts
from pipeline.config import PipelineConfig, TuneConfig
from pipeline.data.sources import features_and_target
from pipeline.data.splitting import cv_folds, validation_folds
from pipeline.errors import ConfigError, TrackingError, first_line
from pipeline.masking import mask_url
from pipeline.modeling.decision import class_weights, sample_weights
from pipeline.modeling.model import build_model, suggest_params, usable_cores
from pipeline.tuning import ensemble

BEST_ITERATION_ATTR = "best_iteration"
GREATER_IS_BETTER = {"auc", "aucpr", "pre", "map", "ndcg"}
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
JOURNAL_PREFIX = "journal:"
SEARCH_DIGEST_ATTR = "pipeline.search_digest"
# The learning rate at which the pruner's steps are boosting rounds (see _ReportProgress); XGBoost's own default,
# for a trial whose learning rate is neither searched nor fixed.
REFERENCE_LEARNING_RATE, XGBOOST_LEARNING_RATE = 0.1, 0.3
# Settings that change how long or where a study runs, not what it searches: left out of the study name (start
# points only order the first trials of a fresh study; the ensemble is chosen among its trials afterwards).
_RUN_SETTINGS = {
    "n_trials", "timeout_s", "n_jobs", "threads_per_trial", "storage", "study_name", "heartbeat_s", "start_points",
    "ensemble",
}  # fmt: skip


def metric_direction(metric: str) -> Literal["minimize", "maximize"]:
    """Optuna's direction for an XGBoost eval metric: ranking metrics up, losses and errors down."""
    return "maximize" if metric.split("@")[0] in GREATER_IS_BETTER else "minimize"


def describe_storage(url: str | None) -> str:
    """The storage as it may be logged: passwords masked, ${VARS} left unexpanded."""
    if not url:
        return "in-memory"
    return url if url.startswith(JOURNAL_PREFIX) else mask_url(url) or url


def open_storage(tune: TuneConfig) -> optuna.storages.BaseStorage | None:
    """Open the configured storage; RDB storages get heartbeats so trials of a dead worker are failed and retried."""
    if not tune.storage:
        return None
    shown = describe_storage(tune.storage)
    url = os.path.expandvars(tune.storage)  # lets credentials come from the environment, never from a logged value
    if url.startswith(JOURNAL_PREFIX):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url.removeprefix(JOURNAL_PREFIX)))
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    try:
        return _rdb_storage(url, tune.heartbeat_s)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        raise ConfigError(f"tune.storage '{shown}' is not a usable storage URL: {first_line(exc)}") from exc
    except SQLAlchemyError as exc:
        raise TrackingError(f"cannot reach the Optuna storage '{shown}': {first_line(exc)}") from exc


def _rdb_storage(url: str, heartbeat_s: int, attempts: int = 3) -> optuna.storages.RDBStorage:
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(attempts):
        try:
            return _HeartbeatStorage(
                url,
                heartbeat_interval=heartbeat_s,
                grace_period=2 * heartbeat_s,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3),
            )
        except (IntegrityError, ProgrammingError, OperationalError) as exc:
            # Processes opening an empty database together race to create the schema (a worker, or anything that
            # loads the study, such as a dashboard): the loser retries. PostgreSQL reports the race as an integrity
            # or programming error, SQLite as "table ... already exists"; other operational errors are real.
            lost_race = not isinstance(exc, OperationalError) or "already exists" in str(exc)
            if not lost_race or attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


class _HeartbeatStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage, also failing trials a worker died with before their first heartbeat.

    Optuna only fails a RUNNING trial whose heartbeat went stale; a worker killed between creating a trial and
    recording its first heartbeat (milliseconds) leaves a trial RUNNING for ever. Such a trial is stale once it
    started more than the grace period ago (start times are the workers' clocks, in UTC)."""

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        stale = super()._get_stale_trial_ids(study_id)
        grace_s = self.grace_period or 2 * (self.heartbeat_interval or 0)
        started_before = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(seconds=grace_s)
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        with _create_scoped_session(self.scoped_session) as session:
            unheard = (
                session.query(models.TrialModel.trial_id)
                .filter(
                    models.TrialModel.study_id == study_id,
                    models.TrialModel.state == TrialState.RUNNING,
                    models.TrialModel._datetime_start_utc < started_before,
                    ~models.TrialModel.heartbeats.any(),
                )
                .all()
            )
        return stale + [trial_id for (trial_id,) in unheard if trial_id not in stale]


def search_digest(config: PipelineConfig, data_identity: str) -> str:
    """What makes two studies the same search: the engine, tuning settings (not run settings), split, fixed params,
    data."""
    search = {k: v for k, v in config.tune.model_dump(mode="json").items() if k not in _RUN_SETTINGS}
    for dimension in search["search_space"].values():  # a kept study's name from before `when` existed stays
        if dimension["when"] is None:
            del dimension["when"]
    if config.engine == "local":
        search.pop("sample_rows")  # a dask engine setting: the local engine's trials use every row
    payload = {
        "engine": config.engine,
        "search": search,
        "split": config.split.model_dump(mode="json"),
        "fixed": config.train.fixed_params,
        # Weighted trials are another search; unweighted keep the name they had before the setting existed.
        **({"class_weight": config.train.class_weight} if config.train.class_weight != "none" else {}),
        "data": data_identity,
        # What the pruner's steps count (see _ReportProgress): a study kept from when they counted rounds would
        # compare its old trials with new ones at different steps.
        "pruner_steps": "learning progress",
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def study_name(config: PipelineConfig, experiment_name: str, data_identity: str) -> str:
    """Same experiment, same search and same input data give the same name, so a rerun resumes the study."""
    return config.tune.study_name or f"{experiment_name}-tune-{search_digest(config, data_identity)}"


def make_pruner(tune: TuneConfig) -> optuna.pruners.BasePruner:
    """The configured pruner; with a persistent storage the median pruner reads the completed trials once per trial
    (see _MedianPrunerReadingOnce)."""
    pruner = tune.pruner
    if pruner.type == "median":
        median = _MedianPrunerReadingOnce if tune.storage else optuna.pruners.MedianPruner
        return median(
            n_startup_trials=pruner.startup_trials,
            n_warmup_steps=pruner.warmup_rounds,
            interval_steps=pruner.report_every,
        )
    if pruner.type == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=pruner.report_every)
    if pruner.type == "hyperband":
        # Its resource is the learning progress a trial can reach (see _ReportProgress), not its rounds.
        rates = tune.search_space.get("learning_rate")
        fastest = float(rates.high) if rates and rates.high is not None else XGBOOST_LEARNING_RATE
        most = max(pruner.report_every + 1, round(tune.max_boosting_rounds * fastest / REFERENCE_LEARNING_RATE))
        return optuna.pruners.HyperbandPruner(min_resource=pruner.report_every, max_resource=most)
    return optuna.pruners.NopPruner()


# How old the completed trials the median pruner compares a trial with may be, in seconds (see below).
PRUNER_READ_EVERY_S = 5.0


class _MedianPrunerReadingOnce(optuna.pruners.MedianPruner):
    """Optuna's median pruner, reading the study's completed trials at a trial's first report and then at most every
    PRUNER_READ_EVERY_S seconds, not at every report. From a database each read is a query of every running and new
    trial (~5 ms on PostgreSQL, more than the report's own write; see docs/benchmarks.md). With one worker running one
    trial at a time, trials complete only between its trials, so the decisions are the same; with several, a trial
    another worker completes joins the median up to PRUNER_READ_EVERY_S later."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read: tuple[int, float, list[optuna.trial.FrozenTrial]] | None = None  # (trial number, when, trials)

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        read, now = self._read, time.monotonic()
        if read is None or read[0] != trial.number or now - read[1] > PRUNER_READ_EVERY_S:
            read = self._read = (trial.number, now, study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        return super().prune(cast(optuna.Study, _CompletedAsRead(study, read[2])), trial)


class _CompletedAsRead:
    """A study whose completed trials are the ones given (what the median pruner reads); all else is the study's."""

    def __init__(self, study: optuna.Study, complete: list[optuna.trial.FrozenTrial]) -> None:
        self._study, self._complete = study, complete

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list[optuna.trial.FrozenTrial]:
        if states is None or tuple(states) != (TrialState.COMPLETE,):
            return self._study.get_trials(deepcopy=deepcopy, states=states)
        return copy.deepcopy(self._complete) if deepcopy else self._complete

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


def open_study(config: PipelineConfig, name: str, digest: str = "") -> optuna.Study:
    """Create the study, or load it when the storage already holds one of that name (and the same search).

    A kept study is shared or resumed, so its sampler is not seeded: a seeded one would draw the same first points
    again in every worker and every rerun. Only a fresh in-memory study is seeded (reproducible `make run`)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(config.tune)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        load_if_exists=True,
        direction=metric_direction(config.tune.metric),
        pruner=make_pruner(config.tune),
        sampler=optuna.samplers.TPESampler(seed=config.tune.seed if storage is None else None),
    )
    _check_same_search(study, config, digest)
    return study


def _check_same_search(study: optuna.Study, config: PipelineConfig, digest: str) -> None:
    """Refuse to resume a stored study made for another metric, search space or data (e.g. a fixed study_name)."""
    direction = metric_direction(config.tune.metric)
    if study.direction.name.lower() != direction:
        raise ConfigError(
            f"tune: study '{study.study_name}' was created to {study.direction.name.lower()} its "
            f"metric, but tune.metric '{config.tune.metric}' needs {direction}: use another study_name"
        )
    stored = study.user_attrs.get(SEARCH_DIGEST_ATTR)
    if stored is None and digest:
        study.set_user_attr(SEARCH_DIGEST_ATTR, digest)
    elif digest and stored != digest:
        raise ConfigError(
            f"tune: study '{study.study_name}' holds another search (search space, split, fixed params "
            "or data differ): use another tune.study_name, or leave it unset to derive one"
        )


class _ReportProgress(TrainingCallback):
    """Report a trial's validation score to the pruner, and stop it when the pruner says so, at steps of learning
    progress: rounds x learning_rate / REFERENCE_LEARNING_RATE (a trial at 0.05 reaches step 20 after 40 rounds, one
    at 0.3 after 7). Compared round for round, a slow learner always trails early and the median pruner cut nearly
    every one (on regression above all, where the early RMSE is mostly the distance still to go); at equal progress
    trials are compared on how well they learn. Reports land on multiples of `every` from step `first` on: each is a
    storage write (~4 ms on PostgreSQL), and all trials must report at the same steps to be compared."""

    def __init__(self, trial: optuna.Trial, metric: str, learning_rate: float, every: int, first: int = 0) -> None:
        super().__init__()
        self._trial, self._metric, self._every, self._first = trial, metric, every, first
        self._scale = learning_rate / REFERENCE_LEARNING_RATE
        self._last = -1

    def after_iteration(self, model: Any, epoch: int, evals_log: dict) -> bool:
        step = int((epoch + 1) * self._scale + 1e-9) // self._every * self._every
        if step <= self._last or step < max(self._first, self._every):
            return False
        self._last = step
        self._trial.report(float(evals_log["validation_0"][self._metric][-1]), step=step)
        if self._trial.should_prune():
            raise optuna.TrialPruned(f"pruned at round {epoch + 1} (learning progress {step})")
        return False


def first_report(tune: TuneConfig) -> int:
    """The first step of learning progress (see _ReportProgress) a trial reports to the pruner. With a persistent
    storage the median pruner is not told the steps of its warm-up: it cannot prune there, and only compares trials
    at steps after it, so those reports would be storage writes (a fifth of them at 100 rounds) that change no
    decision."""
    return tune.pruner.warmup_rounds if tune.storage and tune.pruner.type == "median" else 0


_MULTICLASS_METRIC = {"logloss": "mlogloss", "error": "merror"}
CLASSIFICATION_METRICS = ("logloss", "auc", "aucpr", "error")
REGRESSION_METRICS = ("rmse", "mae", "mape", "rmsle")


def eval_metric(metric: str, task: str) -> str:
    """XGBoost's name of the configured metric for the task (multiclass has its own log loss and error)."""
    return _MULTICLASS_METRIC.get(metric, metric) if task == "multiclass" else metric


def resolve_metric(config: PipelineConfig, task: str) -> PipelineConfig:
    """The config with `tune.metric: auto` made concrete for the task (logloss, or rmse for regression); a metric
    that does not fit the task is a ConfigError."""
    allowed = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    metric: str = config.tune.metric
    if metric == "auto":
        metric = allowed[0]
    elif metric not in allowed:
        raise ConfigError(f"tune.metric '{metric}' does not fit a {task} task: use auto or one of {', '.join(allowed)}")
    return config.model_copy(update={"tune": config.tune.model_copy(update={"metric": metric})})


# Below this many training rows a second XGBoost thread gains little (2 threads: 9% faster on 364 rows, measured)
# and the core is worth more to the process writing the trial runs.
SMALL_FIT_ROWS = 20_000


def threads_per_trial(tune: TuneConfig, fit_rows: int) -> int:
    """XGBoost threads per trial: the configured number, else cores / n_jobs, less one core on small data."""
    if tune.threads_per_trial:
        return tune.threads_per_trial
    threads = max(1, usable_cores() // tune.n_jobs)
    return threads - 1 if threads > 1 and fit_rows < SMALL_FIT_ROWS else threads


@dataclass(frozen=True)
class _Fold:
    """One (fit, validation) pair of the train split, as XGBoost takes it."""

    x_fit: pd.DataFrame
    y_fit: pd.Series
    x_valid: pd.DataFrame
    y_valid: pd.Series
    fit_weights: Any
    valid_weights: Any


def _folds(train: pd.DataFrame, config: PipelineConfig, task: str) -> list[_Fold]:
    """The holdout, or `tune.cv`'s folds, of the train split; each with train.class_weight's weights (the train
    split's class shares)."""
    target, classification = config.data.target, task != "regression"
    count = cv_folds(len(train), config.tune.cv, timed=config.tune.timeout_s is not None)
    n_classes = int(train[target].max()) + 1 if classification else 0
    table = class_weights(train[target].to_numpy(), n_classes) if classification else None
    folds = []
    for fit, valid in validation_folds(train, config.split, target, classification, count):
        (x_fit, y_fit), (x_valid, y_valid) = features_and_target(fit, target), features_and_target(valid, target)
        weights = [sample_weights(config, y.to_numpy(), n_classes, table) for y in (y_fit, y_valid)]
        folds.append(_Fold(x_fit, y_fit, x_valid, y_valid, *weights))
    return folds


@dataclass(frozen=True)
class Objective:
    """The study's objective (`make_objective`), and the library of its best trials' held-out predictions when
    `tune.ensemble` selects among them (pipeline/tuning/ensemble.py; None: only the best trial is used)."""

    score_trial: Callable[[optuna.Trial], float]
    library: ensemble.TrialLibrary | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        return self.score_trial(trial)


def _library(folds: list[_Fold], metric: str, selection_rounds: int) -> ensemble.TrialLibrary | None:
    """Where the trials' held-out predictions are kept for ensemble selection: every fold's validation rows."""
    if selection_rounds <= 1:
        return None
    truth = np.concatenate([fold.y_valid.to_numpy() for fold in folds])
    weights = None if folds[0].valid_weights is None else np.concatenate([fold.valid_weights for fold in folds])
    return ensemble.TrialLibrary(truth, weights, metric, metric_direction(metric) == "maximize", selection_rounds)


def make_objective(train: pd.DataFrame, config: PipelineConfig, task: str) -> Objective:
    """The study's objective: fit on part of the train split, early-stop, prune and score on the rest; with
    `tune.cv`, on each fold in turn, scoring the mean of the folds' best scores (pruned on the first fold)."""
    features_and_target(train.iloc[:0], config.data.target)  # a missing target is its DataError, before a split
    folds = _folds(train, config, task)
    tune, threads = config.tune, threads_per_trial(config.tune, len(folds[0].x_fit))
    if mlflow.active_run():  # the same trials need the same thread count (`reproduce` sets it again)
        mlflow.log_params({"tune.threads": threads, "tune.folds": len(folds)})
    metric = eval_metric(tune.metric, task)
    library = _library(folds, tune.metric, ensemble.rounds(tune, len(train)))

    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(trial, tune.search_space)
        scores, rounds, predicted, key = [], [], [], None
        for number, fold in enumerate(folds):
            callbacks: list[TrainingCallback] = [interrupts.stop_on_signal()]
            if tune.pruner.type != "none" and number == 0:  # the pruner compares trials on their first fold
                fixed_rate = config.train.fixed_params.get("learning_rate", XGBOOST_LEARNING_RATE)
                rate = float(params.get("learning_rate", fixed_rate))
                callbacks.append(_ReportProgress(trial, metric, rate, tune.pruner.report_every, first_report(tune)))
            model = build_model(
                task,
                params,
                config.train.fixed_params,
                n_jobs=threads,
                n_estimators=tune.max_boosting_rounds,
                early_stopping_rounds=tune.early_stopping_rounds,
                eval_metric=metric,
                callbacks=callbacks,
            )
            model.fit(
                fold.x_fit,
                fold.y_fit,
                sample_weight=fold.fit_weights,
                eval_set=[(fold.x_valid, fold.y_valid)],
                sample_weight_eval_set=None if fold.valid_weights is None else [fold.valid_weights],
                verbose=False,
            )
            interrupts.raise_if_requested()  # a trial cut short by SIGTERM must fail, not complete with a bad score
            scores.append(float(model.best_score))
            rounds.append(int(model.best_iteration))
            if library is not None:  # the model at its best round, as the score above
                predict = model.predict if task == "regression" else model.predict_proba
                predicted.append(predict(fold.x_valid))
                key = key if number else ensemble.merge_key(model, params, config.train.fixed_params)
        trial.set_user_attr(BEST_ITERATION_ATTR, round(sum(rounds) / len(rounds)))
        value = sum(scores) / len(scores)
        if library is not None:
            library.add(trial.number, value, np.concatenate(predicted), key)
        return value

    return Objective(objective, library)


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED_STATES))


class ProgressLog:
    """Optuna callback: a log line every tenth of the trials, for logs and orchestrators where no bar renders."""

    def __init__(self, n_trials: int, metric: str) -> None:
        self._every = max(1, n_trials // 10)
        self._n_trials = n_trials
        self._metric = metric
        self._reported: set[int] = set()  # parallel trials (n_jobs > 1) can see the same count

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        finished = count_finished(study)
        if finished in self._reported:
            return
        if finished % self._every == 0 or finished >= self._n_trials:
            self._reported.add(finished)
            complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            best = f"{study.best_value:.5f}" if complete else "n/a"
            logger.info("{}/{} trials finished; best valid {} {}", finished, self._n_trials, self._metric, best)


def run_trials(
    study: optuna.Study,
    train: pd.DataFrame | None,
    config: PipelineConfig,
    task: str,
    callbacks: list,
    objective: Callable[[optuna.Trial], float] | None = None,
) -> None:
    """Run trials until the study holds `n_trials` finished ones, counting other workers' trials, or timeout_s.
    The objective is `make_objective` on `train`, unless another one is given (the dask engine's)."""
    tune = config.tune
    remaining = tune.n_trials - count_finished(study)
    if remaining <= 0:
        logger.info("study {} already holds {} finished trials: nothing to run", study.study_name, tune.n_trials)
        return
    enqueue_start_points(study, tune)
    on_terminal = sys.stderr.isatty()
    progress = [] if on_terminal else [ProgressLog(tune.n_trials, tune.metric)]
    with interrupts.deferred():
        study.optimize(
            objective or make_objective(train, config, task),
            n_trials=remaining,
            timeout=tune.timeout_s,
            n_jobs=tune.n_jobs,
            callbacks=[*callbacks, *progress, MaxTrialsCallback(tune.n_trials, states=FINISHED_STATES)],
            show_progress_bar=on_terminal,
        )


def enqueue_start_points(study: optuna.Study, tune: TuneConfig) -> None:
    """Queue `tune.start_points` as the study's first trials, when the study holds none yet (a kept study that is
    resumed or shared already has its start; skip_if_exists keeps two workers starting together from doubling
    them)."""
    if not tune.start_points or study.get_trials(deepcopy=False):
        return
    for point in tune.start_points:
        study.enqueue_trial(dict(point), skip_if_exists=True)
    logger.info("tune starts from {} known-good points (tune.start_points)", len(tune.start_points))


def trial_params(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """A complete trial's params plus the boosting-round count its early stopping found."""
    return {**trial.params, "n_estimators": trial.user_attrs[BEST_ITERATION_ATTR] + 1}


def best_params(study: optuna.Study) -> dict[str, Any]:
    """The best trial's params plus the boosting-round count its early stopping found."""
    return trial_params(study.best_trial)
