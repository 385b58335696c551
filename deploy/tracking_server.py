"""Start an MLflow tracking server without Docker: metadata in a database (PostgreSQL), artifacts in an
S3-compatible store, proxied by the server so clients need no S3 credentials; optionally behind MLflow's
basic-auth app. Waits for `/health`, and stops the whole process group.

    python deploy/tracking_server.py --backend-store-uri postgresql://postgres@127.0.0.1:5432/mlflow \\
        --artifacts-destination s3://mlflow/artifacts --port 5000 [--auth]

S3 settings come from the environment, as boto3 reads them: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, and
MLFLOW_S3_ENDPOINT_URL for an endpoint other than AWS (MinIO, moto). With --auth, the admin password comes from
MLFLOW_AUTH_ADMIN_PASSWORD (never from a file or an argument), and MLFLOW_FLASK_SERVER_SECRET_KEY is made up when
unset (set it to share sessions between several servers). `make server` runs this with the Makefile's settings;
the tests import `start_tracking_server` and `ensure_bucket`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

# Settings that keep a server small and quiet: no background job runner (about 1.8 GB less), no telemetry.
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}


@dataclass
class TrackingServer:
    """A running `mlflow server` in its own process group."""

    process: subprocess.Popen
    url: str
    log_path: Path
    state_dir: Path
    _owned: list[tempfile.TemporaryDirectory] = field(default_factory=list)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the whole group (gunicorn/uvicorn workers included), SIGKILL if it lingers."""
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.process, signal.SIGKILL)
                self.process.wait(timeout=timeout)
        for owned in self._owned:
            owned.cleanup()

    def __enter__(self) -> TrackingServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _auth_config(state_dir: Path) -> Path:
    """The basic-auth app's settings: its user database beside the server's state; the admin password is read
    from MLFLOW_AUTH_ADMIN_PASSWORD by MLflow itself, so it is written nowhere."""
    path = state_dir / "basic_auth.ini"
    path.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{state_dir / 'basic_auth.db'}\n"
        "admin_username = admin\n"
        # Checking a password (PBKDF2) on every request made each pipeline step several times slower.
        "auth_cache_ttl_seconds = 60\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    return path


def start_tracking_server(
    backend_store_uri: str,
    artifacts_destination: str,
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    auth: bool = False,
    env: dict[str, str] | None = None,
    state_dir: Path | None = None,
    timeout: float = 90.0,
) -> TrackingServer:
    """Start `mlflow server` with proxied artifacts and wait until `/health` answers; the server's output goes to
    `<state_dir>/server.log`. Raises RuntimeError (with the log's end) if it exits or does not answer in time."""
    owned = [] if state_dir else [tempfile.TemporaryDirectory(prefix="mlflow-server-")]
    state_dir = Path(state_dir or owned[0].name)
    state_dir.mkdir(parents=True, exist_ok=True)
    server_env = {**os.environ, **(env or {}), **SERVER_ENV}
    # The environment's own bin folder first: the server starts its workers through `uvicorn` on PATH.
    server_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{server_env.get('PATH', '')}"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_store_uri,
        "--artifacts-destination",
        artifacts_destination,
        "--serve-artifacts",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    if auth:
        command += ["--app-name", "basic-auth"]
        server_env["MLFLOW_AUTH_CONFIG_PATH"] = str(_auth_config(state_dir))
        # CSRF protection needs a key; one server can make its own, several behind a balancer must share one.
        server_env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(32))
    log_path = state_dir / "server.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command, env=server_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = TrackingServer(process, f"http://{host}:{port}", log_path, state_dir, owned)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if healthy(server.url):
            return server
        time.sleep(0.3)
    tail = log_path.read_text(errors="replace")[-2000:]
    server.stop()
    raise RuntimeError(f"mlflow server on {server.url} did not become healthy:\n{tail}")


def ensure_bucket(bucket: str) -> None:
    """Create the S3 bucket if it does not exist (endpoint and keys from the environment, as for the server)."""
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3", endpoint_url=os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None)
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        s3.create_bucket(Bucket=bucket)


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database of `url` if it does not exist yet (MLflow creates tables, not databases)."""
    if not url.startswith("postgresql"):
        return
    import psycopg
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target.database,)).fetchone():
            connection.execute(f'CREATE DATABASE "{target.database}"')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend-store-uri", required=True, help="e.g. postgresql://postgres@127.0.0.1:5432/mlflow")
    parser.add_argument("--artifacts-destination", required=True, help="e.g. s3://mlflow/artifacts")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--auth", action="store_true", help="MLflow's basic-auth app (MLFLOW_AUTH_ADMIN_PASSWORD)")
    parser.add_argument("--state-dir", default=".mlflow-server", help="server log and auth database")
    args = parser.parse_args(argv)
    ensure_database(args.backend_store_uri)
    if args.artifacts_destination.startswith("s3://"):
        ensure_bucket(args.artifacts_destination.removeprefix("s3://").split("/")[0])
    server = start_tracking_server(
        args.backend_store_uri,
        args.artifacts_destination,
        host=args.host,
        port=args.port,
        auth=args.auth,
        state_dir=Path(args.state_dir),
    )
    print(
        f"MLflow tracking server on {server.url} (log: {server.log_path}); Ctrl-C stops it.\n"
        f"  export MLFLOW_TRACKING_URI={server.url}",
        flush=True,
    )
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
