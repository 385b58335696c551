"""Ensemble selection over the search's trials (Caruana et al., "Ensemble selection from libraries of models",
ICML 2004): the final model as a weighted average of the best trials, chosen greedily, with replacement, by how
their averaged predictions score on the validation rows the trials were scored on (their folds' held-out rows).

Why: the best of a hundred trials by a 5-fold score on a small table is partly the luck of those folds (the
winner's curse); a few trials whose held-out predictions make up for each other's errors average into a better
model than the best alone. Over four public tables and split seeds 1-5 (10 s of tuning), ensembles chosen this way
beat the best trial's bag on every table's mean (docs/benchmarks.md, "Ensemble selection over the trials").

tune keeps the held-out predictions of its best LIBRARY_TRIALS complete trials in memory (only trials this process
ran: a study shared with other workers, or resumed, falls back to the best trial alone when that trial ran
elsewhere), selects among those that train can merge with the best (tree boosters of the same intercept,
`merge_key`), and writes the members with their weights into `ensemble.json`; train fits and averages them
(pipeline/modeling/bagging.py). Predictions are averaged as the model serves them (probabilities, values), while
the merged model averages raw scores: the same for regression with squared error, and a difference far below the
seeds' spread for classification (docs/benchmarks.md, "Bagging the final model").
"""

from __future__ import annotations

import heapq
import json
import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    roc_auc_score,
)
from xgboost import XGBModel

from pipeline.config import TuneConfig
from pipeline.contract import AUTO_FINAL_MODEL_MAX_ROWS

LIBRARY_TRIALS = 20  # the best complete trials whose held-out predictions are kept, the ones selection draws from
AUTO_ROUNDS = 20  # tune.ensemble auto: selection rounds, so weights in steps of 1/20


def rounds(tune: TuneConfig, rows: int) -> int:
    """Selection rounds for `tune.ensemble`: auto is AUTO_ROUNDS after a search against the clock (tune.timeout_s)
    on a train split of at most AUTO_FINAL_MODEL_MAX_ROWS rows (where train.bag auto stops too: beyond it a fit
    costs more than the luck an average removes), else 1 (the best trial alone, as a count of trials keeps the
    chain's time); none is 1; a number is itself."""
    if tune.ensemble == "none":
        return 1
    if tune.ensemble == "auto":
        return AUTO_ROUNDS if tune.timeout_s is not None and rows <= AUTO_FINAL_MODEL_MAX_ROWS else 1
    return int(tune.ensemble)


def merge_key(model: XGBModel, params: dict[str, Any], fixed: dict[str, Any]) -> str | None:
    """What two trials must share for train to merge their models into one booster: tree boosters (gbtree) and the
    same intercept (base_score), which XGBoost estimates from the rows, their weights and the objective's settings
    (scale_pos_weight, quantile_alpha, ...): the intercept of the trial's first fold. None: never merged (dart,
    gblinear)."""
    if {**fixed, **params}.get("booster", "gbtree") != "gbtree":
        return None
    return str(json.loads(model.get_booster().save_config())["learner"]["learner_model_param"]["base_score"])


@dataclass(frozen=True)
class Kept:
    number: int  # the Optuna trial number
    score: float  # its validation score (the study's objective value)
    predicted: np.ndarray  # its held-out predictions, in the order of TrialLibrary.truth
    key: str | None  # merge_key: trials are averaged only with trials of the same key


class TrialLibrary:
    """The truth of the rows the trials are scored on (every fold's held-out rows, in fold order), their weights
    (train.class_weight), tune.metric and whether it is maximized, the selection `rounds` to run, and the held-out
    predictions of the best `keep` trials that completed with a finite score. Trials of parallel threads
    (tune.n_jobs) add concurrently."""

    def __init__(
        self,
        truth: np.ndarray,
        weights: np.ndarray | None,
        metric: str,
        maximize: bool,
        rounds: int,
        keep: int = LIBRARY_TRIALS,
    ) -> None:
        self.truth, self.weights, self.metric, self.maximize = truth, weights, metric, maximize
        self.rounds, self._keep = rounds, keep
        self._sign = -1.0 if maximize else 1.0
        self._heap: list[tuple[float, int, np.ndarray, str | None]] = []  # (goodness, -number, ...): worst first
        self._lock = threading.Lock()

    def add(self, number: int, score: float, predicted: np.ndarray, key: str | None) -> None:
        if not math.isfinite(score):  # Optuna fails the trial; a NaN would also block every later replacement
            return
        entry = (-self._sign * score, -number, predicted.astype(np.float32), key)  # of equals, the later is worse
        with self._lock:
            if len(self._heap) < self._keep:
                heapq.heappush(self._heap, entry)
            elif entry[:2] > self._heap[0][:2]:
                heapq.heapreplace(self._heap, entry)

    def ranked(self) -> list[Kept]:
        """The kept trials, best first (ties: the earlier trial first)."""
        with self._lock:
            entries = sorted(self._heap, key=lambda entry: (-entry[0], -entry[1]))
        return [Kept(-negated, -self._sign * key, predicted, merge) for key, negated, predicted, merge in entries]


