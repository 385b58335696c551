"""Held-out metrics from a model's predictions, the same on every engine: train's `test_<metric>` (regression RMSE,
MAE and R2; classification ROC AUC, accuracy, F1, log loss, Brier score, and binary average precision) and the
probability metrics evaluate adds to `mlflow.models.evaluate`'s (`brier_score`, `average_precision`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from pipeline.data.transform import decide


def test_metrics(y_test, predicted: np.ndarray, task: str, decision: dict[str, Any] | None = None) -> dict[str, float]:
    """Held-out metrics of the task from the model's predictions (values, or class probabilities as XGBoost gives
    them): regression RMSE, MAE, R2; classification through the model's `decision` (calibration, threshold)."""
    if task == "regression":
        return {
            "test_rmse": float(root_mean_squared_error(y_test, predicted)),
            "test_mae": float(mean_absolute_error(y_test, predicted)),
            "test_r2": float(r2_score(y_test, predicted)),
        }
    probabilities, chosen = decide(predicted, decision)
    return classification_metrics(np.asarray(y_test), probabilities, chosen)


def classification_metrics(y_true: np.ndarray, probabilities: np.ndarray, chosen: np.ndarray) -> dict[str, float]:
    """Classification metrics on held-out data (class indexes): ROC AUC (binary: of the positive class; multiclass:
    one-vs-rest), log loss and the Brier score of the probabilities, accuracy and F1 of the answered classes."""
    binary = probabilities.shape[1] == 2
    scores = probabilities[:, 1] if binary else probabilities
    metrics = {
        "test_roc_auc": float(roc_auc_score(y_true, scores, multi_class="raise" if binary else "ovr")),
        "test_accuracy": float(accuracy_score(y_true, chosen)),
        "test_f1": float(f1_score(y_true, chosen, average="binary" if binary else "macro")),
        "test_log_loss": float(log_loss(y_true, probabilities, labels=list(range(probabilities.shape[1])))),
    }
    return {**metrics, **{f"test_{name}": value for name, value in probability_metrics(y_true, probabilities).items()}}


def probability_metrics(y_true: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """`brier_score` (binary: of the positive class; multiclass: the mean over classes of each class against the
    rest) and, binary, `average_precision` (the area under the precision-recall curve, as scikit-learn sums it)."""
    truth = np.asarray(y_true).astype("int64")
    one_hot = np.eye(probabilities.shape[1])[truth]
    if probabilities.shape[1] == 2:
        return {
            "brier_score": float(np.mean((probabilities[:, 1] - one_hot[:, 1]) ** 2)),
            "average_precision": float(average_precision_score(truth == 1, probabilities[:, 1])),
        }
    return {"brier_score": float(np.mean((probabilities - one_hot) ** 2))}
