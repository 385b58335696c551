"""examples/rest/ (docs/rest.md): the REST recipe for callers that are not Python, curl and jq only, against a real
`mlflow server` on loopback, once open and once behind MLflow's basic-auth app. The run last_finished_run.sh finds
is the one the pipeline's own lookup finds, what it downloads is that run's artifact (a folder as a folder),
champion.sh names the champion and the runs behind it, and every failure is one line on stderr with its exit code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from deploy.tracking_server import TrackingServer, start_tracking_server
from pipeline.contract import SCHEMA_ARTIFACT, STEP_TAG, TEST_ARTIFACT, TRAIN_ARTIFACT, split_uri_tag, version_run_tag
from pipeline.steps.chain import run_chain
from pipeline.tracking.lookup import latest_finished_run
from tests.helpers import REPO_ROOT, end_active_runs, small_config_with
from tests.integration.helpers import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="the recipe needs curl and jq"),
]
SCRIPTS = REPO_ROOT / "examples" / "rest"
ADMIN_PASSWORD = "admin-Pw-7f3k9q"  # the basic-auth app wants 12 characters or more
READER_PASSWORD = "reader-Pw-4k8s2m"  # a user denied the experiment: 403
# Exit codes of docs/rest.md#exit-codes.
USAGE, NONE_FINISHED, SERVER, REFUSED, NO_SUCH, NO_ARTIFACT, WRITE = 2, 3, 4, 5, 6, 7, 8


@dataclass
class Served:
    """A tracking server with one chain in an experiment of its own, and what the Python client says about it."""

    server: TrackingServer
    auth: bool
    experiment: str  # holds the chain, decoy preprocess runs and only failed/running rollback runs
    experiment_id: str
    folder_experiment: str  # holds one preprocess run shaped like engine dask's: split folders, an outside split
    model_name: str
    runs: dict[str, str]  # step -> run id of the chain
    newest_finished_preprocess: str  # what pipeline/tracking/lookup.py finds
    schema: bytes  # data/schema.json of that run, downloaded by MLflow's client
    champion_version: str
    folder_run: str
    folder_files: dict[str, bytes] = field(default_factory=dict)  # data/train.parquet/... -> content

    def env(self, **changes: str | None) -> dict[str, str]:
        """The scripts' environment: this server, the chain's experiment, the admin's credentials (auth server)."""
        env = {name: value for name, value in os.environ.items() if not name.startswith("MLFLOW_")}
        env |= {"MLFLOW_TRACKING_URI": self.server.url, "MLFLOW_EXPERIMENT_NAME": self.experiment}
        if self.auth:
            env |= {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD}
        for name, value in changes.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env


def _client_env(patch: pytest.MonkeyPatch, url: str, experiment: str, auth: bool) -> None:
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        patch.delenv(name, raising=False)
    patch.setenv("MLFLOW_TRACKING_URI", url)
    patch.setenv("MLFLOW_EXPERIMENT_NAME", experiment)
    patch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if auth:
        patch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        patch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)


def _decoys(client: MlflowClient, experiment_id: str, chain_preprocess: str) -> None:
    """Runs the lookup must pass over: newer preprocess runs that FAILED or are still RUNNING, a FINISHED one that
    started after the chain's but ended before it (newest by start time, not by end time), and rollback runs none of
    which finished."""
    ended = client.get_run(chain_preprocess).info.end_time
    for status in ("FAILED", None):
        run = client.create_run(experiment_id, tags={STEP_TAG: "preprocess"})
        if status:
            client.set_terminated(run.info.run_id, status)
    early = client.create_run(experiment_id, start_time=int(time.time() * 1000), tags={STEP_TAG: "preprocess"})
    client.set_terminated(early.info.run_id, "FINISHED", end_time=ended - 60_000)
    for status in ("FAILED", "KILLED", None):
        run = client.create_run(experiment_id, tags={STEP_TAG: "rollback"})
        if status:
            client.set_terminated(run.info.run_id, status)


def _folder_run(client: MlflowClient, experiment_id: str, folder: Path) -> tuple[str, dict[str, bytes]]:
    """A FINISHED preprocess run as engine dask leaves it: data/train.parquet is a folder of part files (one in a
    subfolder, to walk the tree), and the test split lies outside the run (pipeline.split_uri.test)."""
    local = folder / "data" / "train.parquet"
    (local / "nested").mkdir(parents=True)
    pd.DataFrame({"x": [1.0, 2.0], "target": [0, 1]}).to_parquet(local / "part.0.parquet")
    pd.DataFrame({"x": [3.0], "target": [1]}).to_parquet(local / "part.1.parquet")
    (local / "nested" / "part.2.parquet").write_bytes(b"not really parquet, but bytes all the same")
    run = client.create_run(
        experiment_id, tags={STEP_TAG: "preprocess", split_uri_tag("test"): "s3://lake/splits/abc/test.parquet"}
    )
    client.log_artifacts(run.info.run_id, str(local), TRAIN_ARTIFACT)
    client.set_terminated(run.info.run_id, "FINISHED")
    files = {
        f"{TRAIN_ARTIFACT}/{path.relative_to(local).as_posix()}": path.read_bytes()
        for path in local.rglob("*")
        if path.is_file()
    }
    return run.info.run_id, files


