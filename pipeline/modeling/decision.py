"""The decision a classifier makes, stored inside the registered model as `decision.json`: the calibration of its
probabilities and the binary threshold, both learnt from held-out predictions of the train split, never the test
split (config `decision`, and `train.class_weight` for the sample weights).

Held-out predictions: out-of-fold, `decision.folds` models of the tuned params each fitted on the other folds of
the train split and predicting its own fold (stratified folds; with `split.method: time` forward folds, each
predicted by a model of the rows before it, so the first fold has no prediction), as scikit-learn's
`CalibratedClassifierCV(ensemble=False)` does. The engine fits the fold models (`fold_plan` says which rows); this
module turns their predictions into the document `transform.decide` applies, here and inside the served model:

    {"threshold": 0.23 | null, "objective": "f1", "objective_value": 0.61, "calibration": [calibrator, ...] | null,
     "held_out": "<what the held-out predictions were>"}

A calibrator is `{"method": "isotonic", "x": [...], "y": [...]}` or `{"method": "sigmoid", "a": .., "b": ..}`
(binary: one, for the positive class; multiclass: one per class). JSON, no pickle: the model loads it with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from loguru import logger

from pipeline.config import DecisionConfig, PipelineConfig, ThresholdRule
from pipeline.data.transform import decide
from pipeline.errors import ConfigError

DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class HeldOut:
    """Predictions of rows by models not fitted on them: class indexes and probabilities (n x k, model order)."""

    truth: np.ndarray
    probabilities: np.ndarray
    what: str


def check_for_task(config: PipelineConfig, task: str) -> None:
    """A ConfigError naming the key when `decision` or `train.class_weight` asks what the task cannot do."""
    decision = config.decision
    if task != "binary" and decision.threshold != DEFAULT_THRESHOLD:
        raise ConfigError(f"decision.threshold applies to binary tasks only; this table's task is {task} (use 0.5)")
    if task == "regression" and decision.calibration != "none":
        raise ConfigError("decision.calibration applies to classification only; this table's task is regression")
    if task == "regression" and config.train.class_weight != "none":
        raise ConfigError("train.class_weight applies to classification only; this table's task is regression")


def class_weights(truth: np.ndarray, n_classes: int) -> dict[int, float]:
    """Balanced weights per class index: rows / (classes x rows of the class), scikit-learn's 'balanced'."""
    return weights_of_counts(dict(enumerate(np.bincount(truth.astype("int64"), minlength=n_classes).tolist())))


def weights_of_counts(counts: dict[int, int]) -> dict[int, float]:
    """Balanced weights per class index from the rows of each class."""
    present = {int(k): int(count) for k, count in counts.items() if count}
    total = sum(present.values())
    return {k: total / (len(counts) * count) for k, count in present.items()}


def sample_weights(config: PipelineConfig, truth: np.ndarray, n_classes: int, table: dict[int, float] | None = None):
    """Each row's weight under `train.class_weight` (None when rows count once), by `table` or the rows' own."""
    if config.train.class_weight == "none" or n_classes < 2:
        return None
    table = table or class_weights(truth, n_classes)
    return np.vectorize(table.__getitem__, otypes=["float64"])(truth.astype("int64"))


def fold_plan(config: PipelineConfig, truth: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rows to fit, rows to predict) per fold of the train split, as positions: stratified and seeded, or forward
    folds in the split's time order (the train split is stored sorted by time)."""
    from sklearn.model_selection import StratifiedKFold, TimeSeriesSplit

    folds = config.decision.folds
    if config.split.method == "time":
        if len(truth) <= folds:
            raise ConfigError(f"decision.folds {folds}: the train split holds only {len(truth)} rows; lower it")
        # A fold whose earlier rows lack a class cannot fit a classifier of every class: it stays unpredicted.
        n_classes = len(np.unique(truth))
        plan = [
            (fit, predict)
            for fit, predict in TimeSeriesSplit(n_splits=folds).split(truth)
            if len(np.unique(truth[fit])) == n_classes
        ]
        if not plan:
            raise ConfigError(
                f"decision.folds {folds}: no forward fold of the train split holds rows of every class before it; "
                "lower decision.folds, or set decision.threshold to a number and calibration: none"
            )
        return plan
    smallest = int(np.bincount(truth.astype("int64")).min(initial=len(truth)))
    if smallest < folds:
        raise ConfigError(
            f"decision.folds {folds}: the train split holds only {smallest} row(s) of a class, too few for "
            f"{folds} folds; lower decision.folds or set decision.threshold to a number and calibration: none"
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=config.split.seed)
    return list(splitter.split(np.zeros(len(truth)), truth))


def describe_plan(config: PipelineConfig, n_rows: int) -> str:
    kind = "forward folds in time order" if config.split.method == "time" else "stratified folds"
    return f"out-of-fold predictions of the train split ({config.decision.folds} {kind}, {n_rows} rows predicted)"


