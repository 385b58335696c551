"""train's held-out metrics from a model's predictions, the same on every engine: regression RMSE, MAE and R2;
classification ROC AUC, accuracy, F1 and log loss (logged as `test_<metric>`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)


def test_metrics(y_test, predicted: np.ndarray, task: str) -> dict[str, float]:
    """Held-out metrics of the task from the model's predictions (values, or class probabilities): regression
    RMSE, MAE, R2; classification ROC AUC, accuracy, F1, log loss."""
    if task == "regression":
        return {
            "test_rmse": float(root_mean_squared_error(y_test, predicted)),
            "test_mae": float(mean_absolute_error(y_test, predicted)),
            "test_r2": float(r2_score(y_test, predicted)),
        }
    return classification_metrics(y_test, predicted)


def classification_metrics(y_true: pd.Series, probabilities: np.ndarray) -> dict[str, float]:
    """Classification metrics on held-out data (binary: positive-class probability; multiclass: one-vs-rest)."""
    predicted = probabilities.argmax(axis=1)
    binary = probabilities.shape[1] == 2
    scores = probabilities[:, 1] if binary else probabilities
    return {
        "test_roc_auc": float(roc_auc_score(y_true, scores, multi_class="raise" if binary else "ovr")),
        "test_accuracy": float(accuracy_score(y_true, predicted)),
        "test_f1": float(f1_score(y_true, predicted, average="binary" if binary else "macro")),
        "test_log_loss": float(log_loss(y_true, probabilities)),
    }
