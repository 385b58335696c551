"""Scale: a synthetic table (make_classification, seeded; 1,000,000 rows x 30 features by default) through
preprocess, tune (10 trials), train and evaluate, each step its own process as an orchestrator runs them.
Prints each step's wall time and peak memory. Target: every step under 4 GB.

Usage: .venv/bin/python benchmarks/scale.py [--rows 1000000] [--features 30] [--trials 10]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PYTHON, ROOT, fresh_store, run_measured

STEPS = ("preprocess", "tune", "train", "evaluate")


def write_table(path: Path, rows: int, features: int) -> None:
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=rows, n_features=features, n_informative=features // 3, random_state=0)
    frame = pd.DataFrame(x.astype("float32"), columns=[f"f{i}" for i in range(features)]).assign(target=y)
    frame.to_parquet(path, index=False)


def measure(rows: int, features: int, trials: int) -> dict[str, tuple[float, float]]:
    """{step: (seconds, peak MB)} for one chain on a fresh store."""
    with fresh_store() as (uri, folder):
        table = folder / "table.parquet"
        write_table(table, rows, features)
        options = [
            "--config",
            str(ROOT / "configs" / "pipeline.yaml"),
            "--set",
            f"data.source={table}",
            "--set",
            "registry.model_name=scale-xgb",
            "--n-trials",
            str(trials),
        ]
        figures = {}
        for step in STEPS:
            measured = run_measured([PYTHON, "-m", "pipeline", step, *options], {"MLFLOW_TRACKING_URI": uri})
            figures[step] = (measured.seconds, measured.peak_mb)
            print(f"  {step:<10} {measured.seconds:7.1f} s  peak {measured.peak_mb:7.0f} MB", flush=True)
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    print(f"scale: {args.rows:,} rows x {args.features} features, {args.trials} trials", flush=True)
    figures = measure(args.rows, args.features, args.trials)
    total = sum(seconds for seconds, _ in figures.values())
    peak = max(peak for _, peak in figures.values())
    print(f"scale total {total:.1f} s, highest peak {peak:.0f} MB (target < 4096 MB)")


if __name__ == "__main__":
    main()
