"""Tuning figures: the cost of nested MLflow runs per trial, and trials per second with 1 vs 2 PostgreSQL workers.

Usage: .venv/bin/python benchmarks/tuning_overhead.py [--trials 100] [--worker-trials 40] [--repeats 2]
       [--skip-postgres] [--skip-long-trials | --long-trials] [--long-trial-count 16] [--long-rows 200000]
       [--long-set KEY=VALUE ...]
Part 1 runs the same seeded study (breast cancer, default config) twice per repeat, alternating: without MLflow,
then with one nested run per trial on a fresh SQLite store. The best wall time of each is kept; target ratio <= 1.25.
Part 2 runs one study on a fresh local PostgreSQL database with 1 worker process, then with 2 (each worker
logging its nested runs to one SQLite store), and prints finished trials per second. Its trials take ~0.1-0.3 s,
so it measures the storage and process start-up more than scaling: the worst case.
Part 3 (--long-trials: only it; --skip-long-trials: not it; ~1.5 min) does the same with trials of 2-3 s: the
pipeline's objective (make_objective, run_trials) on a make_classification table of 200,000 rows x 30 features
(seeded; tune's own 80/20 fit/valid split), XGBoost on 1 thread per worker, at most 100 rounds, early stopping 20,
the default search space and pruner, 16 finished trials per study. The clock starts when every worker has imported,
built its data and opened the study. Each worker times every call to its study's storage (the object the sampler,
pruner and trial use; the outermost call only), the trial loop's and the heartbeat thread's apart, and its nested
MLflow runs (written inline, as in part 2; the pipeline writes them from a forked process). Printed: trials/s and
boosting rounds/s for 1 and 2 workers, the mean trial (a worker's wall time per trial it ran), and the storage time
per trial by method. Targets: 2 workers >= 1.7x one; storage < 5% of a trial.
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
    from pipeline.engines.local.preprocess import prepare

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


# --- part 3: long trials (~1 s and more), where storage should be a small share of a trial ---------------------------

LONG_ROWS, LONG_FEATURES = 200_000, 30
# One XGBoost thread per worker; rounds capped so that a trial takes ~1-3 s on 160,000 fit rows (search space default).
LONG_SETTINGS = {"tune.threads_per_trial": 1, "tune.max_boosting_rounds": 100, "tune.early_stopping_rounds": 20}


def _long_table(rows: int):
    """The train split of part 3: make_classification, seeded (as scale.py), with the pipeline's target column."""
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=rows, n_features=LONG_FEATURES, n_informative=LONG_FEATURES // 3, random_state=0
    )
    return pd.DataFrame(x.astype("float32"), columns=[f"f{i}" for i in range(LONG_FEATURES)]).assign(target=y)


class _StorageTimer:
    """Times every call the worker makes to its study's storage (the outermost call only: a cached storage's method
    calling another is counted once), per method and per thread: the trial loop's own (main thread) and Optuna's
    heartbeat thread. Patches this worker's storage object only, never the pipeline's classes."""

    def __init__(self, storage) -> None:
        import threading

        from optuna.storages import BaseStorage
        from optuna.storages._heartbeat import BaseHeartbeat

        self._threading, self._local, self._lock = threading, threading.local(), threading.Lock()
        self.calls: dict[tuple[str, str], list] = {}
        names = {n for base in (BaseStorage, BaseHeartbeat) for n in dir(base) if not n.startswith("_")}
        for name in sorted(names | {"_get_stale_trial_ids"}):
            method = getattr(storage, name, None)
            if callable(method):
                setattr(storage, name, self._timed(name, method))

    def _timed(self, name: str, method):
        def timed(*args, **kwargs):
            if getattr(self._local, "inside", False):
                return method(*args, **kwargs)
            self._local.inside, started = True, time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                seconds = time.perf_counter() - started
                self._local.inside = False
                thread = "main" if self._threading.current_thread() is self._threading.main_thread() else "heartbeat"
                with self._lock:
                    entry = self.calls.setdefault((thread, name), [0, 0.0])
                    entry[0] += 1
                    entry[1] += seconds

        return timed

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()


