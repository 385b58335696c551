"""tune's objective on the cluster: each trial trains with `xgboost.dask` on every worker.

Pruning on the cluster: XGBoost runs the training callbacks on every worker, and all workers must stop at the same
round. Each trial therefore ships a snapshot of the study's finished trials and the study's own pruner; every
worker replays them in an in-memory study and decides alike from the same (all-reduced) validation scores. The
reports are then written to the shared study, so its pruner and the trial runs see what the local engine records.
A trial pruned this way was judged against the trials finished when it started."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import optuna
import pandas as pd
from loguru import logger
from mlflow.entities import Run
from xgboost.callback import TrainingCallback

from pipeline.config import PipelineConfig
from pipeline.contract import TRAIN_ARTIFACT
from pipeline.data.schema import Schema
from pipeline.data.splitting import validation_split
from pipeline.engines.dask import tables
from pipeline.engines.dask.boosting import (
    booster_params,
    class_weight_table,
    collective,
    matrices,
    release_freed_memory,
)
from pipeline.engines.dask.cluster import cluster_facts, cluster_faults, dask_client
from pipeline.modeling.model import suggest_params
from pipeline.tracking.runs import log_params
from pipeline.tuning.study import BEST_ITERATION_ATTR, FINISHED_STATES, eval_metric

PRUNED_AT_ATTR = "pipeline_pruned_at"


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
        if config.split.method == "time":  # the sample keeps the train split's time order: the latest rows validate
            train = train.map_partitions(pd.DataFrame.sort_index)
        logger.info(
            "tune: trials train on a sample of about {} of {} rows (tune.sample_rows)", tune.sample_rows, n_train
        )
    fit_part, valid_part = validation_split(train, config.split, target, task != "regression")
    weights = class_weight_table(client, config, train, target, n_classes if task != "regression" else 0)
    fit_matrix, valid_matrix = matrices(client, target, fit_part, valid_part, class_weights=weights)
    metric = eval_metric(tune.metric, task)

    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(trial, tune.search_space)
        every = tune.pruner.report_every
        pruning = [SnapshotPruning(trial.study, ("validation", metric), every)] if tune.pruner.type != "none" else []
        with cluster_faults(f"tune's trial {trial.number}", client):
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
        release_freed_memory(client)  # what the trial's matrices freed, before the next trial builds its own
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


@contextmanager
def objective(config: PipelineConfig, schema: Schema, preprocess_run: Run) -> Iterator[Callable[[optuna.Trial], float]]:
    """The trials' objective with the cluster open while the trials run."""
    if config.tune.n_jobs > 1:
        logger.warning("tune.n_jobs {} ignored on engine dask: each trial uses every worker", config.tune.n_jobs)
    if config.tune.threads_per_trial:
        logger.warning("tune.threads_per_trial ignored on engine dask: XGBoost uses each worker's threads")
    if isinstance(config.tune.cv, int):
        logger.warning("tune.cv {} ignored on engine dask: trials validate on the holdout", config.tune.cv)
    if isinstance(config.tune.ensemble, int) and config.tune.ensemble > 1:
        logger.warning(
            "tune.ensemble {} ignored on engine dask: the trials' held-out predictions stay on the cluster; the "
            "final model is the best trial's",
            config.tune.ensemble,
        )
    n_train = int(preprocess_run.data.metrics.get("n_train", 0))
    with dask_client(config.dask) as client:
        train = tables.read_split_on_cluster(preprocess_run, TRAIN_ARTIFACT, schema)
        sampled = config.tune.sample_rows if config.tune.sample_rows and config.tune.sample_rows < n_train else n_train
        log_params({**cluster_facts(client, config.dask), "tune.sample_rows": sampled})  # rows the trials draw on
        yield make_objective(client, train, config, schema.task, len(schema.classes), n_train)
