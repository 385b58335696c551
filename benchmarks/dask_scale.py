"""Dask engine at scale: a synthetic Parquet dataset (a folder of part files; N rows x 30 features: 28 numbers and
two text categories, a few values missing; a binary target with learnable signal; seeded) through preprocess, tune,
train and evaluate, each step its own `python -m pipeline <step>` process, on engine dask (a LocalCluster) and on
engine local (sizes up to --local-max-rows). Each engine and size gets a fresh SQLite store and artifact root.

Measured per step: wall time, and the peak RSS of every process of the step (the step's own process, the "driver",
and each Dask worker), sampled with psutil every 0.2 s; the kernel's peak RSS of the largest process in the tree
(wait4) is printed too, the check that sampling missed no spike. Goals: dask completes the largest size (10M rows)
with no process above 4 GB; dask's chain is no more than 1.5x local's at 1M rows (sum of the step wall times).

Usage: .venv/bin/python benchmarks/dask_scale.py [--rows 1000000 10000000] [--local-max-rows 1000000]
       [--trials 3] [--rounds 100] [--workers 2] [--memory-limit 1.5GB] [--rows-per-file 250000] [--log-dir DIR]
Quick check of the script: --rows 50000 200000 --local-max-rows 200000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PYTHON, QUIET_ENV, ROOT

STEPS = ("preprocess", "tune", "train", "evaluate")
MB = 1024 * 1024
LIMIT_MB = 4096  # the goal: no process above 4 GB
SLOWDOWN_GOAL = 1.5  # the goal: dask's chain at most 1.5x local's at 1M rows
N_NUMBERS = 28
CATEGORIES = {"region": 6, "segment": 40}  # text columns and their number of values


# --- the dataset ---------------------------------------------------------------------------------------------------


def _part(rows: int, seed: int, index: int):
    """One part file's rows as an Arrow table: seeded by (seed, index), so a size's parts are the same every time
    (and the first parts of a larger size are those of a smaller one with the same rows per file)."""
    import numpy as np
    import pyarrow as pa

    effects = np.random.default_rng(seed)  # the categories' effects: the same in every part
    region_effect = effects.normal(0, 0.8, CATEGORIES["region"])
    segment_effect = effects.normal(0, 0.5, CATEGORIES["segment"])
    rng = np.random.default_rng([seed, index])
    x = rng.standard_normal((rows, N_NUMBERS))
    region = rng.integers(0, CATEGORIES["region"], rows)
    segment = rng.integers(0, CATEGORIES["segment"], rows)
    logit = (
        1.4 * x[:, 0]
        - 1.1 * x[:, 1]
        + 0.9 * x[:, 2] * x[:, 3]
        + 1.0 * np.sin(2 * x[:, 4])
        + 0.8 * (x[:, 5] > 0.5)
        + 0.5 * x[:, 6] ** 2
        - 0.9
        + region_effect[region]
        + segment_effect[segment]
    )
    target = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    x[rng.random(rows) < 0.02, 7] = np.nan  # a few missing numbers
    x[rng.random(rows) < 0.01, 8] = np.nan
    columns = {f"f{i:02d}": pa.array(x[:, i]) for i in range(N_NUMBERS)}
    for name, codes, missing in (("region", region, 0.01), ("segment", segment, 0.005)):
        levels = np.array([f"{name}_{j:02d}" for j in range(CATEGORIES[name])], dtype=object)
        values = levels[codes]
        values[rng.random(rows) < missing] = None
        columns[name] = pa.array(values, type=pa.string())
    columns["target"] = pa.array(target)
    return pa.table(columns)


def write_dataset(folder: Path, rows: int, rows_per_file: int, seed: int) -> list[Path]:
    """The dataset as part files in `folder`, written one at a time (one part in memory, never the table)."""
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    parts = []
    for index in range(math.ceil(rows / rows_per_file)):
        path = folder / f"part-{index:04d}.parquet"
        pq.write_table(_part(min(rows_per_file, rows - index * rows_per_file), seed, index), path)
        parts.append(path)
    return parts


def merge_parts(parts: list[Path], path: Path) -> None:
    """The same rows as one Parquet file, what the local engine reads: streamed part by part."""
    import pyarrow.parquet as pq

    writer = None
    try:
        for part in parts:
            table = pq.read_table(part)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


# --- measuring a step ----------------------------------------------------------------------------------------------


@dataclass
class StepFigures:
    engine: str
    rows: int
    step: str
    seconds: float = 0.0
    driver_mb: float = 0.0
    worker_mb: float | None = None  # the largest Dask worker (None: no worker process)
    other_mb: float = 0.0  # the largest other child process (resource tracker, a forked writer)
    kernel_mb: float = 0.0  # wait4's ru_maxrss: the largest process of the tree, exactly
    workers_seen: int = 0
    error: str = ""
    result: dict = field(default_factory=dict)

    @property
    def highest_mb(self) -> float:
        return max(self.driver_mb, self.worker_mb or 0.0, self.other_mb, self.kernel_mb)


class TreeSampler(threading.Thread):
    """The peak RSS of each process of a tree (the root and its descendants), sampled every `every` seconds."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        import psutil

        self._psutil, self._root, self._every = psutil, psutil.Process(pid), every
        self._done = threading.Event()
        self.peaks: dict[int, int] = {}
        self.kinds: dict[int, str] = {}

    def run(self) -> None:
        while not self._done.is_set():
            self._sample()
            self._done.wait(self._every)

    def stop(self) -> None:
        self._done.set()
        self.join()

    def _sample(self) -> None:
        psutil = self._psutil
        try:
            processes = [self._root, *self._root.children(recursive=True)]
        except psutil.Error:
            return
        for process in processes:
            try:
                rss = process.memory_info().rss
                if process.pid not in self.kinds:
                    self.kinds[process.pid] = self._kind(process)
            except psutil.Error:
                continue
            self.peaks[process.pid] = max(self.peaks.get(process.pid, 0), rss)

    def _kind(self, process) -> str:
        if process.pid == self._root.pid:
            return "driver"
        command = " ".join(process.cmdline())
        if "resource_tracker" in command:
            return "other"
        # distributed's Nanny starts each worker with multiprocessing's spawn (or forkserver) method
        return "worker" if "spawn_main" in command or "forkserver" in command else "other"

    def peak_mb(self, kind: str) -> float | None:
        found = [peak for pid, peak in self.peaks.items() if self.kinds.get(pid) == kind]
        return max(found) / MB if found else None


