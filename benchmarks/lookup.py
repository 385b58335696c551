"""Upstream lookup cost: `latest_finished_run` (one indexed search_runs query) with 10, 1,000 and 10,000 runs in
the experiment, on SQLite and on the local PostgreSQL. Target: flat, under 50 ms at 10,000 runs.

Usage: .venv/bin/python benchmarks/lookup.py [--sizes 10 1000 10000] [--no-postgres]
The runs are written straight into the store's tables (creating 10,000 runs through the API would take minutes):
each has a step tag, a status (most FINISHED, some FAILED or RUNNING) and times; the newest finished `tune` run is
the answer, and the script checks it gets it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
STEPS = ("preprocess", "tune", "train", "evaluate")


def _fill(uri: str, experiment_id: str, runs: int) -> str:
    """Insert `runs` runs; returns the id of the newest FINISHED tune run."""
    from sqlalchemy import create_engine, text

    engine = create_engine(uri)
    now = int(time.time() * 1000)
    rows, tags, expected, newest = [], [], None, -1
    for i in range(runs):
        run_id = uuid.uuid4().hex
        step = STEPS[i % len(STEPS)]
        status = "FAILED" if i % 17 == 0 else "RUNNING" if i % 29 == 0 else "FINISHED"
        start = now - (runs - i) * 1000
        rows.append(
            {
                "run_uuid": run_id,
                "name": f"{step}-{i}",
                "source_type": "LOCAL",
                "source_name": "",
                "entry_point_name": "",
                "user_id": "bench",
                "status": status,
                "start_time": start,
                "end_time": None if status == "RUNNING" else start + 500,
                "source_version": "",
                "lifecycle_stage": "active",
                "artifact_uri": f"file:///tmp/{run_id}",
                "experiment_id": int(experiment_id),
            }
        )
        tags += [
            {"key": "pipeline.step", "value": step, "run_uuid": run_id},
            {"key": "mlflow.runName", "value": f"{step}-{i}", "run_uuid": run_id},
        ]
        if step == "tune" and status == "FINISHED" and start > newest:
            expected, newest = run_id, start
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
                "start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id) "
                "VALUES (:run_uuid, :name, :source_type, :source_name, :entry_point_name, :user_id, :status, "
                ":start_time, :end_time, :source_version, :lifecycle_stage, :artifact_uri, :experiment_id)"
            ),
            rows,
        )
        connection.execute(text("INSERT INTO tags (key, value, run_uuid) VALUES (:key, :value, :run_uuid)"), tags)
    with engine.begin() as connection:
        connection.execute(text("ANALYZE"))  # the statistics a live store has; a bulk insert leaves none
    engine.dispose()
    return expected


def lookup_ms(uri: str, runs: int, repeats: int = 25) -> float:
    """Median milliseconds of one upstream lookup in an experiment holding `runs` runs."""
    from mlflow.tracking import MlflowClient

    from pipeline.tracking.lookup import latest_finished_run

    client = MlflowClient(uri)
    experiment_id = client.create_experiment(f"lookup-{runs}-{uuid.uuid4().hex[:6]}")
    expected = _fill(uri, experiment_id, runs)
    assert latest_finished_run(client, experiment_id, "tune").info.run_id == expected
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        latest_finished_run(client, experiment_id, "tune")
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def _postgres_uri():
    import psycopg

    name = f"bench_lookup_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql://postgres@127.0.0.1:5432/{name}"


def _drop(name: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def measure(sizes: list[int], postgres: bool) -> dict[str, dict[int, float]]:
    import tempfile

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["SQLite"] = {size: lookup_ms(f"sqlite:///{tmp}/mlflow.db", size) for size in sizes}
    if postgres:
        name, uri = _postgres_uri()
        try:
            results["PostgreSQL"] = {size: lookup_ms(uri, size) for size in sizes}
        finally:
            _drop(name)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000, 10000])
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    for store, timings in measure(args.sizes, not args.no_postgres).items():
        figures = ", ".join(f"{size:,} runs {ms:.1f} ms" for size, ms in timings.items())
        print(f"upstream lookup on {store}: {figures} (target < 50 ms at 10,000)", flush=True)


if __name__ == "__main__":
    main()