# --- the threshold -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cuts:
    """Every distinct way to cut held-out scores: cut j answers positive for the j highest distinct scores
    (j = 0: none), with its threshold (half-way to the next lower score) and confusion counts."""

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    positives: int
    negatives: int

    @property
    def fn(self) -> np.ndarray:
        return self.positives - self.tp

    @property
    def precision(self) -> np.ndarray:
        answered = self.tp + self.fp
        return np.divide(self.tp, answered, out=np.zeros(len(answered)), where=answered > 0)

    @property
    def recall(self) -> np.ndarray:
        return self.tp / max(self.positives, 1)

    @property
    def specificity(self) -> np.ndarray:
        return (self.negatives - self.fp) / max(self.negatives, 1)


def cuts(is_positive: np.ndarray, scores: np.ndarray) -> Cuts:
    """All cuts of `scores` (positive-class probabilities) against the truth `is_positive`."""
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], is_positive[order].astype("int64")
    last_of_value = np.r_[ranked[1:] != ranked[:-1], True]  # ties are answered together
    tp = np.r_[0, np.cumsum(hits)[last_of_value]]
    fp = np.r_[0, np.cumsum(1 - hits)[last_of_value]]
    distinct = ranked[last_of_value]
    below = np.r_[distinct[1:], 0.0]
    halfway = (distinct + below) / 2
    halfway = np.where(halfway > below, halfway, np.nextafter(below, 2.0))  # adjacent floats: just above the lower
    halfway[-1] = distinct[-1] / 2 if distinct[-1] > 0 else 0.0  # every row positive
    thresholds = np.r_[(1.0 + distinct[0]) / 2 if distinct[0] < 1 else np.nextafter(1.0, 2.0), halfway]
    return Cuts(thresholds, tp, fp, int(hits.sum()), int(len(hits) - hits.sum()))


def objective_values(rule: ThresholdRule, found: Cuts, n_rows: int) -> tuple[str, np.ndarray, np.ndarray]:
    """The objective's name, its value per cut, and which cuts are allowed (the constraint of the *_at_least
    rules). Higher is better, except expected_cost."""
    everywhere = np.ones(len(found.tp), dtype=bool)
    if rule.optimize == "f1":
        denominator = 2 * found.tp + found.fp + found.fn
        f1 = np.divide(2 * found.tp, denominator, out=np.zeros(len(found.tp)), where=denominator > 0)
        return "f1", f1, everywhere
    if rule.optimize == "balanced_accuracy":
        return "balanced_accuracy", (found.recall + found.specificity) / 2, everywhere
    if rule.optimize == "youden":
        return "youden", found.recall + found.specificity - 1, everywhere
    if rule.cost is not None:
        cost = (found.fp * rule.cost.false_positive + found.fn * rule.cost.false_negative) / n_rows
        return "expected_cost", cost, everywhere
    if rule.precision_at_least is not None:
        return "recall", found.recall, (found.tp + found.fp > 0) & (found.precision >= rule.precision_at_least)
    assert rule.recall_at_least is not None  # the config holds exactly one rule
    return "precision", found.precision, (found.tp > 0) & (found.recall >= rule.recall_at_least)


def describe_rule(rule: ThresholdRule) -> str:
    if rule.optimize:
        return rule.optimize
    if rule.cost is not None:
        return (
            f"expected_cost (false_positive {rule.cost.false_positive:g}, false_negative {rule.cost.false_negative:g})"
        )
    if rule.precision_at_least is not None:
        return f"recall at precision >= {rule.precision_at_least:g}"
    return f"precision at recall >= {rule.recall_at_least:g}"


def choose_threshold(rule: ThresholdRule, is_positive: np.ndarray, scores: np.ndarray) -> tuple[float, str, float]:
    """The threshold the rule picks on held-out scores, the objective's name and its value there. Of equally good
    cuts, the one answering positive for the fewest rows."""
    found = cuts(is_positive, scores)
    name, values, allowed = objective_values(rule, found, len(scores))
    if not allowed.any():
        best = "precision" if rule.precision_at_least is not None else "recall"
        reached = (found.precision if best == "precision" else found.recall)[1:].max(initial=0.0)
        raise ConfigError(
            f"decision.threshold: no threshold reaches {describe_rule(rule).split(' at ')[1]} on the held-out "
            f"predictions (the best {best} there: {reached:.3f}); lower the constraint"
        )
    ranked = np.where(allowed, values if name != "expected_cost" else -values, -np.inf)
    chosen = int(np.argmax(ranked))
    if chosen == 0:
        logger.warning(
            "decision.threshold {}: the best threshold answers no held-out row positive (above every probability)",
            describe_rule(rule),
        )
    return float(found.thresholds[chosen]), name, float(values[chosen])


# --- calibration ---------------------------------------------------------------------------------------------------


