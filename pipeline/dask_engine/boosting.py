"""XGBoost on the cluster (`xgboost.dask`): tune's objective, train's fit, and predictions of a model on a split.

A fitted Booster becomes the same scikit-learn-style model the local engine fits (saved and loaded in XGBoost's
own format), so the registered model, serving and predict do not know which engine trained it.

Pruning on the cluster: XGBoost runs the training callbacks on every worker, and all workers must stop at the same
round. Each trial therefore ships a snapshot of the study's finished trials and the study's own pruner; every
worker replays them in an in-memory study and decides alike from the same (all-reduced) validation scores. The
reports are then written to the shared study, so its pruner and the trial runs see what the local engine records.
A trial pruned this way was judged against the trials finished when it started."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from loguru import logger
from xgboost import XGBClassifier, XGBModel, XGBRegressor
from xgboost.callback import TrainingCallback

from pipeline.config import PipelineConfig
from pipeline.dask_engine import tables
from pipeline.modeling.model import suggest_params
from pipeline.tuning.study import BEST_ITERATION_ATTR, FINISHED_STATES, eval_metric

OBJECTIVES = {"binary": "binary:logistic", "multiclass": "multi:softprob", "regression": "reg:squarederror"}
# scikit-learn wrapper settings that are no Booster parameters (the DMatrix or the fit takes care of them).
_NOT_BOOSTER_PARAMS = {"n_estimators", "enable_categorical", "early_stopping_rounds", "eval_metric", "callbacks"}
PRUNED_AT_ATTR = "pipeline_pruned_at"


def booster_params(task: str, params: dict[str, Any], fixed: dict[str, Any], n_classes: int) -> dict[str, Any]:
    """The learning API's parameters of what `modeling.model.build_model` gives the scikit-learn estimator."""
    merged = {key: value for key, value in {**fixed, **params}.items() if key not in _NOT_BOOSTER_PARAMS}
    if "n_jobs" in merged:
        merged["nthread"] = merged.pop("n_jobs")
    merged["objective"] = OBJECTIVES[task]
    if task == "multiclass":
        merged["num_class"] = n_classes
    return merged


def as_estimator(booster: Any, task: str) -> XGBModel:
    """The Booster as the scikit-learn estimator the local engine fits (what the registered model wraps)."""
    estimator = XGBRegressor() if task == "regression" else XGBClassifier()
    with tempfile.TemporaryDirectory(prefix="dask-booster-") as tmp:
        path = Path(tmp) / "model.ubj"
        booster.save_model(path)
        estimator.load_model(path)
    return estimator


def _matrix(client: Any, frame, target: str, ref: Any = None):
    from xgboost import dask as dxgb

    return dxgb.DaskQuantileDMatrix(
        client, frame.drop(columns=[target]), frame[target], enable_categorical=True, ref=ref
    )


def collective(config: PipelineConfig) -> Any:
    """XGBoost's collective settings: a worker silent for `dask.timeout_s` (killed, or cut off) fails the fit
    instead of leaving the others waiting for ever."""
    from xgboost.collective import Config

    timeout = int(config.dask.timeout_s)
    return Config(timeout=timeout, tracker_timeout=timeout)


def fit(client: Any, train, target: str, task: str, params: dict[str, Any], config: PipelineConfig, n_classes: int):
    """train: the final model on the whole train split, `params["n_estimators"]` rounds."""
    from xgboost import dask as dxgb

    fitted = dxgb.train(
        client,
        booster_params(task, params, config.train.fixed_params, n_classes),
        _matrix(client, train, target),
        num_boost_round=int(params["n_estimators"]),
        verbose_eval=False,
        coll_cfg=collective(config),
    )
    return as_estimator(fitted["booster"], task)


def predict(client: Any, model: XGBModel, frame, target: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions of `model` on every partition of `frame` (class probabilities, n x k, or values), gathered
    here with the target column when `target` is given: 8 bytes per row and class."""
    import dask
    from xgboost import dask as dxgb

    features = frame.drop(columns=[target]) if target else frame
    scores = dxgb.inplace_predict(client, model.get_booster(), features)
    predicted, truth = dask.compute(scores, frame[target] if target else None)
    values = np.asarray(predicted, dtype="float64")
    if isinstance(model, XGBClassifier) and values.ndim == 1:
        values = np.column_stack([1 - values, values])
    return values, None if truth is None else np.asarray(truth)


class SnapshotPruning(TrainingCallback):
    """The study's pruner, decided on every worker from the study as it was when the trial started."""

    def __init__(self, study: optuna.Study, key: tuple[str, str], every: int) -> None:
        super().__init__()
        self._finished = study.get_trials(deepcopy=False, states=FINISHED_STATES)
        self._pruner, self._direction = study.pruner, study.direction
        self._key, self._every = key, every
        self._trial: optuna.Trial | None = None

    def before_training(self, model: Any) -> Any:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        replica = optuna.create_study(direction=self._direction, pruner=self._pruner)
        replica.add_trials(self._finished)
        self._trial = replica.ask()
        return model

    def after_iteration(self, model: Any, epoch: int, evals_log: dict) -> bool:
        if (epoch + 1) % self._every or self._trial is None:
            return False
        data, metric = self._key
        self._trial.report(float(evals_log[data][metric][-1]), epoch)
        if self._trial.should_prune():
            model.set_attr(**{PRUNED_AT_ATTR: str(epoch)})
            return True
        return False


def make_objective(client: Any, train, config: PipelineConfig, task: str, n_classes: int, n_train: int):
    """tune's objective on the cluster: each trial fits on part of the train split (a sample of it with
    `tune.sample_rows`), early-stops and is pruned on the rest, as the local engine's objective does."""
    from xgboost import dask as dxgb

    tune, target = config.tune, config.data.target
    if tune.sample_rows and tune.sample_rows < n_train:
        train = train.sample(frac=tune.sample_rows / n_train, random_state=config.split.seed)
        logger.info(
            "tune: trials train on a sample of about {} of {} rows (tune.sample_rows)", tune.sample_rows, n_train
        )
    fit_part, valid_part = tables.split(train, config.split.validation_size, config.split.seed + 1)
    fit_matrix = _matrix(client, fit_part, target)
    valid_matrix = _matrix(client, valid_part, target, ref=fit_matrix)
    metric = eval_metric(tune.metric, task)

    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(trial, tune.search_space)
        every = tune.pruner.report_every
        pruning = [SnapshotPruning(trial.study, ("validation", metric), every)] if tune.pruner.type != "none" else []
        fitted = dxgb.train(
            client,
            {**booster_params(task, params, config.train.fixed_params, n_classes), "eval_metric": metric},
            fit_matrix,
            num_boost_round=tune.max_boosting_rounds,
            evals=[(valid_matrix, "validation")],
            early_stopping_rounds=tune.early_stopping_rounds,
            callbacks=pruning,
            verbose_eval=False,
            coll_cfg=collective(config),
        )
        booster, scores = fitted["booster"], fitted["history"]["validation"][metric]
        if pruning:
            for epoch in range(every - 1, len(scores), every):
                trial.report(float(scores[epoch]), epoch)
            if booster.attr(PRUNED_AT_ATTR) is not None:
                raise optuna.TrialPruned(f"pruned at round {int(booster.attr(PRUNED_AT_ATTR)) + 1}")
        best = int(booster.attr("best_iteration") or len(scores) - 1)
        trial.set_user_attr(BEST_ITERATION_ATTR, best)
        return float(scores[best])

    return objective
