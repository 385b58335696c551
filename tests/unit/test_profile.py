"""The reference profile and a batch's drift from it (pipeline/modeling/profile.py): PSI against a hand-computed
case, unseen categories and missing values, counting chunk by chunk, the verdict and its minimum batch size."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.modeling import profile

SCHEMA = {
    "task": "binary",
    "target": "churned",
    "columns": {"balance": "numeric", "region": "categorical", "signup_date_year": "numeric", "ratio": "numeric"},
    "inputs": {"balance": "numeric", "region": "text", "signup_date": "datetime", "customer_id": "text"},
    "ignored_inputs": ["customer_id"],
    "classes": ["no", "yes"],
    "positive_class": "yes",
}


def training(rows: int = 20_000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training model inputs (as the train split holds them) and a test-split answer."""
    rng = np.random.default_rng(seed)
    balance = rng.lognormal(3, 1, rows)
    balance[rng.random(rows) < 0.05] = np.nan
    region = pd.Categorical(rng.choice(["north", "south", "east", "west"], rows, p=[0.1, 0.3, 0.3, 0.3]))
    frame = pd.DataFrame({"balance": balance, "region": region, "signup_date_year": 2020.0, "ratio": balance / 2})
    answer = pd.DataFrame({"prediction": "no", "probability_no": 0.0, "probability_yes": rng.beta(1, 8, 4000)})
    answer["probability_no"] = 1 - answer["probability_yes"]
    return frame, answer


def batch_like(rows: int, seed: int, shift: float = 0.0, north: float = 0.1) -> pd.DataFrame:
    """Raw rows as a caller sends them (text categories, the date, the id), scored: with the answer columns."""
    rng = np.random.default_rng(seed)
    balance = rng.lognormal(3, 1, rows)
    balance[rng.random(rows) < 0.05] = np.nan
    others = (1 - north) / 3
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(rows)],
            "balance": balance + shift * np.nanstd(balance),
            "region": rng.choice(["north", "south", "east", "west"], rows, p=[north, others, others, others]),
            "signup_date": "2024-01-01",
            "probability_yes": rng.beta(1, 8, rows),
        }
    )
    frame["prediction"] = np.where(frame["probability_yes"] >= 0.5, "yes", "no")
    return frame


@pytest.fixture(scope="module")
def reference() -> dict:
    frame, answer = training()
    return profile.profile(frame, SCHEMA, answer)


def test_the_profile_covers_raw_inputs_the_model_reads_as_they_are(reference):
    # Not the date's part (callers send the date, and every new batch is later), not a hook's column (callers do
    # not send it), not an ignored id.
    assert set(reference["features"]) == {"balance", "region"}
    balance = reference["features"]["balance"]
    assert len(balance["edges"]) == 9 and sum(balance["shares"]) == pytest.approx(1.0)
    assert balance["shares"] == pytest.approx([0.1] * 10, abs=0.002) and balance["missing"] == pytest.approx(
        0.05, abs=0.01
    )
    region = reference["features"]["region"]
    assert dict(zip(region["categories"], region["shares"], strict=True))["north"] == pytest.approx(0.1, abs=0.01)
    assert reference["output"]["name"] == "probability_yes" and reference["output"]["kind"] == "numeric"


def test_psi_of_a_hand_computed_case():
    expected, actual = np.array([0.5, 0.3, 0.2, 0.0]), np.array([0.4, 0.4, 0.1, 0.1])
    by_hand = (
        (0.4 - 0.5) * math.log(0.4 / 0.5)
        + (0.4 - 0.3) * math.log(0.4 / 0.3)
        + (0.1 - 0.2) * math.log(0.1 / 0.2)
        + (0.1 - 1e-4) * math.log(0.1 / 1e-4)  # an empty reference bin counts as EPSILON
    )
    assert profile.psi(expected, actual) == pytest.approx(by_hand, rel=1e-12)
    assert profile.psi(expected, expected) == 0.0


def test_a_batch_from_the_training_distribution_does_not_drift_and_a_shifted_one_does(reference):
    same = profile.compare(profile.Tally(reference).add(batch_like(10_000, 1), SCHEMA), 0.1, 0.25, 500)
    assert same["verdict"] == "ok" and max(entry["psi"] for entry in same["columns"].values()) < 0.02
    moved = batch_like(10_000, 2, shift=0.5, north=0.4)
    report = profile.compare(profile.Tally(reference).add(moved, SCHEMA), 0.1, 0.25, 500)
    assert report["verdict"] == "alert" and report["alerted"] == ["balance", "region"]
    assert report["columns"]["region"]["psi"] > 0.25 and report["columns"]["balance"]["psi"] > 0.25


