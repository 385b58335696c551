"""split.method: time through preprocess and tune on engine local (engine dask: test_dask_engine.py): a dated table
stored out of order is split at the time its latest rows start, the train split is written in time order, the bounds
are logged as params, tune runs on it, and a row without a time is a one-line refusal."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import cli
from pipeline.contract import STEP_TAG, TEST_ARTIFACT, TRAIN_ARTIFACT
from pipeline.steps import preprocess, tune
from pipeline.tracking.lookup import read_parquet_artifact
from tests.helpers import DEFAULT_CONFIG, small_config_with

pytestmark = pytest.mark.heavy


def dated_table(folder: Path, rows: int = 400) -> Path:
    """Daily weather-like rows stored shuffled: `rain` follows a trend in time and today's temperature."""
    rng = np.random.default_rng(5)
    days = pd.date_range("2012-01-01", periods=rows, freq="D")
    temp = rng.normal(15, 5, rows) + np.arange(rows) / 50
    frame = pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "temp": temp, "wind": rng.normal(size=rows)})
    frame["rain"] = frame["temp"] + rng.normal(0, 4, rows)
    path = folder / "weather.csv"
    frame.sample(frac=1, random_state=0).to_csv(path, index=False)
    return path


def time_split_keys(path: Path) -> dict[str, object]:
    return {
        "data.source": str(path),
        "data.target": "rain",
        "features.derived": False,
        "split.method": "time",
        "split.time_column": "date",
        "tune.n_trials": 2,
    }


def test_a_dated_table_is_trained_on_its_past_and_scored_on_its_latest_rows(client, tmp_path):
    config = small_config_with(time_split_keys(dated_table(tmp_path)))
    prepared = preprocess.run(config)
    run = client.get_run(prepared.run_id)
    params = run.data.params
    assert params["split.method"] == "time"
    assert params["split.train_end"] < params["split.test_start"]  # ISO timestamps compare in time order
    train, test = read_parquet_artifact(run, TRAIN_ARTIFACT), read_parquet_artifact(run, TEST_ARTIFACT)
    assert len(test) == 80 and len(train) == 320
    # The splits hold the date's parts, not the date: the train split (all of 2012, so its constant year part is
    # dropped) is in time order.
    assert "date_year" not in train.columns and train["date_day_of_year"].is_monotonic_increasing
    assert params["split.test_start"].startswith("2012-11-16")  # day 321 of 400: the latest 80 are test
    assert "Split in time order: train up to 2012-11-15" in run.data.tags["mlflow.note.content"]
    tuned = tune.run(config, upstream_run_id=prepared.run_id)
    assert client.get_run(tuned.run_id).info.status == "FINISHED"


def test_a_row_without_a_time_is_refused_in_one_line(client, tmp_path, capfd):
    path = dated_table(tmp_path)
    table = pd.read_csv(path)
    table.loc[3, "date"] = None
    table.to_csv(path, index=False)
    overrides = [f"--set={key}={value}" for key, value in time_split_keys(path).items()]
    assert cli.main(["preprocess", "--config", str(DEFAULT_CONFIG), *overrides]) == 2
    errors = [line for line in capfd.readouterr().err.splitlines() if " ERROR " in line]
    assert errors[-1].endswith(
        "split.time_column 'date' has no time in 1 of 400 rows (empty, or not an ISO 8601 "
        "date or time): fill or drop those rows"
    )
    (failed,) = client.search_runs(["0"], f"tags.`{STEP_TAG}` = 'preprocess'")
    assert failed.info.status == "FAILED"
