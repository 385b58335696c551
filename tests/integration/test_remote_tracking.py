"""The pipeline against a team's tracking server: `mlflow server` on PostgreSQL with artifacts proxied to an
S3-compatible store (moto on loopback), behind MLflow's basic-auth app. Nothing in the pipeline changes but
MLFLOW_TRACKING_URI and the credentials."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import mlflow
import pandas as pd
import psycopg
import pytest
from mlflow.tracking import MlflowClient

from deploy.tracking_server import ensure_bucket, start_tracking_server
from pipeline import cli
from pipeline.contract import STEP_TAG
from pipeline.steps.chain import run_chain
from tests.helpers import DEFAULT_CONFIG, fresh_postgres_database, small_config_with
from tests.integration.helpers import free_port

pytestmark = pytest.mark.slow
ADMIN_PASSWORD = "admin-Pw-7f3k9q"
S3_KEYS = {"AWS_ACCESS_KEY_ID": "pipeline-test-key", "AWS_SECRET_ACCESS_KEY": "s3-Secret-x81mz"}
STORAGE_PASSWORD = "optuna-Pw-5j2h"  # written into the Optuna storage URL: must be masked wherever it is logged
BUCKET = "mlflow"


class Stack:
    """PostgreSQL database + S3 endpoint + tracking server; the server can be restarted on the same port."""

    def __init__(self, database: str, s3_url: str, state_dir: Path) -> None:
        self.database, self.s3_url, self.state_dir, self.port = database, s3_url, state_dir, free_port()
        self.server = None

    def start(self):
        env = {
            **S3_KEYS,
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_S3_ENDPOINT_URL": self.s3_url,
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-csrf-key",
        }
        self.server = start_tracking_server(
            self.database, f"s3://{BUCKET}/artifacts", port=self.port, auth=True, env=env, state_dir=self.state_dir
        )
        return self.server

    def bucket_keys(self) -> list[str]:
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            region_name="us-east-1",
            aws_access_key_id=S3_KEYS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_KEYS["AWS_SECRET_ACCESS_KEY"],
        )
        return [
            item["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
            for item in page.get("Contents", [])
        ]

    def query(self, sql: str, *args) -> list[tuple]:
        with psycopg.connect(self.database) as connection:
            return connection.execute(sql, args).fetchall()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from moto.server import ThreadedMotoServer

    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    s3.start()
    host, port = s3.get_host_and_port()
    s3_url = f"http://{host}:{port}"
    with fresh_postgres_database() as database:
        stack = Stack(database, s3_url, tmp_path_factory.mktemp("server"))
        with pytest.MonkeyPatch.context() as patch:
            for key, value in {**S3_KEYS, "MLFLOW_S3_ENDPOINT_URL": s3_url, "AWS_DEFAULT_REGION": "us-east-1"}.items():
                patch.setenv(key, value)
            ensure_bucket(BUCKET)
        stack.start()
        try:
            yield stack
        finally:
            stack.server.stop()
            s3.stop()


@pytest.fixture
def remote(stack, monkeypatch, tmp_path) -> str:
    """This test's process talks to the server as the admin user, in an experiment of its own; it has no S3 keys."""
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", *S3_KEYS, "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", stack.server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", f"remote-{uuid.uuid4().hex[:8]}")
    monkeypatch.chdir(tmp_path)
    yield stack.server.url
    while mlflow.active_run():
        mlflow.end_run()


def _experiment_id() -> str:
    import os

    return MlflowClient().get_experiment_by_name(os.environ["MLFLOW_EXPERIMENT_NAME"]).experiment_id