def score(metric: str, truth: np.ndarray, predicted: np.ndarray, weights: np.ndarray | None) -> float:
    """`tune.metric` of predictions (class probabilities, or values) against the truth, as XGBoost's eval metric
    of that name scores a fold (multiclass auc: one-vs-rest weighted by class shares); aucpr is scikit-learn's
    average precision (one-vs-rest macro for multiclass), within about 0.005 of XGBoost's interpolated aucpr."""
    if metric == "logloss":  # kept as float32: rows sum to 1 within 1e-7, which log_loss warns about
        predicted = predicted / predicted.sum(axis=1, keepdims=True)
        return float(log_loss(truth, predicted, sample_weight=weights, labels=list(range(predicted.shape[1]))))
    if metric == "error":
        return 1.0 - float(accuracy_score(truth, predicted.argmax(axis=1), sample_weight=weights))
    if metric in ("auc", "aucpr"):
        scorer = roc_auc_score if metric == "auc" else average_precision_score
        if predicted.shape[1] == 2:
            return float(scorer(truth, predicted[:, 1], sample_weight=weights))
        onehot = np.eye(predicted.shape[1])[truth.astype(int)]
        average = "weighted" if metric == "auc" else "macro"
        return float(scorer(onehot, predicted, sample_weight=weights, average=average))
    if metric == "rmse":
        return float(np.sqrt(mean_squared_error(truth, predicted, sample_weight=weights)))
    if metric == "mae":
        return float(mean_absolute_error(truth, predicted, sample_weight=weights))
    if metric == "mape":
        return float(mean_absolute_percentage_error(truth, predicted, sample_weight=weights))
    if metric == "rmsle":  # XGBoost takes predictions above -1
        logged = np.log1p(np.clip(predicted, -1 + 1e-6, None)) - np.log1p(truth)
        return float(np.sqrt(np.average(logged**2, weights=weights)))
    raise ValueError(f"ensemble selection: no score for tune.metric {metric!r}")


@dataclass(frozen=True)
class Selection:
    weights: dict[int, float]  # trial number -> weight (summing to 1), in the order first chosen
    score: float  # the ensemble's validation score
    best_score: float  # the first trial's alone, on the same rows


def select(library: TrialLibrary, first: int, allowed: set[int]) -> Selection | None:
    """Greedy forward selection with replacement over the kept trials of `allowed` (the study's complete ones)
    that share the `first` trial's merge key: start from `first` (the study's best), then add, round by round, the
    trial whose addition scores best (a trial chosen k times weighs k / rounds). None: `first` is not kept here (it
    ran in another process or an earlier run)."""
    kept = library.ranked()
    start = next((k for k in kept if k.number == first), None)
    if start is None:
        return None
    candidates = [start] + [
        k for k in kept if k.number != first and k.number in allowed and k.key is not None and k.key == start.key
    ]

    def of(predicted: np.ndarray) -> float:
        return score(library.metric, library.truth, predicted, library.weights)

    total = start.predicted.astype(np.float64)
    chosen = [start.number]
    for count in range(2, library.rounds + 1):
        scores = [of((total + k.predicted) / count) for k in candidates]
        pick = candidates[int(np.argmax(scores) if library.maximize else np.argmin(scores))]
        total += pick.predicted
        chosen.append(pick.number)
    weights = {number: chosen.count(number) / len(chosen) for number in dict.fromkeys(chosen)}
    return Selection(weights, of(total / len(chosen)), of(start.predicted.astype(np.float64)))
