"""Tuning figures: the cost of nested MLflow runs per trial, and trials per second with 1 vs 2 PostgreSQL workers.

Usage: .venv/bin/python benchmarks/tuning_overhead.py [--trials 100] [--worker-trials 40] [--repeats 2]
Part 1 runs the same seeded study (breast cancer, default config) twice per repeat, alternating: without MLflow,
then with one nested run per trial on a fresh SQLite store. The best wall time of each is kept; target ratio <= 1.25.
Part 2 runs one study on a fresh local PostgreSQL database with 1 worker process, then with 2 (each worker
logging its nested runs to one SQLite store), and prints finished trials per second; target speed-up >= 1.7.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TASK = "binary"  # the default dataset's


def _config(overrides: dict):
    from pipeline.config import load_config
    from pipeline.tuning.study import resolve_metric

    return resolve_metric(load_config(ROOT / "configs" / "pipeline.yaml", overrides), TASK)


def _train_split():
    from pipeline.steps.preprocess import prepare

    return prepare(_config({}))[0]


def _study_seconds(trials: int, with_mlflow: bool, threads: int | None = None) -> float:
    import mlflow
    from mlflow.tracking import MlflowClient

    from pipeline.tuning.study import open_study, run_trials
    from pipeline.tuning.trial_runs import TrialRunLogger
    from pipeline.tuning.trial_writer import TrialRunWriter

    config, train = _config({"tune.n_trials": trials, "tune.threads_per_trial": threads}), _train_split()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        client = MlflowClient()
        client.search_experiments()  # create the store's schema before the clock starts
        started = time.perf_counter()
        study = open_study(config, f"bench-{uuid.uuid4().hex[:8]}")
        if with_mlflow:
            with mlflow.start_run() as parent:
                runs = TrialRunLogger(client, "0", parent.info.run_id, "logloss")
                with TrialRunWriter(runs) as writer:
                    run_trials(study, train, config, TASK, [writer])
        else:
            run_trials(study, train, config, TASK, [])
        return time.perf_counter() - started


def _worker(storage: str, name: str, trials: int, threads: int, tracking_uri: str) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from pipeline.tuning.study import open_study, run_trials
    from pipeline.tuning.trial_runs import TrialRunLogger

    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    config = _config({"tune.n_trials": trials, "tune.storage": storage, "tune.threads_per_trial": threads})
    train = _train_split()
    study = open_study(config, name)
    with mlflow.start_run() as parent:
        run_trials(study, train, config, TASK, [TrialRunLogger(MlflowClient(), "0", parent.info.run_id, "logloss")])


def _trials_per_second(workers: int, trials: int) -> float:
    import optuna
    import psycopg

    from pipeline.tuning.study import FINISHED_STATES

    database = f"bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True)
    admin.execute(f'CREATE DATABASE "{database}"')
    storage = f"postgresql://postgres@127.0.0.1:5432/{database}"
    try:
        optuna.storages.RDBStorage(storage)  # schema first, so the clock measures trials only
        with tempfile.TemporaryDirectory() as tmp:
            tracking = f"sqlite:///{tmp}/mlflow.db"
            os.environ["MLFLOW_TRACKING_URI"] = tracking
            __import__("mlflow").tracking.MlflowClient().search_experiments()
            threads = max(1, (os.cpu_count() or 1) // workers)
            context = multiprocessing.get_context("spawn")
            processes = [
                context.Process(target=_worker, args=(storage, "bench", trials, threads, tracking))
                for _ in range(workers)
            ]
            started = time.perf_counter()
            for process in processes:
                process.start()
            for process in processes:
                process.join()
            elapsed = time.perf_counter() - started
        finished = len(optuna.load_study(study_name="bench", storage=storage).get_trials(states=FINISHED_STATES))
        return finished / elapsed
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--worker-trials", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    from pipeline.cli import configure_console, quiet_libraries

    configure_console()
    quiet_libraries()
    from loguru import logger

    logger.remove()
    from pipeline.tuning.study import usable_cores

    bare, bare_all_cores, tracked = [], [], []
    for _ in range(args.repeats):
        bare.append(_study_seconds(args.trials, with_mlflow=False))
        bare_all_cores.append(_study_seconds(args.trials, with_mlflow=False, threads=usable_cores()))
        tracked.append(_study_seconds(args.trials, with_mlflow=True))
    show = lambda times: f"{min(times):.2f} s (runs: {', '.join(f'{t:.2f}' for t in times)})"  # noqa: E731
    print(f"{args.trials} trials without MLflow, default settings: {show(bare)}")
    print(f"{args.trials} trials without MLflow, XGBoost on all {usable_cores()} cores: {show(bare_all_cores)}")
    print(f"{args.trials} trials with nested runs (SQLite), default settings: {show(tracked)}")
    print(
        f"tracking overhead ratio, same settings: {min(tracked) / min(bare):.3f}; against the fastest bare "
        f"study: {min(tracked) / min(bare + bare_all_cores):.3f}  (target <= 1.25)"
    )
    if not args.skip_postgres:
        one = _trials_per_second(1, args.worker_trials)
        two = _trials_per_second(2, args.worker_trials)
        print(
            f"PostgreSQL study, {args.worker_trials} trials: 1 worker {one:.2f} trials/s, 2 workers {two:.2f} "
            f"trials/s, speed-up {two / one:.2f}x  (target >= 1.7)"
        )


if __name__ == "__main__":
    main()
