"""The model card (pipeline/modeling/card.py): the bootstrap interval of the headline metric, and what the card
says of the data, the features, the decision and how to rebuild the version."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pipeline.data.schema import Schema
from pipeline.modeling import card


def facts(**changes) -> card.CardFacts:
    schema = Schema(
        task="binary",
        target="churned",
        columns={"balance": "numeric", "region": "categorical"},
        classes=["no", "yes"],
        positive_class="yes",
    )
    base = dict(
        model_name="churn-xgb",
        version="7",
        intended_use="Retention offers; not for credit decisions.",
        schema=schema,
        preprocess_params={
            "data.source": "postgresql://app:***@db/crm",
            "split.method": "time",
            "split.seed": "42",
            "split.train_end": "2025-06-30T00:00:00",
            "split.test_start": "2025-07-01T00:00:00",
            "data.suspect_features": "refund_amount",
            "data.leakage.action": "warn",
            "data.date_range.signup_date": "2024-01-01 to 2025-09-30",
        },
        preprocess_metrics={"n_rows": 5000.0, "n_train": 4000.0, "n_test": 1000.0},
        data_digest="abc123",
        tuned_params={"max_depth": 4, "n_estimators": 120},
        test_metrics={"test_roc_auc": 0.91, "test_f1": 0.5},
        headline="test_roc_auc",
        interval=(0.88, 0.94),
        decision={"threshold": 0.23, "objective": "f1", "calibration": [{"method": "isotonic"}], "held_out": "oof"},
        runs={"train": "t1", "tune": "u1", "preprocess": "p1"},
    )
    return card.CardFacts(**{**base, **changes})


def test_the_card_says_what_the_model_is_on_what_data_how_good_and_how_to_rebuild_it():
    text = card.render(facts())
    for said in (
        "# Model card: churn-xgb version 7",
        "Retention offers; not for credit decisions.",
        "`postgresql://app:***@db/crm`",  # the source as preprocess logged it: masked
        "Rows: 5,000 (4,000 train, 1,000 test); split `time`",
        "trained on rows up to 2025-06-30T00:00:00, tested on rows from 2025-07-01T00:00:00",
        "**Leakage warning**: refund_amount",
        "- categorical (1): `region`",
        "| `max_depth` | `4` |",
        "`test_roc_auc` 0.9100 (95% bootstrap interval 0.8800 to 0.9400)",
        "the positive label at probability >= 0.2300 (f1)",
        "Probabilities calibrated (isotonic) on oof",
        "`python -m pipeline reproduce --model churn-xgb --version 7`",
        "- Dates in the table: `signup_date` 2024-01-01 to 2025-09-30.",
        "- train: [`t1`](#/runs/t1) (`runs:/t1`)",
        "- preprocess: [`p1`](#/runs/p1) (`runs:/p1`)",
    ):
        assert said in text, said
    assert "Not stated (set `registry.description`" in card.render(facts(intended_use=None))
    gates = ["- Gate `roc_auc` >= 0.9: 0.9100, passed."]
    evaluated = card.with_evaluation(text, "promoted", "passed roc_auc.", ["| metric | challenger | champion |"], gates)
    assert evaluated.startswith(text.rstrip()) and "## Evaluation" in evaluated and "**promoted**" in evaluated
    assert evaluated.index("**promoted**") < evaluated.index(gates[0]) < evaluated.index("| metric | challenger")


def test_the_card_says_what_the_model_averages():
    assert "The model is the average" not in card.render(facts())  # one fit: nothing to say
    assert "The model is the average of 10 fits of these params (train.bag)." in card.render(facts(fits=10))
    text = card.render(facts(fits=20, trial_weights=[0.55, 0.3, 0.15]))
    assert "the weighted average of 20 fits of 3 trials (weights 0.55, 0.30, 0.15;" in text
    assert text.index("weighted average") < text.index("| `max_depth` | `4` |")  # above the best trial's table


def test_the_bootstrap_interval_brackets_the_test_metric():
    rng = np.random.default_rng(0)
    truth = (rng.random(2000) < 0.3).astype(int)
    positive = np.clip(0.3 + 0.3 * (truth - 0.3) + rng.normal(0, 0.2, 2000), 0, 1)
    probabilities = np.column_stack([1 - positive, positive])
    low, high = card.bootstrap_interval(truth, probabilities, "binary", None)
    assert low < roc_auc_score(truth, positive) < high and 0.01 < high - low < 0.1
    values = rng.normal(size=500)
    low, high = card.bootstrap_interval(values + rng.normal(0, 0.5, 500), values, "regression", None)
    assert low < 0.5 < high  # RMSE of noise with spread 0.5
    assert card.bootstrap_interval(np.zeros(50, dtype=int), probabilities[:50], "binary", None) is None


@pytest.mark.parametrize("rows", [60_000])
def test_a_large_test_split_is_resampled_from_a_bounded_sample(rows):
    rng = np.random.default_rng(1)
    truth = (rng.random(rows) < 0.5).astype(int)
    positive = np.clip(0.5 + 0.2 * (truth - 0.5) + rng.normal(0, 0.2, rows), 0, 1)
    low, high = card.bootstrap_interval(truth, np.column_stack([1 - positive, positive]), "binary", None)
    assert low < roc_auc_score(truth, positive) < high
