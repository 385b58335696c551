"""Tables as users have them: text labels, a chosen positive class, dates and gaps. The chain runs in-process with
few trials; the tests check that everything a user sees (schema, params, evaluation, predictions, the served
model) speaks the target's own labels, and that the model answers raw rows."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline import cli
from pipeline.contract import STEP_TAG
from pipeline.steps.chain import run_chain
from tests.helpers import DEFAULT_CONFIG, small_config_with

pytestmark = pytest.mark.heavy

SPECIES = ("Adelie", "Chinstrap", "Gentoo penguin")


def penguins(rows: int, seed: int) -> pd.DataFrame:
    """A penguin-like table: text target with a space in a label, a text category with gaps, numbers with gaps, an
    ISO date column and an id-like tag column."""
    rng = np.random.default_rng(seed)
    species = rng.choice(SPECIES, rows)
    bill = np.select([species == "Adelie", species == "Chinstrap"], [38.0, 48.0], 47.0) + rng.normal(0, 1.5, rows)
    mass = np.where(species == "Gentoo penguin", 5000.0, 3700.0) + rng.normal(0, 250, rows)
    island = np.where(species == "Gentoo penguin", "Biscoe", rng.choice(["Dream", "Torgersen"], rows)).astype(object)
    observed = pd.Timestamp("2007-11-01") + pd.to_timedelta(rng.integers(0, 900, rows), unit="D")
    frame = pd.DataFrame(
        {
            "tag": [f"N{i}A{rng.integers(9)}" for i in range(rows)],
            "island": island,
            "bill_length_mm": bill.round(1),
            "body_mass_g": mass.round(),
            "observed": observed.strftime("%Y-%m-%d"),
            "species": species,
        }
    )
    frame.loc[rng.random(rows) < 0.05, "bill_length_mm"] = np.nan
    frame.loc[rng.random(rows) < 0.05, "island"] = None
    return frame


def schema_of(run_id: str) -> dict:
    return json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/data/schema.json"))


def test_text_labels_dates_and_gaps_from_table_to_answer(client, tmp_path):
    source = tmp_path / "penguins.csv"
    penguins(240, seed=1).to_csv(source, index=False)
    config = small_config_with(
        {
            "data.source": str(source),
            "data.target": "species",
            "registry.model_name": "penguins",
            "evaluate.multiclass.thresholds": {},
        }
    )
    chain = run_chain(config)

    preprocess = client.get_run(chain.step("preprocess").run_id)
    schema = schema_of(preprocess.info.run_id)
    assert schema["task"] == "multiclass" and schema["classes"] == list(SPECIES)
    assert json.loads(preprocess.data.params["data.classes"]) == list(SPECIES)
    assert schema["datetime_columns"] == {"observed": ["year", "month", "day", "day_of_week", "day_of_year"]}
    assert "observed_month" in schema["columns"] and "observed" not in schema["columns"]
    assert schema["report"]["id_like"] == ["tag"] and schema["ignored_inputs"] == ["tag"]

    evaluate_run = client.get_run(chain.step("evaluate").run_id)
    assert evaluate_run.data.metrics["accuracy_score"] > 0.9
    per_class = mlflow.artifacts.load_text(f"runs:/{evaluate_run.info.run_id}/per_class_metrics.csv")
    assert "Gentoo penguin" in per_class  # the evaluator's tables speak the labels, not class indexes

    fresh = penguins(30, seed=2).drop(columns=["species"])
    fresh.loc[0, ["observed", "body_mass_g"]] = None
    fresh.to_csv(tmp_path / "fresh.csv", index=False)
    assert (
        cli.main(
            [
                "predict",
                "--config",
                str(DEFAULT_CONFIG),
                "--set",
                "registry.model_name=penguins",
                "--input",
                str(tmp_path / "fresh.csv"),
                "--output",
                str(tmp_path / "out.csv"),
            ]
        )
        == 0
    )
    scored = pd.read_csv(tmp_path / "out.csv")
    assert list(scored.columns) == [
        *fresh.columns,
        "prediction",
        "probability_Adelie",
        "probability_Chinstrap",
        "probability_Gentoo_penguin",
    ]
    assert set(scored["prediction"]) <= set(SPECIES) and scored["prediction"].nunique() > 1
    loaded = mlflow.pyfunc.load_model("models:/penguins@champion").predict(fresh)
    assert loaded["prediction"].tolist() == scored["prediction"].tolist()
    assert loaded["probability_Gentoo_penguin"].to_numpy() == pytest.approx(
        scored["probability_Gentoo_penguin"].to_numpy(), abs=1e-6
    )


def churners(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    calls = rng.poisson(2, rows)
    status = np.where((calls > 2) ^ (rng.random(rows) < 0.15), "churned", "stayed")
    return pd.DataFrame({"calls": calls, "spend": rng.normal(50, 10, rows).round(2), "status": status})


def test_the_positive_class_is_the_one_configured(client, tmp_path):
    source = tmp_path / "churners.csv"
    churners(300, seed=4).to_csv(source, index=False)
    config = small_config_with(
        {
            "data.source": str(source),
            "data.target": "status",
            "data.positive_class": "churned",
            "registry.model_name": "churners",
            "evaluate.binary.thresholds": {},
        }
    )
    chain = run_chain(config)
    schema = schema_of(chain.step("preprocess").run_id)
    assert schema["classes"] == ["stayed", "churned"] and schema["positive_class"] == "churned"
    # train scores the positive class's probability; evaluate, given pos_label, must find the same ROC AUC (an
    # evaluator taking the other class for positive would report 1 - AUC).
    train_auc = chain.step("train").metrics["test_roc_auc"]
    assert train_auc > 0.7
    evaluated = client.get_run(chain.step("evaluate").run_id).data.metrics
    assert evaluated["roc_auc"] == pytest.approx(train_auc, abs=1e-6)
    assert evaluated["log_loss"] == pytest.approx(chain.step("train").metrics["test_log_loss"], abs=1e-5)
    answer = mlflow.pyfunc.load_model("models:/churners/1").predict(churners(20, seed=5).drop(columns=["status"]))
    assert list(answer.columns) == ["prediction", "probability_stayed", "probability_churned"]
    assert (answer["prediction"] == "churned").tolist() == (answer["probability_churned"] > 0.5).tolist()


@pytest.mark.parametrize(("labels", "classes"), [((-1, 1), [-1, 1]), ((1, 2), [2, 1]), ((False, True), [False, True])])
def test_numeric_and_boolean_labels_come_back_as_they_were(client, tmp_path, labels, classes):
    frame = churners(200, seed=6)
    frame["status"] = np.where(frame["status"] == "churned", labels[1], labels[0])
    frame.to_csv(tmp_path / "rows.csv", index=False)
    config = small_config_with(
        {
            "data.source": str(tmp_path / "rows.csv"),
            "data.target": "status",
            "registry.model_name": "numeric",
            "evaluate.binary.thresholds": {},
            "tune.n_trials": 1,
        }
    )
    chain = run_chain(config)
    assert schema_of(chain.step("preprocess").run_id)["classes"] == classes
    answer = mlflow.pyfunc.load_model("models:/numeric/1").predict(frame.drop(columns=["status"]).head(30))
    assert set(answer["prediction"].tolist()) <= set(labels)
    assert list(answer.columns)[1:] == [f"probability_{label}" for label in classes]
    assert client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'evaluate'")[0].data.metrics["roc_auc"] > 0.7


def prices(rows: int, seed: int) -> pd.DataFrame:
    """A price table stored sorted by its price, with a row number 1..n (which alone gives the price away) and some
    prices empty."""
    rng = np.random.default_rng(seed)
    carat = rng.uniform(0.2, 3.0, rows)
    frame = pd.DataFrame({"carat": carat.round(2), "cut": rng.choice(["Fair", "Good", "Ideal"], rows)})
    frame["price"] = (carat * 4000 + rng.normal(0, 1500, rows)).round()
    frame = frame.sort_values("price", ignore_index=True)
    frame.insert(0, "row", np.arange(1, rows + 1))
    frame.loc[::25, "price"] = np.nan
    return frame


def test_a_row_number_is_dropped_and_rows_without_a_target_are_left_out(client, tmp_path):
    source = tmp_path / "prices.csv"
    table = prices(300, seed=7)
    table.to_csv(source, index=False)
    config = small_config_with(
        {
            "data.source": str(source),
            "data.target": "price",
            "registry.model_name": "prices",
            "evaluate.regression.thresholds": {},
        }
    )
    chain = run_chain(config)

    preprocess = client.get_run(chain.step("preprocess").run_id)
    schema = schema_of(preprocess.info.run_id)
    assert schema["report"]["row_number"] == ["row"] and "row" not in schema["columns"]
    assert schema["ignored_inputs"] == ["row"]
    assert preprocess.data.params["data.row_numbers"] == "row"
    assert preprocess.data.metrics["n_rows_no_target"] == 12 and preprocess.data.metrics["n_rows"] == 288
    note = preprocess.data.tags["mlflow.note.content"]
    assert "Left out 12 rows (4.0%) whose target `price` is empty (data.missing_target: drop)." in note
    assert "Dropped as row numbers (unique integers growing with the file's row order" in note and ": row;" in note
    # The test score is what carat allows (about 0.8), not the near-perfect one the row number would give.
    assert 0.5 < chain.step("train").metrics["test_r2"] < 0.95

    rows = table.drop(columns=["price"]).head(20)
    model = mlflow.pyfunc.load_model("models:/prices/1")
    with_row, without_row = model.predict(rows), model.predict(rows.drop(columns=["row"]))
    pd.testing.assert_frame_equal(with_row, without_row)  # the row number is accepted and ignored, not required
