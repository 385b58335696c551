"""tune: Optuna search over XGBoost hyper-parameters, one nested MLflow run per trial.

Reads:  `data/train.parquet` and `data/schema.json` (the task) of the preprocess run (the pinned one, else the
        newest finished one).
Writes: parent run: params = best hyper-parameters of the whole study (with `n_estimators` = the best trial's
        early-stopping round count), `optuna.study_name`, `optuna.storage` (password masked), `optuna.pruner`,
        `tune.timeout_s` (only when set);
        metrics best_valid_<metric>, n_trials (any state) / n_finished / n_complete / n_pruned / n_failed (whole
        study), n_trials_this_run, ensemble_trials (the trials train averages) and, when more than one,
        ensemble_valid_<metric> (their average's score on the held-out rows, pooled);
        artifacts `best_params.json`, `ensemble.json` (`tune.ensemble`: {members: [{trial, weight,
        params}]}, pipeline/tuning/ensemble.py; the best trial alone, weight 1, unless selection chose more),
        `plots/optimization_history.png`, `plots/param_importances.png`.
        One child run per trial this process ran (tag mlflow.parentRunId): its params, valid_<metric>,
        best_iteration, tag optuna.trial_state; pruned trials end KILLED with tag optuna.pruned_at_round.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import mlflow
import optuna
from loguru import logger
from mlflow.entities import Run

from pipeline.config import PipelineConfig
from pipeline.contract import (
    BEST_PARAMS_ARTIFACT,
    DATA_DIGEST_TAG,
    ENSEMBLE_ARTIFACT,
    OPTIMIZATION_HISTORY_ARTIFACT,
    PARAM_IMPORTANCES_ARTIFACT,
    TIMED_SEARCH_PARAM,
)
from pipeline.engines import TuneWork, engine_for
from pipeline.errors import PipelineError
from pipeline.modeling.decision import check_for_task
from pipeline.results import StepResult
from pipeline.tracking.notes import number, table
from pipeline.tracking.runs import RunContext, log_params, step_run
from pipeline.tracking.splits import schema_of_run
from pipeline.tuning import ensemble
from pipeline.tuning.study import (
    best_params,
    describe_storage,
    open_study,
    resolve_metric,
    run_trials,
    search_digest,
    study_name,
    trial_params,
)
from pipeline.tuning.trial_runs import TrialRunLogger
from pipeline.tuning.trial_writer import TrialRunWriter


def _log_plots(study: optuna.Study) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot
    from optuna.visualization import matplotlib as optuna_plots

    plots: dict[str, Callable[[optuna.Study], Any]] = {
        OPTIMIZATION_HISTORY_ARTIFACT: optuna_plots.plot_optimization_history
    }
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) > 1 and study.best_trial.params:
        plots[PARAM_IMPORTANCES_ARTIFACT] = optuna_plots.plot_param_importances
    for path, plot in plots.items():
        axes = plot(study)
        mlflow.log_figure(axes.figure, path)
        pyplot.close(axes.figure)


def _study_metrics(study: optuna.Study, metric: str, ran_here: int) -> dict[str, float]:
    states = Counter(trial.state for trial in study.trials)
    TrialState = optuna.trial.TrialState
    return {
        f"best_valid_{metric}": study.best_value,
        "n_trials": float(len(study.trials)),
        "n_finished": float(states[TrialState.COMPLETE] + states[TrialState.PRUNED]),
        "n_complete": float(states[TrialState.COMPLETE]),
        "n_pruned": float(states[TrialState.PRUNED]),
        "n_failed": float(states[TrialState.FAIL]),
        "n_trials_this_run": float(ran_here),
    }


def _ensemble(study: optuna.Study, library: ensemble.TrialLibrary | None) -> tuple[dict[str, Any], dict[str, float]]:
    """ensemble.json and its metrics: the trials selection chose (tune.ensemble), else the best trial alone."""
    best = study.best_trial
    states = (optuna.trial.TrialState.COMPLETE,)
    complete = {trial.number: trial for trial in study.get_trials(deepcopy=False, states=states)}
    selection = None if library is None else ensemble.select(library, best.number, set(complete))
    if library is not None and selection is None:
        logger.info(
            "tune.ensemble: the study's best trial {} ran in another process or an earlier run, whose held-out "
            "predictions are not here; the final model is that trial alone",
            best.number,
        )
    weights = {best.number: 1.0} if selection is None else selection.weights
    members = [{"trial": n, "weight": w, "params": trial_params(complete[n])} for n, w in weights.items()]
    metrics = {"ensemble_trials": float(len(members))}
    if selection is not None and len(members) > 1:
        assert library is not None  # a selection needs it
        metrics[f"ensemble_valid_{library.metric}"] = selection.score
        logger.info(
            "ensemble of {} trials (weights {}): valid {} {:.5f} on the held-out rows, the best trial alone {:.5f}",
            len(members),
            ", ".join(f"#{n} {w:.2f}" for n, w in weights.items()),
            library.metric,
            selection.score,
            selection.best_score,
        )
    return {"members": members}, metrics


def run(
    config: PipelineConfig, *, upstream_run_id: str | None = None, context: RunContext = RunContext()
) -> StepResult:
    with step_run("tune", config, context) as active:
        preprocess_run = active.use_upstream(upstream_run_id)
        schema = schema_of_run(preprocess_run)
        check_for_task(config, schema.task)
        config = resolve_metric(config, schema.task)
        experiment_name = active.client.get_experiment(active.experiment_id).name
        data_identity = preprocess_run.data.tags.get(DATA_DIGEST_TAG, preprocess_run.info.run_id)
        name = study_name(config, experiment_name, data_identity)
        log_params(  # tune.timeout_s only when set: train's bag auto reads whether the search had a budget
            {
                "optuna.study_name": name,
                "optuna.storage": describe_storage(config.tune.storage),
                "optuna.pruner": config.tune.pruner.type,
                TIMED_SEARCH_PARAM: config.tune.timeout_s,
            }
        )
        study = open_study(config, name, search_digest(config, data_identity))
        logger.info(
            "study {} ({}): {} task, {} until {} finished trials",
            name,
            describe_storage(config.tune.storage),
            schema.task,
            config.tune.metric,
            config.tune.n_trials,
        )
        trial_runs = TrialRunLogger(active.client, active.experiment_id, active.run_id, config.tune.metric)
        work: TuneWork = engine_for(config, "tune")
        with work.objective(config, schema, preprocess_run) as objective, TrialRunWriter(trial_runs) as writer:
            run_trials(study, None, config, schema.task, callbacks=[writer], objective=objective)
            library = getattr(objective, "library", None)  # engine local's objective keeps one (tune.ensemble)
        if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            raise PipelineError(f"tune: no trial of study {name} completed; see the trial runs' errors")
        params = best_params(study)
        chosen, ensemble_metrics = _ensemble(study, library)
        metrics = {**_study_metrics(study, config.tune.metric, writer.logged), **ensemble_metrics}
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        mlflow.log_dict(params, BEST_PARAMS_ARTIFACT)
        mlflow.log_dict(chosen, ENSEMBLE_ARTIFACT)
        _log_plots(study)
        logger.info("best valid {} = {:.5f} with {}", config.tune.metric, study.best_value, params)
    return active.result(metrics=metrics)


# Params that are not hyper-parameters of the search, and the study's counts, as the note shows them.
_NOT_SEARCHED = ("optuna.", "engine", "dask.", "tune.")
_COUNTS = ("n_finished", "n_complete", "n_pruned", "n_failed", "n_trials_this_run")


def note(run: Run) -> list[str]:
    """The run's Description: the study, its trial counts, the best score and the params that gave it."""
    metrics, params = run.data.metrics, run.data.params
    best = next((f"{key} = {value:.5g}" for key, value in metrics.items() if key.startswith("best_valid_")), "none")
    counts = ", ".join(f"{key.removeprefix('n_')} {number(metrics[key])}" for key in _COUNTS if key in metrics)
    searched = sorted((k, v) for k, v in params.items() if not k.startswith(_NOT_SEARCHED))
    lines = [
        f"Study `{params.get('optuna.study_name', '?')}` ({params.get('optuna.storage', '?')}): {counts}.",
        f"Best {best}, with:",
        "",
        *table([(k, f"`{v}`") for k, v in searched], ("param", "value")),
    ]
    ensembled = next((f"{k} = {v:.5g}" for k, v in metrics.items() if k.startswith("ensemble_valid_")), None)
    if ensembled:
        trials = number(metrics["ensemble_trials"])
        lines += ["", f"Final model: the ensemble of {trials} trials in `ensemble.json` (tune.ensemble), {ensembled}."]
    return lines
