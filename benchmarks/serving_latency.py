"""Serving latency: the registered champion (the feature hook, date parts and label mapping inside it) behind
`mlflow models serve`, answering single raw rows over HTTP: p50 / p99 / mean of N requests, one at a time on one
kept-alive connection, next to the same model called in Python (`model.predict(one_row)`), which shows how much of
the time is HTTP and MLflow's request handling rather than the model.

Usage: .venv/bin/python benchmarks/serving_latency.py [--requests 1000] [--trials 10]
Two tables: breast cancer (the default config: 30 numbers, the example ratio hook) and examples/churn.csv (text
categories, a date, gaps, yes/no labels). Each champion is trained first on a fresh SQLite store (not timed).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PYTHON, QUIET_ENV, ROOT, fresh_store, run_measured

MLFLOW = str(Path(PYTHON).parent / "mlflow")
TABLES = {
    "breast cancer": ("configs/pipeline.yaml", "breast-cancer-xgb"),
    "churn (dates, categories, text labels)": ("configs/churn.yaml", "churn-xgb"),
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def raw_rows(config: str) -> list[dict]:
    """Rows of the source table as a client sends them (no target), JSON-ready."""
    code = (
        "import sys, json; from pipeline.config import load_config; from pipeline.data.sources import load_source; "
        "c = load_config(sys.argv[1]); f = load_source(c.data).drop(columns=[c.data.target]).head(200); "
        "print(f.to_json(orient='records'))"
    )
    done = subprocess.run([PYTHON, "-c", code, config], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50, p99 = ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, mean {statistics.fmean(ordered):.1f} ms"


def over_http(port: int, rows: list[dict], requests: int) -> list[float]:
    connection, samples = http.client.HTTPConnection("127.0.0.1", port, timeout=30), []
    columns = list(rows[0])
    for index in range(requests):
        row = rows[index % len(rows)]
        body = json.dumps({"dataframe_split": {"columns": columns, "data": [[row[c] for c in columns]]}})
        started = time.perf_counter()
        connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = response.read()
        samples.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            raise RuntimeError(f"request {index} answered {response.status}: {payload[:300]!r}")
    connection.close()
    return samples


def in_python(uri: str, model_uri: str, rows: list[dict], requests: int) -> str:
    code = (
        "import sys, json, time, statistics, mlflow, pandas as pd; mlflow.set_tracking_uri(sys.argv[1]); "
        "m = mlflow.pyfunc.load_model(sys.argv[2]); rows = json.loads(sys.stdin.read()); n = int(sys.argv[3]); "
        "frames = [pd.DataFrame([r]) for r in rows]; m.predict(frames[0]); t = []\n"
        "for i in range(n):\n    s = time.perf_counter(); m.predict(frames[i % len(frames)]); "
        "t.append((time.perf_counter() - s) * 1000)\n"
        "t.sort(); print(t[len(t) // 2], t[min(len(t) - 1, int(len(t) * 0.99))])"
    )
    done = subprocess.run(
        [PYTHON, "-c", code, uri, model_uri, str(requests)],
        input=json.dumps(rows),
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **QUIET_ENV},
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    p50, p99 = map(float, done.stdout.split()[-2:])
    return f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"


def serve(uri: str, model_uri: str, port: int, log: Path) -> subprocess.Popen:
    path = f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [
                MLFLOW,
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
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **QUIET_ENV, "MLFLOW_TRACKING_URI": uri, "PATH": path},
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and server.poll() is None:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.5)
    os.killpg(server.pid, signal.SIGTERM)
    raise RuntimeError(f"mlflow models serve did not answer: {log.read_text()[-2000:]}")


def measure(name: str, config: str, model_name: str, requests: int, trials: int) -> None:
    rows = raw_rows(config)
    with fresh_store() as (uri, tmp):
        run_measured(
            [PYTHON, "-m", "pipeline", "main", "--config", config, "--n-trials", str(trials)],
            {"MLFLOW_TRACKING_URI": uri},
        )
        model_uri = f"models:/{model_name}@champion"
        server = serve(uri, model_uri, free_port(), tmp / "serve.log")
        try:
            port = int(server.args[server.args.index("--port") + 1])
            over_http(port, rows, 20)  # warm-up
            http_figures = percentiles(over_http(port, rows, requests))
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        python_figures = in_python(uri, model_uri, rows, requests)
    print(
        f"{name}: {requests} single-row requests over HTTP: {http_figures}; the same model in Python "
        f"(model.predict of one row): {python_figures}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    for name, (config, model_name) in TABLES.items():
        measure(name, config, model_name, args.requests, args.trials)


if __name__ == "__main__":
    main()