def test_the_chain_lands_in_postgresql_and_the_bucket(stack, remote, tmp_path):
    model_name = f"remote-{uuid.uuid4().hex[:6]}"
    chain = run_chain(small_config_with({"registry.model_name": model_name}))
    ids = {step.step: step.run_id for step in chain.steps}
    assert chain.step("evaluate").verdict == "promoted"

    stored = dict(stack.query("SELECT run_uuid, status FROM runs WHERE run_uuid = ANY(%s)", list(ids.values())))
    assert stored == {run_id: "FINISHED" for run_id in ids.values()}
    steps = dict(
        stack.query(
            "SELECT run_uuid, value FROM tags WHERE key = 'pipeline.step' AND run_uuid = ANY(%s)", list(ids.values())
        )
    )
    assert steps == {run_id: step for step, run_id in ids.items()}
    assert stack.query(
        "SELECT alias, version FROM registered_model_aliases WHERE name = %s ORDER BY alias", model_name
    ) == [("challenger", 1), ("champion", 1)]

    keys = stack.bucket_keys()
    assert any(key.endswith(f"{ids['preprocess']}/artifacts/data/train.parquet") for key in keys)
    assert any(key.endswith(f"{ids['train']}/artifacts/logs/train.log") for key in keys)
    assert any("/models/" in key and key.endswith("artifacts/xgboost_model/model.ubj") for key in keys)

    rows = pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{ids['preprocess']}/data/test.parquet"))
    rows.drop(columns=["target"]).to_csv(tmp_path / "rows.csv", index=False)
    assert (
        cli.main(
            [
                "predict",
                "--config",
                str(DEFAULT_CONFIG),
                "--set",
                f"registry.model_name={model_name}",
                "--input",
                str(tmp_path / "rows.csv"),
                "--output",
                str(tmp_path / "scored.csv"),
            ]
        )
        == 0
    )
    assert len(pd.read_csv(tmp_path / "scored.csv")) == len(rows)


def _everything_logged(client: MlflowClient, experiment_id: str, folder: Path) -> str:
    """Params, tags and metrics of every run of the experiment (trial runs included), and the bytes of every
    artifact they and their logged models hold, as one text."""
    runs = client.search_runs([experiment_id], max_results=1000)
    text = [json.dumps({"params": run.data.params, "tags": run.data.tags, "name": run.info.run_name}) for run in runs]
    for run in runs:
        local = Path(
            mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(folder / run.info.run_id))
        )
        text += [path.read_bytes().decode(errors="replace") for path in local.rglob("*") if path.is_file()]
    for model in client.search_logged_models([experiment_id]):
        local = Path(
            mlflow.artifacts.download_artifacts(model.artifact_location, dst_path=str(folder / model.model_id))
        )
        text += [path.read_bytes().decode(errors="replace") for path in local.rglob("*") if path.is_file()]
    return "\n".join(text)


def test_no_credential_is_logged_anywhere(stack, remote, tmp_path, capfd):
    with fresh_postgres_database() as optuna_database:  # trust auth: any password is accepted
        storage = optuna_database.replace("postgres@", f"postgres:{STORAGE_PASSWORD}@")
        code = cli.main(
            [
                "main",
                "--config",
                str(DEFAULT_CONFIG),
                "--storage",
                storage,
                "--set",
                f"registry.model_name=leak-{uuid.uuid4().hex[:6]}",
            ]
        )
    assert code == 0
    logged = _everything_logged(MlflowClient(), _experiment_id(), tmp_path / "downloads")
    console = capfd.readouterr()
    for secret in (ADMIN_PASSWORD, S3_KEYS["AWS_SECRET_ACCESS_KEY"], STORAGE_PASSWORD):
        assert secret not in logged
        assert secret not in console.out + console.err
    assert "postgres:***@127.0.0.1" in logged  # the storage URL is there, masked


def test_a_wrong_password_fails_fast_and_names_the_fix(stack, remote, monkeypatch, capfd, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password")
    started = time.monotonic()
    assert cli.main(["preprocess", "--config", str(DEFAULT_CONFIG), "--result-file", str(tmp_path / "r.json")]) == 4
    assert time.monotonic() - started < 30
    error = [line for line in capfd.readouterr().err.splitlines() if " ERROR " in line]
    assert error and f"the tracking server {remote} refused the credentials (HTTP 401)" in error[-1]
    assert "MLFLOW_TRACKING_PASSWORD" in error[-1] and "not-the-password" not in error[-1]
    assert json.loads((tmp_path / "r.json").read_text())["exit_code"] == 4


def test_a_server_down_between_steps_fails_fast_and_a_restart_resumes(stack, remote, capfd):
    """Last in the module: it restarts the server (same database, bucket and port)."""
    assert cli.main(["preprocess", "--config", str(DEFAULT_CONFIG)]) == 0
    stack.server.stop()
    started = time.monotonic()
    tune = ["tune", "--config", str(DEFAULT_CONFIG), "--n-trials", "2"]
    assert cli.main(tune) == 4
    assert time.monotonic() - started < 60
    error = [line for line in capfd.readouterr().err.splitlines() if " ERROR " in line]
    assert error and f"cannot reach the tracking store {remote}" in error[-1]
    stack.start()
    assert cli.main(tune) == 0  # finds the preprocess run made before the restart
    (tune_run,) = MlflowClient().search_runs([_experiment_id()], f"tags.`{STEP_TAG}` = 'tune'")
    assert tune_run.info.status == "FINISHED"