def run_step(
    step: str, engine: str, rows: int, options: list[str], folder: Path, env: dict[str, str], timeout_s: float
) -> StepFigures:
    """One step as its own process in `folder`, measured; a failure is recorded, not raised."""
    figures = StepFigures(engine, rows, step)
    result_file = folder / f"{step}.json"
    command = [PYTHON, "-m", "pipeline", step, *options, "--engine", engine, "--result-file", str(result_file)]
    with open(folder / f"{step}.out", "w") as out, open(folder / f"{step}.log", "w") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=err, start_new_session=True)
        sampler = TreeSampler(process.pid)
        sampler.start()
        timer = threading.Timer(timeout_s, os.killpg, (process.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
            sampler.stop()
        figures.seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
    try:  # workers the step did not stop (it was killed, say): they belong to this run, end them
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    figures.driver_mb = sampler.peak_mb("driver") or 0.0
    figures.worker_mb = sampler.peak_mb("worker")
    figures.other_mb = sampler.peak_mb("other") or 0.0
    figures.kernel_mb = usage.ru_maxrss / 1024  # KiB on Linux
    figures.workers_seen = sum(kind == "worker" for kind in sampler.kinds.values())
    if process.returncode != 0:
        tail = (folder / f"{step}.log").read_text().strip().splitlines()[-15:]
        killed = f"killed after {timeout_s:.0f} s (--step-timeout); " if process.returncode == -signal.SIGKILL else ""
        figures.error = f"{killed}exit {process.returncode}: " + "\n".join(tail)
    elif result_file.exists():
        figures.result = json.loads(result_file.read_text())
    return figures


def chain(engine: str, rows: int, source: Path, args: argparse.Namespace, folder: Path) -> list[StepFigures]:
    """The four steps on a fresh tracking store and artifact root in `folder` (the steps' working folder)."""
    folder.mkdir(parents=True)
    scratch = folder / "tmp"  # the steps' temporary files and Dask's spill folder, removed with the rest
    scratch.mkdir()
    uri = f"sqlite:///{folder}/mlflow.db"
    env = {
        **os.environ,
        **QUIET_ENV,
        "PIPELINE_LOG_LEVEL": "INFO",  # timestamped phases in <step>.log (kept with --log-dir)
        "MLFLOW_TRACKING_URI": uri,
        "TMPDIR": str(scratch),
        "MPLCONFIGDIR": str(scratch / "matplotlib"),
        "PATH": f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    # The schema first (as common.fresh_store), from this folder: the Default experiment's artifacts land in it.
    subprocess.run(
        [PYTHON, "-c", f"from mlflow.tracking import MlflowClient; MlflowClient('{uri}').search_experiments()"],
        check=True,
        capture_output=True,
        cwd=folder,
        env=env,
    )
    config = folder / "bench.yaml"
    config.write_text(
        f"extends: {ROOT / 'configs' / 'pipeline.yaml'}\n"
        f"data:\n  source: {source}\n  target: target\n"
        "registry:\n  model_name: dask-scale-xgb\n"
        f"dask:\n  n_workers: {args.workers}\n  threads_per_worker: {args.threads_per_worker}\n"
        f"  memory_limit: {args.memory_limit}\n"
        f"tune:\n  n_trials: {args.trials}\n  max_boosting_rounds: {args.rounds}\n"
        f"  sample_rows: {args.tune_sample_rows or 'null'}\n"
    )
    figures = []
    for step in STEPS:
        measured = run_step(step, engine, rows, ["--config", str(config)], folder, env, args.step_timeout)
        figures.append(measured)
        worker = f"{measured.worker_mb:6.0f}" if measured.worker_mb is not None else "     -"
        print(
            f"  {engine:<5} {rows:>11,} {step:<10} {measured.seconds:7.1f} s  driver {measured.driver_mb:6.0f} MB  "
            f"worker {worker} MB  kernel max {measured.kernel_mb:6.0f} MB{'  FAILED' if measured.error else ''}",
            file=sys.stderr,
            flush=True,
        )
        if measured.error:
            print(measured.error, file=sys.stderr, flush=True)
            break
    if args.log_dir:
        kept = Path(args.log_dir) / f"{engine}-{rows}"
        kept.mkdir(parents=True, exist_ok=True)
        for log in [*folder.glob("*.log"), *folder.glob("*.json"), config]:
            shutil.copy(log, kept / log.name)
    return figures


# --- report --------------------------------------------------------------------------------------------------------


def _auc(figures: list[StepFigures]) -> str:
    for measured in figures:
        metrics = measured.result.get("metrics", {}) if measured.step == "evaluate" else {}
        for name in ("full_test_roc_auc", "roc_auc", "test_roc_auc"):
            if name in metrics:
                return f"{metrics[name]:.4f}"
    return "-"


def report(results: dict[tuple[str, int], list[StepFigures]], args: argparse.Namespace, skipped: list[str]) -> bool:
    """Print the table and the goal checks; True when every chain completed."""
    print(
        f"dask_scale: {args.trials} trials of at most {args.rounds} rounds, tune.sample_rows "
        f"{args.tune_sample_rows or 'null'}; dask: LocalCluster {args.workers} workers x {args.threads_per_worker} "
        f"thread, memory_limit {args.memory_limit} per worker; part files of up to {args.rows_per_file:,} rows"
    )
    print("engine | rows | step | wall s | driver peak MB | largest worker peak MB | largest process (kernel) MB")
    for (engine, rows), figures in results.items():
        for f in figures:
            worker = f"{f.worker_mb:.0f}" if f.worker_mb is not None else "-"
            extra = f" ({f.workers_seen} worker processes)" if f.workers_seen > args.workers else ""
            print(
                f"{engine} | {rows:,} | {f.step} | {f.seconds:.1f} | {f.driver_mb:.0f} | {worker}{extra} | "
                f"{f.kernel_mb:.0f}{' | FAILED' if f.error else ''}"
            )
        done = len(figures) == len(STEPS) and not any(f.error for f in figures)
        total = sum(f.seconds for f in figures)
        print(
            f"{engine} | {rows:,} | chain | {total:.1f} | highest process {max(f.highest_mb for f in figures):.0f} MB"
            f" | test ROC AUC {_auc(figures)}{'' if done else ' | INCOMPLETE'}"
        )
    for line in skipped:
        print(line)
    complete = {
        key: figs for key, figs in results.items() if len(figs) == len(STEPS) and not any(f.error for f in figs)
    }

    largest = max(args.rows)
    dask = results.get(("dask", largest))
    if "dask" not in args.engines:
        print("goal: dask completes the largest size with no process above 4 GB: not measured (--engines local)")
    elif dask is None:
        print(f"goal: dask completes {largest:,} rows with no process above 4 GB: FAIL (not run)")
    else:
        highest = max(dask, key=lambda f: f.highest_mb)
        ok = ("dask", largest) in complete and highest.highest_mb <= LIMIT_MB
        where = "worker" if highest.worker_mb and highest.worker_mb >= highest.driver_mb else "driver"
        print(
            f"goal: dask completes {largest:,} rows with no process above 4 GB: {'PASS' if ok else 'FAIL'} "
            f"({'completed' if ('dask', largest) in complete else 'did not complete'}; highest process "
            f"{highest.highest_mb:.0f} MB, a {where} in {highest.step})"
        )
    both = [rows for rows in sorted(args.rows) if ("dask", rows) in complete and ("local", rows) in complete]
    compared = 1_000_000 if 1_000_000 in both else (both[-1] if both else None)
    slower = f"goal: dask no more than {SLOWDOWN_GOAL}x slower than local"
    if not {"dask", "local"} <= set(args.engines):
        print(f"{slower}: not measured (--engines {' '.join(args.engines)})")
    elif compared is None:
        print(f"{slower} at 1,000,000 rows: FAIL (no size ran on both)")
    else:
        seconds = {e: sum(f.seconds for f in complete[(e, compared)]) for e in ("dask", "local")}
        ratio = seconds["dask"] / seconds["local"]
        print(
            f"{slower} at {compared:,} rows (sum of step wall times): {'PASS' if ratio <= SLOWDOWN_GOAL else 'FAIL'} "
            f"(dask {seconds['dask']:.1f} s, local {seconds['local']:.1f} s, {ratio:.2f}x)"
        )
    return len(complete) == len(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument(
        "--local-max-rows",
        type=int,
        default=1_000_000,
        help="engine local only up to this size (it holds the table in one process)",
    )
    parser.add_argument("--engines", nargs="+", default=["local", "dask"], choices=["local", "dask"])
    # 250,000 rows (~60 MB in pandas) per part file, so per Dask partition: with 1,000,000-row files (one row group
    # each, ~250 MB) 1.5 GB workers were killed in preprocess (a task peaks at ~5x its partition; docs/benchmarks.md).
    parser.add_argument("--rows-per-file", type=int, default=250_000)
    parser.add_argument("--min-files", type=int, default=4, help="at least this many part files (Dask partitions)")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=100, help="tune.max_boosting_rounds")
    parser.add_argument("--tune-sample-rows", type=int, default=0, help="tune.sample_rows (0: null, every row)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads-per-worker", type=int, default=1)
    parser.add_argument("--memory-limit", default="1.5GB", help="dask.memory_limit, per worker")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--step-timeout", type=float, default=3600.0, help="seconds before a step is killed")
    parser.add_argument("--log-dir", default="", help="keep each step's log and result here")
    parser.add_argument("--workdir", default="", help="parent of the temporary folder (default: the system's)")
    args = parser.parse_args()

    results: dict[tuple[str, int], list[StepFigures]] = {}
    skipped = []
    with tempfile.TemporaryDirectory(prefix="dask-scale-", dir=args.workdir or None) as tmp:
        for rows in sorted(args.rows):
            per_file = min(args.rows_per_file, math.ceil(rows / args.min_files))
            data = Path(tmp) / f"data-{rows}"
            started = time.perf_counter()
            parts = write_dataset(data / "parts", rows, per_file, args.seed)
            engines = [e for e in args.engines if e == "dask" or rows <= args.local_max_rows]
            if "local" in engines:
                merge_parts(parts, data / "table.parquet")
            print(
                f"{rows:,} rows: {len(parts)} part files of up to {per_file:,} rows written in "
                f"{time.perf_counter() - started:.1f} s ({sum(p.stat().st_size for p in parts) / MB:.0f} MB)",
                file=sys.stderr,
                flush=True,
            )
            if "local" in args.engines and "local" not in engines:
                skipped.append(
                    f"local | {rows:,} | skipped: above --local-max-rows {args.local_max_rows:,} (one process holds "
                    "the whole table)"
                )
            for engine in engines:
                source = data / "table.parquet" if engine == "local" else data / "parts"
                results[(engine, rows)] = chain(engine, rows, source, args, Path(tmp) / f"{engine}-{rows}")
                shutil.rmtree(Path(tmp) / f"{engine}-{rows}", ignore_errors=True)  # disk: splits, models, spill
            shutil.rmtree(data, ignore_errors=True)
    if not report(results, args, skipped):
        sys.exit(1)


if __name__ == "__main__":
    main()
