"""The registered model as users consume it: loaded as a pyfunc, and served over HTTP by `mlflow models serve`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from pipeline import cli
from pipeline.steps.chain import run_chain
from tests.helpers import DEFAULT_CONFIG, REPO_ROOT, small_config_with
from tests.integration.helpers import free_port, wait_for

CHAMPION = "models:/{}@champion"
CHURN_CSV = REPO_ROOT / "examples" / "churn.csv"


@pytest.fixture(scope="module")
def module_champion_and_rows(module_store) -> tuple[str, pd.DataFrame]:
    """Made once in the module's store: a champion trained on examples/churn.csv (text target yes/no, text
    categories, a date column, gaps), and raw rows of that table as a user would send them: without the target,
    with missing values and a new category."""
    # No data.id_columns: the id is found (text with one distinct value per row), dropped, and optional.
    config = small_config_with(
        {
            "data.source": str(CHURN_CSV),
            "data.target": "churned",
            "registry.model_name": "churn-xgb",
            "evaluate.binary.thresholds": {},
        }
    )
    run_chain(config)
    rows = pd.read_csv(CHURN_CSV).drop(columns=["churned"]).sample(50, random_state=3).reset_index(drop=True)
    rows.loc[0, ["region", "tenure_months", "signup_date"]] = None
    rows.loc[1, "plan"] = "enterprise"  # never seen in training: scored as missing
    assert rows["signup_date"].notna().sum() > 40 and rows.isna().any().any()
    return CHAMPION.format(config.registry.model_name), rows


@pytest.fixture
def champion_and_rows(module_champion_and_rows) -> tuple[str, pd.DataFrame]:
    model_uri, rows = module_champion_and_rows
    return model_uri, rows.copy()  # each test its own rows to hand over


@pytest.mark.heavy
def test_the_registered_model_answers_raw_rows_in_the_targets_labels(champion_and_rows):
    model_uri, rows = champion_and_rows
    served = mlflow.pyfunc.load_model(model_uri)
    answer = served.predict(rows)
    assert list(answer.columns) == ["prediction", "probability_no", "probability_yes"] and len(answer) == len(rows)
    assert set(answer["prediction"]) <= {"yes", "no"} and answer["prediction"].nunique() == 2
    assert answer[["probability_no", "probability_yes"]].sum(axis=1).to_numpy() == pytest.approx(1.0, abs=1e-5)
    assert (answer["prediction"] == "yes").tolist() == (answer["probability_yes"] > 0.5).tolist()
    info = mlflow.models.get_model_info(model_uri)
    assert info.signature.outputs.input_names() == ["prediction", "probability_no", "probability_yes"]
    # The signature is the raw table's: the date as text, the id optional (the model ignores it), no date parts.
    inputs = {column.name: column for column in info.signature.inputs.inputs}
    assert set(inputs) == set(rows.columns) and not inputs["customer_id"].required
    assert inputs["signup_date"].type.name == "string" and inputs["plan"].type.name == "string"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


# A change to two good rows -> what the one-line refusal says.
BAD_ROWS = {
    ("tenure_months", "old"): "column 'tenure_months' must be numeric but holds 1 value(s) such as 'old'",
    ("signup_date", "last spring"): "column 'signup_date' holds 1 value(s) that are not ISO 8601 dates",
}


def _refusal(url: str, rows: pd.DataFrame, change: tuple[str, str]) -> tuple[int, dict]:
    """The server's status and JSON answer to `rows` with the first row's column set to a bad value."""
    column, value = change
    bad = rows.astype(object)
    bad.loc[bad.index[0], column] = value
    payload = {"dataframe_split": json.loads(bad.to_json(orient="split", index=False))}
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


@pytest.mark.slow
def test_the_served_champion_answers_like_batch_prediction(champion_and_rows, module_store, own_experiment, tmp_path):
    model_uri, rows = champion_and_rows
    tracking_uri = module_store[0]
    rows.to_csv(tmp_path / "rows.csv", index=False)
    assert (
        cli.main(
            [
                "predict",
                "--config",
                str(DEFAULT_CONFIG),
                "--set",
                "registry.model_name=churn-xgb",
                "--input",
                str(tmp_path / "rows.csv"),
                "--output",
                str(tmp_path / "scored.csv"),
            ]
        )
        == 0
    )
    batch = pd.read_csv(tmp_path / "scored.csv")

    port = free_port()
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with open(tmp_path / "serve.log", "wb") as log:
        # The server is started through `uvicorn`, looked up on PATH: the environment's own bin folder first.
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        server = subprocess.Popen(
            command,
            env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PATH": path},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd="/",
        )
    try:
        wait_for(lambda: server.poll() is not None or _answers(f"http://127.0.0.1:{port}/ping"), timeout=120)
        assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        payload = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
        served = pd.DataFrame(_post(f"http://127.0.0.1:{port}/invocations", payload)["predictions"])
        refusals = [_refusal(f"http://127.0.0.1:{port}/invocations", rows.head(2), change) for change in BAD_ROWS]
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    assert len(served) == len(batch) == len(rows)
    assert served["prediction"].tolist() == batch["prediction"].tolist() and set(served["prediction"]) == {"yes", "no"}
    for column in ("probability_no", "probability_yes"):
        assert served[column].to_numpy() == pytest.approx(batch[column].to_numpy(), abs=1e-6)
    # A row the model cannot take is a 400 naming the column, with no stack trace.
    for (status, answer), fragment in zip(refusals, BAD_ROWS.values(), strict=True):
        assert status == 400 and answer["error_code"] == "INVALID_PARAMETER_VALUE", answer
        assert fragment in answer["message"] and "stack_trace" not in answer and "Traceback" not in answer["message"]
    # The model logs every request through loguru, in the server's own output.
    assert f"scored {len(rows)} rows" in (tmp_path / "serve.log").read_text()
