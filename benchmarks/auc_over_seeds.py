"""Test ROC AUC of the default chain over several split seeds, each on a fresh temporary tracking store.

Usage: .venv/bin/python benchmarks/auc_over_seeds.py [--seeds 1 2 3 4 5] [--n-trials 50]
Prints one line per seed (test ROC AUC of train, wall time of the chain) and the mean. Held-out test rows are
never seen by tuning or early stopping: tune splits its validation rows off the train split.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--n-trials", type=int, default=50)
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "pipeline.yaml"))
    args = parser.parse_args()
    from loguru import logger

    from pipeline.cli import quiet_libraries
    from pipeline.config import load_config
    from pipeline.steps.chain import run_chain

    logger.remove()
    quiet_libraries()
    aucs = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
            os.chdir(tmp)
            config = load_config(args.config, {"split.seed": seed, "tune.n_trials": args.n_trials})
            started = time.perf_counter()
            result = run_chain(config)
            elapsed = time.perf_counter() - started
        auc = result.step("train").metrics["test_roc_auc"]
        aucs.append(auc)
        print(
            f"split seed {seed}: test ROC AUC {auc:.4f}  chain {elapsed:.1f} s  "
            f"verdict {result.step('evaluate').verdict}",
            flush=True,
        )
    print(f"mean test ROC AUC over {len(aucs)} seeds: {statistics.mean(aucs):.4f} (min {min(aucs):.4f})")


if __name__ == "__main__":
    main()
