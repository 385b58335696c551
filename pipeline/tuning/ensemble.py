"""Ensemble selection over the search's trials (Caruana et al., "Ensemble selection from libraries of models",
ICML 2004): the final model as a weighted average of the best trials, chosen greedily, with replacement, by how
their averaged predictions score on the validation rows the trials were scored on (their folds' held-out rows).

Why: the best of a hundred trials by a 5-fold score on a small table is partly the luck of those folds (the
winner's curse); a few trials whose held-out predictions make up for each other's errors average into a better
model than the best alone. Over four public tables and split seeds 1-5 (10 s of tuning), ensembles chosen this way
beat the best trial's bag on every table's mean (docs/benchmarks.md, "Ensemble selection over the trials").

tune keeps the held-out predictions of its best LIBRARY_TRIALS complete trials in memory (only trials this process
ran: a study shared with other workers, or resumed, falls back to the best trial alone when that trial ran
elsewhere), selects, and writes the members with their weights into `ensemble.json`; train fits and averages them
(pipeline/modeling/bagging.py). Predictions are averaged as the model serves them (probabilities, values), while
the merged model averages raw scores: the same for regression with squared error, and a difference far below the
seeds' spread for classification (docs/benchmarks.md, "Bagging the final model").
"""

from __future__ import annotations

import heapq
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
    mean_squared_log_error,
    roc_auc_score,
)

from pipeline.config import TuneConfig

LIBRARY_TRIALS = 20  # the best complete trials whose held-out predictions are kept, the ones selection draws from
AUTO_ROUNDS = 20  # tune.ensemble auto: selection rounds, so weights in steps of 1/20
# tune.ensemble auto stops here (train rows): beyond it a trial's fit costs more than the luck an ensemble removes,
# the size at which train.bag auto stops too.
AUTO_MAX_ROWS = 100_000


def rounds(tune: TuneConfig, rows: int) -> int:
    """Selection rounds for `tune.ensemble`: auto is AUTO_ROUNDS after a search against the clock (tune.timeout_s)
    on a train split of at most AUTO_MAX_ROWS rows, else 1 (the best trial alone, as a count of trials keeps the
    chain's time); none is 1; a number is itself."""
    if tune.ensemble == "none":
        return 1
    if tune.ensemble == "auto":
        return AUTO_ROUNDS if tune.timeout_s is not None and rows <= AUTO_MAX_ROWS else 1
    return int(tune.ensemble)


@dataclass(frozen=True)
class Kept:
    number: int  # the Optuna trial number
    score: float  # its validation score (the study's objective value)
    predicted: np.ndarray  # its held-out predictions, in the order of HeldOut.truth


class HeldOut:
    """The truth of the rows the trials are scored on (every fold's held-out rows, in fold order), their weights
    (train.class_weight), tune.metric and whether it is maximized, the selection `rounds` to run, and the held-out
    predictions of the best `keep` complete trials seen. Trials of parallel threads (tune.n_jobs) add
    concurrently."""

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
        self._heap: list[tuple[float, int, np.ndarray]] = []  # (goodness, -number, ...): the worst kept trial first
        self._lock = threading.Lock()

    def add(self, number: int, score: float, predicted: np.ndarray) -> None:
        entry = (-self._sign * score, -number, predicted.astype(np.float32))  # of equals, the later is worse
        with self._lock:
            if len(self._heap) < self._keep:
                heapq.heappush(self._heap, entry)
            elif entry[:2] > self._heap[0][:2]:
                heapq.heapreplace(self._heap, entry)

    def ranked(self) -> list[Kept]:
        """The kept trials, best first (ties: the earlier trial first)."""
        with self._lock:
            entries = sorted(self._heap, key=lambda entry: (-entry[0], -entry[1]))
        return [Kept(-negated, -self._sign * key, predicted) for key, negated, predicted in entries]


def score(metric: str, truth: np.ndarray, predicted: np.ndarray, weights: np.ndarray | None) -> float:
    """`tune.metric` of predictions (class probabilities, or values) against the truth, as XGBoost's eval metric
    of that name scores a fold (multiclass auc / aucpr: one-vs-rest, macro)."""
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
        return float(scorer(onehot, predicted, sample_weight=weights, average="macro"))
    if metric == "rmse":
        return float(np.sqrt(mean_squared_error(truth, predicted, sample_weight=weights)))
    if metric == "mae":
        return float(mean_absolute_error(truth, predicted, sample_weight=weights))
    if metric == "mape":
        return float(mean_absolute_percentage_error(truth, predicted, sample_weight=weights))
    if metric == "rmsle":
        return float(np.sqrt(mean_squared_log_error(truth, np.clip(predicted, 0, None), sample_weight=weights)))
    raise ValueError(f"ensemble selection: no score for tune.metric {metric!r}")


@dataclass(frozen=True)
class Selection:
    weights: dict[int, float]  # trial number -> weight (summing to 1), in the order first chosen
    score: float  # the ensemble's validation score
    best_score: float  # the best trial's alone, on the same rows


def select(held_out: HeldOut) -> Selection | None:
    """Greedy forward selection with replacement over the kept trials: start from the best, then add, round by
    round, the trial whose addition scores best (a trial chosen k times weighs k / rounds). None: no trial kept."""
    library = held_out.ranked()
    if not library:
        return None

    def of(predicted: np.ndarray) -> float:
        return score(held_out.metric, held_out.truth, predicted, held_out.weights)

    total = library[0].predicted.astype(np.float64)
    chosen = [0]
    for count in range(2, held_out.rounds + 1):
        scores = [of((total + kept.predicted) / count) for kept in library]
        pick = int(np.argmax(scores) if held_out.maximize else np.argmin(scores))
        total += library[pick].predicted
        chosen.append(pick)
    counts: dict[int, int] = {}
    for pick in chosen:
        counts[library[pick].number] = counts.get(library[pick].number, 0) + 1
    weights = {number: count / len(chosen) for number, count in counts.items()}
    return Selection(weights, of(total / len(chosen)), of(library[0].predicted.astype(np.float64)))


def members(selection: Selection, params_of: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """ensemble.json's members: each chosen trial's number, weight and params (n_estimators its round count)."""
    return [
        {"trial": number, "weight": weight, "params": params_of[number]} for number, weight in selection.weights.items()
    ]