def test_unseen_categories_and_missing_values_have_bins_of_their_own(reference):
    rows = batch_like(2000, 3)
    rows.loc[:599, "region"] = "atlantis"
    rows.loc[600:999, "region"] = None
    report = profile.compare(profile.Tally(reference).add(rows, SCHEMA), 0.1, 0.25, 500)
    region = report["columns"]["region"]
    assert region["unseen_share"] == pytest.approx(0.3) and region["unseen_examples"] == ["atlantis"]
    assert region["missing_batch"] == pytest.approx(0.2) and region["missing_reference"] == 0.0
    assert region["level"] == "alert" and "region" in report["alerted"]


def test_counting_chunk_by_chunk_or_merging_partitions_gives_the_whole_batchs_counts(reference):
    rows = batch_like(3000, 4, shift=0.3)
    whole = profile.compare(profile.Tally(reference).add(rows, SCHEMA), 0.1, 0.25, 500)
    chunked = profile.Tally(reference)
    for start in range(0, 3000, 700):
        chunked.add(rows.iloc[start : start + 700], SCHEMA)
    parts = [profile.Tally(reference).add(rows.iloc[start : start + 1000], SCHEMA) for start in (0, 1000, 2000)]
    merged = parts[0].merge(parts[1]).merge(parts[2])
    for tally in (chunked, merged):
        report = profile.compare(tally, 0.1, 0.25, 500)
        assert report["rows"] == 3000
        for name, entry in whole["columns"].items():
            assert report["columns"][name]["psi"] == pytest.approx(entry["psi"], rel=1e-12), name


def test_a_batch_smaller_than_min_rows_gets_no_verdict(reference):
    one_row = batch_like(1, 5, shift=5.0)
    report = profile.compare(profile.Tally(reference).add(one_row, SCHEMA), 0.1, 0.25, 500)
    assert report["verdict"] == "too_few_rows" and report["alerted"] == report["warned"] == []
    assert profile.metrics(report) == {"drift_rows": 1.0}
    assert profile.summary(report) == "no drift verdict: 1 rows, fewer than monitor.min_rows 500"


def test_the_metrics_name_each_column_in_mlflows_alphabet(reference):
    report = profile.compare(profile.Tally(reference).add(batch_like(1000, 6), SCHEMA), 0.1, 0.25, 500)
    logged = profile.metrics(report)
    assert {"drift_psi_max", "drift_n_warn", "drift_n_alert", "drift_psi_balance", "drift_psi_output"} <= set(logged)
    assert profile.metric_name("débit (€)") == "drift_psi_d_bit ___"


def test_a_column_whose_metric_name_is_taken_gets_a_suffix_not_an_overwrite():
    names = profile.metric_names(["max", "output", "a?b", "a!b", profile.OUTPUT, "balance"])
    assert names[profile.OUTPUT] == "drift_psi_output" and names["balance"] == "drift_psi_balance"
    assert names["max"] == "drift_psi_max_2"  # drift_psi_max is the largest PSI
    assert names["output"] == "drift_psi_output_2"
    assert (names["a!b"], names["a?b"]) == ("drift_psi_a_b", "drift_psi_a_b_2")
    assert len(set(names.values())) == len(names)


def test_the_note_shows_the_verdict_and_the_worst_columns_first(reference):
    from pipeline.tracking.notes import drift_note

    shifted = batch_like(1000, 6)
    shifted["balance"] = shifted["balance"] + 3 * shifted["balance"].std()
    report = profile.compare(profile.Tally(reference).add(shifted, SCHEMA), 0.1, 0.25, 500)
    lines = drift_note(profile.metrics(report), shown=2)
    psi = report["columns"]["balance"]["psi"]
    assert lines[1].startswith(f"Drift from the model's reference profile: {len(report['alerted'])} column(s) alerted")
    assert f"(largest PSI {psi:.3f};" in lines[1]
    body = [line for line in lines[3:] if line.startswith("|") and "---" not in line][1:]  # the table's rows
    assert len(body) == 2 and body[0].split("|")[1:3] == [" balance ", f" {psi:.3f} "]
    assert drift_note({"drift_rows": 12.0}) == ["Drift: no verdict on 12 rows (fewer than monitor.min_rows)."]


@pytest.mark.parametrize(
    ("task", "answer", "kind"),
    [
        ("multiclass", pd.DataFrame({"prediction": ["a", "b", "a"]}), "categorical"),
        ("regression", pd.DataFrame({"prediction": [1.0, 2.5, 3.0]}), "numeric"),
    ],
)
def test_the_output_profiled_is_the_answer_of_the_task(task, answer, kind):
    schema = {**SCHEMA, "task": task, "positive_class": None}
    name, found_kind, values = profile.output_values(answer, schema)
    assert (name, found_kind) == ("prediction", kind) and len(values) == 3
