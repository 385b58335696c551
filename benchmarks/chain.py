"""End to end: the whole chain (breast cancer, 50 trials) in one process, through `mlflow run -e main`, and with
each step launched by `mlflow run` on its own: wall time, peak memory, test ROC AUC; the launcher's overhead.

Usage: .venv/bin/python benchmarks/chain.py [--trials 50]
Each variant runs on a fresh SQLite store whose schema already exists (creating one costs ~3 s, not counted).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PYTHON, ROOT, fresh_store, run_measured

MLFLOW = str(Path(PYTHON).parent / "mlflow")


def in_process(trials: int):
    with fresh_store() as (uri, _):
        measured = run_measured(
            [PYTHON, "-m", "pipeline", "main", "--n-trials", str(trials), "--json"], {"MLFLOW_TRACKING_URI": uri}
        )
    result = json.loads(measured.stdout.strip().splitlines()[-1])
    return measured, result["steps"][2]["metrics"]["test_roc_auc"]


def launched(trials: int, per_step: bool) -> tuple[float, float]:
    """(seconds, peak MB) of `mlflow run -e main`, or of the four steps each through `mlflow run`."""
    runs = (
        [("preprocess", []), ("tune", ["-P", f"n-trials={trials}"]), ("train", []), ("evaluate", [])]
        if per_step
        else [("main", ["-P", f"n-trials={trials}"])]
    )
    seconds, peak = 0.0, 0.0
    with fresh_store() as (uri, _):
        for entry, parameters in runs:
            measured = run_measured(
                [MLFLOW, "run", str(ROOT), "-e", entry, "--env-manager", "local", *parameters],
                {"MLFLOW_TRACKING_URI": uri},
            )
            seconds, peak = seconds + measured.seconds, max(peak, measured.peak_mb)
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    args = parser.parse_args()
    measured, auc = in_process(args.trials)
    print(
        f"chain in one process (python -m pipeline main, {args.trials} trials): {measured.seconds:.1f} s, "
        f"peak {measured.peak_mb:.0f} MB, test ROC AUC {auc:.4f}",
        flush=True,
    )
    seconds, peak = launched(args.trials, per_step=False)
    print(
        f"chain through mlflow run -e main: {seconds:.1f} s, peak {peak:.0f} MB "
        f"(launcher overhead {seconds - measured.seconds:.1f} s)",
        flush=True,
    )
    seconds_steps, peak_steps = launched(args.trials, per_step=True)
    print(
        f"each step through its own mlflow run: {seconds_steps:.1f} s, peak {peak_steps:.0f} MB "
        f"({seconds_steps - measured.seconds:.1f} s more than one process)",
        flush=True,
    )


if __name__ == "__main__":
    main()