def fit_calibrator(method: str, is_class: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """One class's calibrator, fitted on held-out scores of that class against the rest."""
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, is_class)
        return {"method": method, "x": fitted.X_thresholds_.tolist(), "y": fitted.y_thresholds_.tolist()}
    from sklearn.linear_model import LogisticRegression

    clipped = np.clip(scores, 1e-12, 1 - 1e-12)
    log_odds = np.log(clipped / (1 - clipped)).reshape(-1, 1)
    fitted = LogisticRegression(C=1e6).fit(log_odds, is_class.astype("int64"))
    return {"method": method, "a": float(fitted.coef_[0, 0]), "b": float(fitted.intercept_[0])}


def check_held_out(held_out: HeldOut) -> None:
    """Every class must be among the held-out rows, and not be all of them: else no calibrator or threshold can be
    fitted (a class seen only in the earliest rows of a time split, a tiny table)."""
    present = np.bincount(held_out.truth.astype("int64"), minlength=held_out.probabilities.shape[1])
    if (present == 0).any() or (present == len(held_out.truth)).any():
        raise ConfigError(
            f"decision.folds: the {held_out.what} hold rows of {int((present > 0).sum())} of the "
            f"{len(present)} classes; calibration and a threshold rule need every class (lower decision.folds, "
            "or set decision.threshold to a number and decision.calibration: none)"
        )


def fit_calibration(method: str, held_out: HeldOut) -> list[dict[str, Any]] | None:
    if method == "none":
        return None
    n_classes = held_out.probabilities.shape[1]
    if n_classes == 2:
        return [fit_calibrator(method, held_out.truth == 1, held_out.probabilities[:, 1])]
    return [fit_calibrator(method, held_out.truth == k, held_out.probabilities[:, k]) for k in range(n_classes)]


# --- the document --------------------------------------------------------------------------------------------------


def fit_decision(decision: DecisionConfig, task: str, held_out: HeldOut | None) -> dict[str, Any]:
    """The model's decision document: calibrators fitted on the held-out predictions, then the threshold chosen on
    the calibrated ones (the probabilities the model serves), or the configured number."""
    if held_out is not None:
        check_held_out(held_out)
    calibration = fit_calibration(decision.calibration, held_out) if held_out is not None else None
    document: dict[str, Any] = {
        "threshold": None,
        "objective": None,
        "objective_metric": None,
        "objective_value": None,
        "calibration": calibration,
        "held_out": held_out.what if held_out is not None else None,
    }
    if task != "binary":
        return document
    if isinstance(decision.threshold, ThresholdRule):
        assert held_out is not None, "a threshold rule needs held-out predictions"  # DecisionConfig.needs_held_out
        calibrated, _ = decide(held_out.probabilities, {"calibration": calibration})
        threshold, name, value = choose_threshold(decision.threshold, held_out.truth == 1, calibrated[:, 1])
        document.update(
            threshold=threshold,
            objective=describe_rule(decision.threshold),
            objective_metric=name,
            objective_value=value,
        )
        logger.info("decision: threshold {:.4f} ({} {:.4f} on the {})", threshold, name, value, held_out.what)
    elif decision.threshold != DEFAULT_THRESHOLD:
        document.update(threshold=float(decision.threshold), objective="fixed")
    else:  # 0.5: the most probable label, as XGBoost answers (a probability of exactly 0.5 is the negative label)
        document.update(objective="fixed")
    return document


def params_and_metrics(document: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
    """What train logs of the decision: params decision.threshold, decision.objective, decision.calibration, and
    the objective's value on the held-out predictions as metric `held_out_<objective>`."""
    params: dict[str, Any] = {
        "decision.calibration": (document["calibration"] or [{"method": "none"}])[0]["method"],
    }
    if document["objective"] is not None:  # binary
        threshold = document["threshold"] if document["threshold"] is not None else DEFAULT_THRESHOLD
        params.update({"decision.threshold": repr(float(threshold)), "decision.objective": document["objective"]})
    metrics = {}
    if document.get("objective_metric"):
        metrics[f"held_out_{document['objective_metric']}"] = float(document["objective_value"])
    return params, metrics


def describe(document: dict[str, Any] | None) -> str:
    """One sentence for the version's description and the run note: a binary model's threshold (0.5 included), and
    calibration ("" for an uncalibrated multiclass or regression model)."""
    if not document:
        return ""
    parts = []
    if document.get("objective") == "fixed" and document.get("threshold") is None:
        parts.append(f"answers the most probable label (decision.threshold {DEFAULT_THRESHOLD:g})")
    elif document.get("threshold") is not None and document.get("objective") != "fixed":
        parts.append(
            f"answers the positive label at probability >= {document['threshold']:.4f} (chosen for "
            f"{document['objective']}: {document['objective_value']:.4f} on {document['held_out']})"
        )
    elif document.get("threshold") is not None and document["threshold"] != DEFAULT_THRESHOLD:
        parts.append(f"answers the positive label at probability >= {document['threshold']:.4f} (decision.threshold)")
    if document.get("calibration"):
        parts.append(f"serves {document['calibration'][0]['method']}-calibrated probabilities")
    return ("Decision: " + "; ".join(parts) + ".") if parts else ""