def _serve(tmp_path_factory: pytest.TempPathFactory, auth: bool) -> Iterator[Served]:
    kind = "auth" if auth else "open"
    folder = tmp_path_factory.mktemp(f"rest-{kind}")
    server = start_tracking_server(
        f"sqlite:///{folder / 'mlflow.db'}",
        str(folder / "artifacts"),
        port=free_port(),
        auth=auth,
        env={"MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD} if auth else {},
        state_dir=folder / "server",
    )
    suffix = uuid.uuid4().hex[:6]
    experiment, model_name = f"rest recipe {kind} é {suffix}", f"rest-{kind}-{suffix}"  # a name to URL-encode
    try:
        with pytest.MonkeyPatch.context() as patch:  # the Python side, only while the fixture prepares the server
            _client_env(patch, server.url, experiment, auth)
            patch.chdir(folder)
            chain = run_chain(small_config_with({"registry.model_name": model_name}))
            end_active_runs()
            assert chain.step("evaluate").verdict == "promoted"
            runs = {step.step: step.run_id for step in chain.steps}
            client = MlflowClient()
            _decoys(client, chain.experiment_id, runs["preprocess"])
            newest = latest_finished_run(client, chain.experiment_id, "preprocess")
            schema = Path(mlflow.artifacts.download_artifacts(run_id=newest.info.run_id, artifact_path=SCHEMA_ARTIFACT))
            folder_experiment = f"rest folders {kind} {suffix}"
            folder_run, folder_files = _folder_run(client, client.create_experiment(folder_experiment), folder / "dask")
            if auth:
                from mlflow.server.auth.client import AuthServiceClient

                users = AuthServiceClient(server.url)
                users.create_user("reader", READER_PASSWORD)
                users.grant_user_permission("reader", "experiment", chain.experiment_id, "DENY")
            served = Served(
                server=server,
                auth=auth,
                experiment=experiment,
                experiment_id=chain.experiment_id,
                folder_experiment=folder_experiment,
                model_name=model_name,
                runs=runs,
                newest_finished_preprocess=newest.info.run_id,
                schema=schema.read_bytes(),
                champion_version=client.get_model_version_by_alias(model_name, "champion").version,
                folder_run=folder_run,
                folder_files=folder_files,
            )
        yield served
    finally:
        server.stop()


@pytest.fixture(scope="module")
def open_served(tmp_path_factory) -> Iterator[Served]:
    yield from _serve(tmp_path_factory, auth=False)


@pytest.fixture(scope="module")
def auth_served(tmp_path_factory) -> Iterator[Served]:
    yield from _serve(tmp_path_factory, auth=True)


@pytest.fixture(params=["open", "auth"])
def served(request) -> Served:
    """Each test taking this runs against both servers (each made once per module)."""
    return request.getfixturevalue(f"{request.param}_served")


def run_script(name: str, *args: object, env: dict[str, str], tmp: Path) -> subprocess.CompletedProcess:
    """Run a script of examples/rest/ as a caller would; its temporary files go to `tmp`/scratch (checked empty)."""
    scratch = tmp / "scratch"
    scratch.mkdir(exist_ok=True)
    result = subprocess.run(
        [str(SCRIPTS / name), *map(str, args)],
        env={**env, "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert list(scratch.iterdir()) == [], "the script left temporary files behind"
    return result


def assert_fails(result: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    """The failure convention: nothing on stdout, one line on stderr (starting with the script's name), the code."""
    lines = result.stderr.splitlines()
    assert (result.returncode, len(lines), result.stdout) == (code, 1, ""), result.stderr
    script = Path(result.args[0]).name
    assert lines[0].startswith(f"{script}: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def test_it_finds_the_run_the_pipelines_lookup_finds_and_downloads_its_artifact(served, tmp_path):
    # The decoys (newer FAILED/RUNNING runs, a FINISHED one that started later but ended earlier) do not win.
    assert served.newest_finished_preprocess == served.runs["preprocess"]
    out = tmp_path / "downloads" / "schema.json"  # its folder is created
    result = run_script("last_finished_run.sh", "preprocess", SCHEMA_ARTIFACT, out, env=served.env(), tmp=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == served.runs["preprocess"] + "\n"
    assert out.read_bytes() == served.schema
    assert json.loads(out.read_bytes())["target"] == "target"
    assert [path.name for path in out.parent.iterdir()] == ["schema.json"]  # no temporary file left beside it

    # The same experiment by id, and a Parquet split; a second download replaces the file.
    env = served.env(MLFLOW_EXPERIMENT_NAME=None, MLFLOW_EXPERIMENT_ID=served.experiment_id)
    result = run_script("last_finished_run.sh", "preprocess", "./data/test.parquet", out, env=env, tmp=tmp_path)
    assert (result.returncode, result.stdout) == (0, served.runs["preprocess"] + "\n"), result.stderr
    assert "target" in pd.read_parquet(out).columns


def test_other_steps_and_their_artifacts(served, tmp_path):
    out = tmp_path / "best_params.json"
    result = run_script("last_finished_run.sh", "tune", "best_params.json", out, env=served.env(), tmp=tmp_path)
    assert result.stdout == served.runs["tune"] + "\n", result.stderr
    assert "n_estimators" in json.loads(out.read_text())
    result = run_script("last_finished_run.sh", "evaluate", "lineage.md", out, env=served.env(), tmp=tmp_path)
    assert result.stdout == served.runs["evaluate"] + "\n", result.stderr
    assert served.runs["train"] in out.read_text()


def test_a_folder_artifact_comes_down_as_a_folder(served, tmp_path):
    env = served.env(MLFLOW_EXPERIMENT_NAME=served.folder_experiment)
    out = tmp_path / "train.parquet"
    result = run_script("last_finished_run.sh", "preprocess", TRAIN_ARTIFACT, out, env=env, tmp=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, served.folder_run + "\n", "")
    downloaded = {
        f"{TRAIN_ARTIFACT}/{path.relative_to(out).as_posix()}": path.read_bytes()
        for path in out.rglob("*")
        if path.is_file()
    }
    assert downloaded == served.folder_files
    assert len(pd.read_parquet(out / "part.0.parquet")) == 2
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []

    again = run_script("last_finished_run.sh", "preprocess", TRAIN_ARTIFACT, out, env=env, tmp=tmp_path)
    assert_fails(again, WRITE, "is a folder", "already exists")
    outside = run_script("last_finished_run.sh", "preprocess", TEST_ARTIFACT, tmp_path / "t", env=env, tmp=tmp_path)
    assert_fails(outside, NO_ARTIFACT, f"no artifact '{TEST_ARTIFACT}'", "s3://lake/splits/abc/test.parquet")


def test_champion_names_the_version_and_the_runs_behind_it(served, tmp_path):
    result = run_script("champion.sh", served.model_name, env=served.env(), tmp=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert len(result.stdout.splitlines()) == 1
    answer = json.loads(result.stdout)
    runs = served.runs
    assert answer["name"] == served.model_name and answer["alias"] == "champion"
    assert answer["version"] == served.champion_version == "1"
    assert answer["run_id"] == runs["train"]
    assert answer["status"] == "READY"
    for step in ("preprocess", "tune", "train", "evaluate"):
        assert answer["tags"][version_run_tag(step)] == runs[step], step
    assert answer["tags"]["pipeline.verdict"] == "promoted"
    assert all(key.startswith("pipeline.") for key in answer["tags"])

    challenger = run_script("champion.sh", served.model_name, "challenger", env=served.env(), tmp=tmp_path)
    assert json.loads(challenger.stdout)["version"] == "1", challenger.stderr


@pytest.mark.parametrize(
    ("script", "args", "changes", "code", "fragment"),
    [
        (
            "last_finished_run.sh",
            ["preprocess", SCHEMA_ARTIFACT],
            {"MLFLOW_EXPERIMENT_NAME": "no-such-experiment"},
            NO_SUCH,
            "no experiment 'no-such-experiment'",
        ),
        (
            "last_finished_run.sh",
            ["preprocess", SCHEMA_ARTIFACT],
            {"MLFLOW_EXPERIMENT_NAME": None, "MLFLOW_EXPERIMENT_ID": "987654"},
            NO_SUCH,
            "no experiment id 987654",
        ),
        ("last_finished_run.sh", ["rollback", "x.json"], {}, NONE_FINISHED, "no finished 'rollback' run"),
        ("last_finished_run.sh", ["preprocess", "data/nope.json"], {}, NO_ARTIFACT, "has no artifact 'data/nope.json'"),
        ("last_finished_run.sh", ["preprocess", "nope/deeper.json"], {}, NO_ARTIFACT, "no artifact 'nope/deeper.json'"),
        ("last_finished_run.sh", ["preprocess", "../etc/passwd"], {}, USAGE, "must be a path inside the run"),
        ("last_finished_run.sh", ["preprocess"], {}, USAGE, "usage: last_finished_run.sh STEP ARTIFACT_PATH OUT_FILE"),
        (
            "last_finished_run.sh",
            ["preprocess", SCHEMA_ARTIFACT],
            {"MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"},
            USAGE,
            "must be an http(s):// tracking server",
        ),
        ("champion.sh", [], {}, NO_SUCH, "no registered model 'breast-cancer-xgb'"),  # the default name
        ("champion.sh", ["{model}", "gold"], {}, NONE_FINISHED, "has no version at @gold"),
        ("champion.sh", ["a", "b", "c"], {}, USAGE, "usage: champion.sh [MODEL_NAME] [ALIAS]"),
    ],
    ids=[
        "unknown-experiment",
        "unknown-experiment-id",
        "no-finished-run",
        "missing-artifact",
        "missing-folder",
        "path-outside-the-run",
        "too-few-arguments",
        "not-an-http-server",
        "unknown-model",
        "alias-not-set",
        "too-many-arguments",
    ],
)
def test_each_failure_is_one_line_and_its_exit_code(served, tmp_path, script, args, changes, code, fragment):
    out = tmp_path / "out" / "file"
    args = [arg.format(model=served.model_name) for arg in args]
    if script == "last_finished_run.sh" and len(args) == 2:
        args.append(out)
    result = run_script(script, *args, env=served.env(**changes), tmp=tmp_path)
    assert_fails(result, code, fragment)
    assert not out.exists() and (not out.parent.exists() or list(out.parent.iterdir()) == [])


@pytest.mark.parametrize("script", ["last_finished_run.sh", "champion.sh"])
def test_an_unreachable_server_fails_fast(open_served, tmp_path, script):
    args = ["preprocess", SCHEMA_ARTIFACT, tmp_path / "x"] if script == "last_finished_run.sh" else []
    started = time.monotonic()
    result = run_script(
        script, *args, env=open_served.env(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}"), tmp=tmp_path
    )
    assert_fails(result, SERVER, "cannot reach the tracking server http://127.0.0.1:")
    assert time.monotonic() - started < 10


WRONG_PASSWORD = {"MLFLOW_TRACKING_PASSWORD": "not-the-password"}
NO_CREDENTIALS = {"MLFLOW_TRACKING_USERNAME": None, "MLFLOW_TRACKING_PASSWORD": None}
READER = {"MLFLOW_TRACKING_USERNAME": "reader", "MLFLOW_TRACKING_PASSWORD": READER_PASSWORD}  # denied the experiment


@pytest.mark.parametrize(
    ("script", "changes", "status"),
    [
        ("last_finished_run.sh", WRONG_PASSWORD, 401),
        ("last_finished_run.sh", NO_CREDENTIALS, 401),
        ("last_finished_run.sh", READER, 403),
        ("champion.sh", WRONG_PASSWORD, 401),
        ("champion.sh", NO_CREDENTIALS, 401),
    ],
    ids=[
        "run-wrong-password",
        "run-no-credentials",
        "run-denied",
        "champion-wrong-password",
        "champion-no-credentials",
    ],
)
def test_credentials_refused_by_the_auth_server(auth_served, tmp_path, script, changes, status):
    if script == "last_finished_run.sh":
        args = ["preprocess", SCHEMA_ARTIFACT, tmp_path / "x"]
    else:
        args = [auth_served.model_name]
    result = run_script(script, *args, env=auth_served.env(**changes), tmp=tmp_path)
    line = assert_fails(result, REFUSED, f"(HTTP {status})")
    if status == 401:
        assert "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in line
    else:
        assert "denied reader access" in line
    assert "not-the-password" not in line and READER_PASSWORD not in line
    assert not (tmp_path / "x").exists()


def test_credentials_travel_outside_the_command_line(auth_served, tmp_path):
    """curl reads the password from a config file in the script's private temporary folder, never from its
    arguments, where any user's `ps` would show it."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    seen = tmp_path / "curl-args"
    real = shutil.which("curl")
    (fake_bin / "curl").write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" >> "{seen}"\nexec {real} "$@"\n')
    (fake_bin / "curl").chmod(0o755)
    env = auth_served.env()
    env["PATH"] = f"{fake_bin}{os.pathsep}{env['PATH']}"
    result = run_script("champion.sh", auth_served.model_name, env=env, tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    assert ADMIN_PASSWORD not in seen.read_text() and "--config" in seen.read_text()
