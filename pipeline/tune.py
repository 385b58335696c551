"""tune: Optuna search over XGBoost hyper-parameters, one nested MLflow run per trial.

Reads:  `data/train.parquet` of the preprocess run (the pinned one, else the newest finished one).
Writes: parent run: params = best hyper-parameters (with `n_estimators` = best early-stopping round count),
        metrics best_valid_<metric>, n_trials, n_complete, n_pruned, n_failed; artifacts `best_params.json`,
        `plots/optimization_history.png`, `plots/param_importances.png`.
        One child run per trial (tag mlflow.parentRunId): its params, valid_<metric>, best_iteration, state.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
import time
from pathlib import Path
from typing import Any

import mlflow
import optuna
import pandas as pd
from loguru import logger
from sklearn.model_selection import train_test_split

from pipeline.config import PipelineConfig
from pipeline.data import features_and_target
from pipeline.lineage import download_artifact
from pipeline.model import build_classifier, suggest_params
from pipeline.preprocess import TRAIN_ARTIFACT
from pipeline.results import StepResult
from pipeline.trial_runs import TrialRunLogger
from pipeline.tracking import RunContext, step_run

BEST_PARAMS_ARTIFACT = "best_params.json"
BEST_ITERATION_ATTR = "best_iteration"
GREATER_IS_BETTER = {"auc", "aucpr", "pre", "map", "ndcg"}


def make_objective(train: pd.DataFrame, config: PipelineConfig):
    """The study's objective: fit on part of the train split, early-stop and score on the rest."""
    features, target = features_and_target(train, config.data.target)
    stratify = target if config.split.stratify else None
    x_fit, x_valid, y_fit, y_valid = train_test_split(
        features, target, test_size=config.split.validation_size, random_state=config.split.seed, stratify=stratify
    )

    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(trial, config.tune.search_space)
        model = build_classifier(
            params, config.train.fixed_params, n_estimators=config.tune.max_boosting_rounds,
            early_stopping_rounds=config.tune.early_stopping_rounds, eval_metric=config.tune.metric,
        )
        model.fit(x_fit, y_fit, eval_set=[(x_valid, y_valid)], verbose=False)
        trial.set_user_attr(BEST_ITERATION_ATTR, int(model.best_iteration))
        return float(model.best_score)

    return objective


def metric_direction(metric: str) -> str:
    """Optuna's direction for an XGBoost eval metric: ranking metrics up, losses and errors down."""
    return "maximize" if metric.split("@")[0] in GREATER_IS_BETTER else "minimize"


def best_params(study: optuna.Study) -> dict[str, Any]:
    """The best trial's params plus the boosting-round count its early stopping found."""
    best = study.best_trial
    return {**best.params, "n_estimators": best.user_attrs[BEST_ITERATION_ATTR] + 1}


class ProgressLog:
    """Optuna callback: a log line every tenth of the trials, for logs and orchestrators where no bar renders."""

    def __init__(self, n_trials: int, metric: str) -> None:
        self._every = max(1, n_trials // 10)
        self._n_trials = n_trials
        self._metric = metric

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        done = trial.number + 1
        if done % self._every == 0 or done == self._n_trials:
            complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            best = f"{study.best_value:.5f}" if complete else "n/a"
            logger.info("trial {}/{}: best valid {} {}", done, self._n_trials, self._metric, best)


def search(train: pd.DataFrame, config: PipelineConfig, callbacks: list | None = None) -> optuna.Study:
    """Run the study; a progress bar on a terminal, progress log lines otherwise."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=metric_direction(config.tune.metric),
                                sampler=optuna.samplers.TPESampler(seed=config.tune.seed))
    on_terminal = sys.stderr.isatty()
    progress = [] if on_terminal else [ProgressLog(config.tune.n_trials, config.tune.metric)]
    study.optimize(make_objective(train, config), n_trials=config.tune.n_trials,
                   callbacks=[*(callbacks or []), *progress], show_progress_bar=on_terminal)
    return study


def _log_plots(study: optuna.Study) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as optuna_plots

    plots = {"plots/optimization_history.png": optuna_plots.plot_optimization_history}
    if len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]) > 1 and study.best_trial.params:
        plots["plots/param_importances.png"] = optuna_plots.plot_param_importances
    for path, plot in plots.items():
        axes = plot(study)
        mlflow.log_figure(axes.figure, path)
        matplotlib.pyplot.close(axes.figure)


def _study_metrics(study: optuna.Study, metric: str) -> dict[str, float]:
    states = Counter(trial.state for trial in study.trials)
    TrialState = optuna.trial.TrialState
    return {f"best_valid_{metric}": study.best_value, "n_trials": float(len(study.trials)),
            "n_complete": float(states[TrialState.COMPLETE]), "n_pruned": float(states[TrialState.PRUNED]),
            "n_failed": float(states[TrialState.FAIL])}


def run(
    config: PipelineConfig, *, upstream_run_id: str | None = None, context: RunContext = RunContext()
) -> StepResult:
    started = time.monotonic()
    with step_run("tune", config, context) as active:
        preprocess_run = active.use_upstream(upstream_run_id)
        with tempfile.TemporaryDirectory() as tmp:
            train = pd.read_parquet(download_artifact(preprocess_run, TRAIN_ARTIFACT, Path(tmp)))
        logger.info("tuning on {} rows: {} trials", len(train), config.tune.n_trials)
        trial_logger = TrialRunLogger(active.client, active.experiment_id, active.run_id, config.tune.metric)
        study = search(train, config, callbacks=[trial_logger])
        if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
            raise RuntimeError("tune: no trial completed; see the trial runs' errors")
        params = best_params(study)
        metrics = _study_metrics(study, config.tune.metric)
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        mlflow.log_dict(params, BEST_PARAMS_ARTIFACT)
        _log_plots(study)
        logger.info("best valid {} = {:.5f} with {}", config.tune.metric, study.best_value, params)
    return StepResult("tune", active.run_id, active.experiment_id, upstream=dict(active.upstream),
                      outputs={"best_params": f"runs:/{active.run_id}/{BEST_PARAMS_ARTIFACT}"},
                      metrics=metrics, duration_s=time.monotonic() - started)
