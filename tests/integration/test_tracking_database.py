"""A database tracking store that cannot be opened: one line naming the URI (password masked) and the fix, exit 4,
in seconds (MLflow alone retries for about 100 s, printing a multi-line warning each time, then a traceback)."""

import os
import subprocess
import sys

import pytest

from pipeline.tracking.database import probe_tracking_database
from tests.helpers import DEFAULT_CONFIG, REPO_ROOT

pytestmark = pytest.mark.heavy  # needs the machine's PostgreSQL

SERVER = "127.0.0.1:5432"
CASES = [
    (
        "missing database",
        f"postgresql://postgres@{SERVER}/no_such_db_here",
        "the database no_such_db_here does not exist: create it (`createdb -h 127.0.0.1 -U postgres no_such_db_here`",
    ),
    ("wrong user", f"postgresql://nobody:pw-h0rse@{SERVER}/postgres", "authentication failed for user nobody"),
    ("closed port", "postgresql://postgres@127.0.0.1:9/postgres", "nothing answers on 127.0.0.1:9"),
    (
        "unresolvable host",
        "postgresql://postgres@no-such-host.invalid:5432/x",
        "the host no-such-host.invalid cannot be resolved",
    ),
    (
        "sqlite folder not writable",
        "sqlite:////sys/pipeline-test/mlflow.db",
        "cannot create its folder /sys/pipeline-test",
    ),
]


@pytest.mark.parametrize(("case", "uri", "words"), CASES, ids=[case[0] for case in CASES])
def test_a_wrong_tracking_database_fails_in_one_line_with_the_fix(postgres_url, tmp_path, case, uri, words):
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    command = [sys.executable, "-m", "pipeline", "preprocess", "--config", str(DEFAULT_CONFIG)]
    # A generous bound (the probe takes about 2 s): MLflow's own retries would take about 100 s.
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 4, lines
    assert len(lines) == 1 and "ERROR" in lines[0] and words in lines[0], lines
    assert "pw-h0rse" not in lines[0] and "Traceback" not in done.stderr


def test_a_database_store_that_answers_is_used_as_before(postgres_url, tmp_path):
    probe_tracking_database(postgres_url)  # a fresh database on the local server: no error
    probe_tracking_database(f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}")  # a missing folder is made, as MLflow does
    assert (tmp_path / "new").is_dir() and not (tmp_path / "new" / "mlflow.db").exists()  # but no database file


def test_check_store_is_what_make_run_calls_before_mlflow_run(postgres_url, tmp_path):
    def check_store(uri: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
        command = [sys.executable, "-m", "pipeline", "check-store"]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)

    missing = check_store(f"postgresql://postgres@{SERVER}/no_such_db_here")
    assert missing.returncode == 4 and "createdb -h 127.0.0.1 -U postgres no_such_db_here" in missing.stderr
    answering = check_store(postgres_url)
    assert answering.returncode == 0 and "answers" in answering.stderr
    assert "check-store" in (REPO_ROOT / "Makefile").read_text().split("\nrun:")[1].split("\n\n")[0]