def _timed_callable(function, totals: list):
    """`function`, adding its calls' wall seconds to totals[0]."""

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            totals[0] += time.perf_counter() - started

    return timed


def _long_worker(
    storage: str, name: str, trials: int, rows: int, overrides: dict, tracking_uri: str, ready, results
) -> None:
    import mlflow
    from loguru import logger
    from mlflow.tracking import MlflowClient

    from pipeline.cli import quiet_libraries
    from pipeline.tuning.study import make_objective, open_study, run_trials
    from pipeline.tuning.trial_runs import TrialRunLogger

    quiet_libraries()
    logger.remove()
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    config = _config({**LONG_SETTINGS, **overrides, "tune.n_trials": trials, "tune.storage": storage})
    mlflow_s = [0.0]
    objective = make_objective(_long_table(rows), config, TASK)  # tune's fit/valid split is made here
    study = open_study(config, name)
    timer = _StorageTimer(study._storage)  # the study's own storage object: what the sampler, pruner and trials use
    with mlflow.start_run() as parent:
        runs = TrialRunLogger(MlflowClient(), "0", parent.info.run_id, "logloss")
        ready.wait(timeout=600)  # every worker has imported, built its data and opened the study: the clock starts
        timer.reset()
        started = time.monotonic()
        run_trials(study, None, config, TASK, [_timed_callable(runs, mlflow_s)], objective=objective)
        ended = time.monotonic()
    results.put(
        {
            "started": started,
            "ended": ended,
            "trials": runs.logged,
            "mlflow_s": mlflow_s[0],
            "calls": {f"{thread}:{method}": entry for (thread, method), entry in timer.calls.items()},
        }
    )


def _long_trials(workers: int, trials: int, rows: int, overrides: dict) -> dict:
    """One study of `trials` finished trials on a fresh PostgreSQL database with `workers` spawned processes."""
    import optuna
    import psycopg

    from pipeline.tuning.study import FINISHED_STATES

    database = f"bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True)
    admin.execute(f'CREATE DATABASE "{database}"')
    storage = f"postgresql://postgres@127.0.0.1:5432/{database}"
    try:
        optuna.storages.RDBStorage(storage)  # schema first
        with tempfile.TemporaryDirectory() as tmp:
            tracking = f"sqlite:///{tmp}/mlflow.db"
            os.environ["MLFLOW_TRACKING_URI"] = tracking
            __import__("mlflow").tracking.MlflowClient().search_experiments()
            context = multiprocessing.get_context("spawn")
            ready, results = context.Barrier(workers + 1), context.Queue()
            args = (storage, "bench-long", trials, rows, overrides, tracking, ready, results)
            processes = [context.Process(target=_long_worker, args=args) for _ in range(workers)]
            for process in processes:
                process.start()
            ready.wait(timeout=600)
            reports = [results.get(timeout=1200) for _ in processes]
            for process in processes:
                process.join()
        trials_done = optuna.load_study(study_name="bench-long", storage=storage).get_trials(states=FINISHED_STATES)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()
    elapsed = max(r["ended"] for r in reports) - min(r["started"] for r in reports)
    ran, finished = sum(r["trials"] for r in reports), len(trials_done)
    calls: dict[str, list] = {}
    for report in reports:
        for key, (count, seconds) in report["calls"].items():
            entry = calls.setdefault(key, [0, 0.0])
            entry[0] += count
            entry[1] += seconds
    return {
        "finished": finished,
        "per_second": finished / elapsed,
        "rounds_per_second": sum(_rounds(trial, {**LONG_SETTINGS, **overrides}) for trial in trials_done) / elapsed,
        "ran": ran,
        "trial_s": sum(r["ended"] - r["started"] for r in reports) / ran,  # a worker's wall time per trial it ran
        "mlflow_ms": 1000 * sum(r["mlflow_s"] for r in reports) / ran,
        "calls": {key: (count / ran, 1000 * seconds / ran) for key, (count, seconds) in calls.items()},
    }


