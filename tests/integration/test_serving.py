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
from pipeline.chain import run_chain
from tests.conftest import DEFAULT_CONFIG
from tests.integration.helpers import free_port, wait_for

CHAMPION = "models:/{}@champion"


@pytest.fixture
def champion_and_rows(client, small_config, tmp_path) -> tuple[str, pd.DataFrame]:
    """A promoted champion, and raw rows of the test split (as a user would send them: no derived feature)."""
    run_chain(small_config)
    test_split = pd.read_parquet(next((tmp_path / "artifacts").rglob("test.parquet")))
    return CHAMPION.format(small_config.registry.model_name), test_split.drop(columns=["target"])


def test_the_registered_model_answers_with_classes_and_probabilities(champion_and_rows):
    model_uri, rows = champion_and_rows
    served = mlflow.pyfunc.load_model(model_uri)
    answer = served.predict(rows)
    assert list(answer.columns) == ["prediction", "probability_0", "probability_1"] and len(answer) == len(rows)
    assert answer[["probability_0", "probability_1"]].sum(axis=1).to_numpy() == pytest.approx(1.0, abs=1e-5)
    classifier = served.unwrap_python_model().model
    assert answer["probability_1"].to_numpy() == pytest.approx(classifier.predict_proba(rows)[:, 1], abs=1e-6)
    assert answer["prediction"].tolist() == classifier.predict(rows).tolist()
    outputs = mlflow.models.get_model_info(model_uri).signature.outputs.input_names()
    assert outputs == ["prediction", "probability_0", "probability_1"]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_the_served_champion_answers_like_batch_prediction(champion_and_rows, tracking_uri, tmp_path):
    model_uri, rows = champion_and_rows
    rows.to_csv(tmp_path / "rows.csv", index=False)
    assert cli.main(["predict", "--config", str(DEFAULT_CONFIG), "--input", str(tmp_path / "rows.csv"),
                     "--output", str(tmp_path / "scored.csv")]) == 0
    batch = pd.read_csv(tmp_path / "scored.csv")

    port = free_port()
    command = [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", model_uri,
               "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with open(tmp_path / "serve.log", "wb") as log:
        # The server is started through `uvicorn`, looked up on PATH: the environment's own bin folder first.
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        server = subprocess.Popen(command, env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PATH": path},
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: server.poll() is not None or _answers(f"http://127.0.0.1:{port}/ping"), timeout=120)
        assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        payload = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
        served = pd.DataFrame(_post(f"http://127.0.0.1:{port}/invocations", payload)["predictions"])
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    assert len(served) == len(batch) == len(rows)
    assert served["prediction"].tolist() == batch["prediction"].tolist()
    for column in ("probability_0", "probability_1"):
        assert served[column].to_numpy() == pytest.approx(batch[column].to_numpy(), abs=1e-6)
    # The model logs every request through loguru, in the server's own output.
    assert f"scored {len(rows)} rows" in (tmp_path / "serve.log").read_text()