def _rounds(trial, settings: dict) -> int:
    """Boosting rounds a finished trial trained: up to its pruning report, or its best round + early stopping."""
    if trial.state.name == "PRUNED":
        return max(trial.intermediate_values) + 1
    best = trial.user_attrs["best_iteration"]
    return min(settings["tune.max_boosting_rounds"], best + settings["tune.early_stopping_rounds"] + 1)


def _storage_ms(figures: dict, thread: str) -> float:
    return sum(ms for key, (_, ms) in figures["calls"].items() if key.startswith(f"{thread}:"))


def _long_trial_report(trials: int, rows: int, overrides: dict) -> None:
    one, two = _long_trials(1, trials, rows, overrides), _long_trials(2, trials, rows, overrides)
    rounds = {**LONG_SETTINGS, **overrides}["tune.max_boosting_rounds"]
    extra = "".join(f", {key}={value}" for key, value in overrides.items())
    print(
        f"long trials ({rows:,} x {LONG_FEATURES} make_classification, XGBoost on 1 thread, <= {rounds} rounds"
        f"{extra}), "
        f"PostgreSQL, {trials} trials: 1 worker {one['per_second']:.3f} trials/s, 2 workers "
        f"{two['per_second']:.3f} trials/s, speed-up {two['per_second'] / one['per_second']:.2f}x  (target >= 1.7); "
        f"mean trial {one['trial_s']:.2f} s (1 worker), {two['trial_s']:.2f} s (2 workers); boosting rounds/s "
        f"{one['rounds_per_second']:.1f} and {two['rounds_per_second']:.1f}: "
        f"{two['rounds_per_second'] / one['rounds_per_second']:.2f}x (the studies draw different trials)"
    )
    for label, figures in (("1 worker", one), ("2 workers", two)):
        main_ms, beat_ms, trial_ms = (
            _storage_ms(figures, "main"),
            _storage_ms(figures, "heartbeat"),
            1000 * figures["trial_s"],
        )
        top = sorted(
            ((key.split(":", 1)[1], count, ms) for key, (count, ms) in figures["calls"].items() if key[:5] == "main:"),
            key=lambda item: -item[2],
        )
        rest = sum(ms for _, _, ms in top[6:])
        breakdown = ", ".join(
            f"{name} {ms:.1f} ms {100 * ms / trial_ms:.2f}% ({count:.0f}x)" for name, count, ms in top[:6]
        )
        beats = sum(count for key, (count, _) in figures["calls"].items() if key.startswith("heartbeat:record"))
        print(
            f"  {label}: storage {main_ms:.1f} ms per trial, {100 * main_ms / trial_ms:.1f}% of a "
            f"{figures['trial_s']:.2f} s trial (target < 5%): {breakdown}, other calls {rest:.1f} ms; heartbeat "
            f"thread {beat_ms:.1f} ms per trial ({beats:.1f} heartbeats); MLflow trial run (inline, not counted as "
            f"storage) {figures['mlflow_ms']:.1f} ms per trial"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--worker-trials", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-postgres", action="store_true", help="skip parts 2 and 3")
    parser.add_argument("--long-trials", action="store_true", help="run part 3 only")
    parser.add_argument("--skip-long-trials", action="store_true", help="skip part 3")
    parser.add_argument("--long-trial-count", type=int, default=16, help="finished trials per study in part 3")
    parser.add_argument("--long-rows", type=int, default=LONG_ROWS)
    parser.add_argument("--long-set", action="append", default=[], metavar="KEY=VALUE", help="a config override")
    args = parser.parse_args()
    import yaml

    overrides = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.long_set)}
    from pipeline.cli import configure_console, quiet_libraries

    configure_console()
    quiet_libraries()
    from loguru import logger

    logger.remove()
    from pipeline.tuning.study import usable_cores

    if args.long_trials:
        _long_trial_report(args.long_trial_count, args.long_rows, overrides)
        return
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
            f"trials/s, speed-up {two / one:.2f}x  (worst case: ~0.3 s trials, measures the storage)"
        )
        if not args.skip_long_trials:
            _long_trial_report(args.long_trial_count, args.long_rows, overrides)


if __name__ == "__main__":
    main()
