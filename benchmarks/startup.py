"""Start-up cost of a command: the floor `python -c "import mlflow"`, a fully reused `python -m pipeline main`, and
`python -m pipeline train` alone, each a fresh process, the median of --repeats runs, in one run of this script; and,
to show what no change to train's own work can remove, a process that only imports what train imports and opens the
store (the least any single train process takes).

Usage: .venv/bin/python benchmarks/startup.py [--repeats 3]
A first `main` (10 trials) fills a fresh SQLite store, so the timed `main` runs reuse all four steps; train alone
refits from the newest tune run and registers a new version each time. Goals: reused main <= 2x the floor, train
alone <= 2.5x the floor.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, ROOT, fresh_store, run_measured

CONFIG = str(ROOT / "configs" / "pipeline.yaml")
# What `python -m pipeline train` does before its run starts: MLflow, the SQLAlchemy store, XGBoost (which imports
# scikit-learn and SciPy), pandas and the step's own modules.
TRAIN_IMPORTS = (
    "from pipeline.tracking.runs import check_tracking_store; check_tracking_store(); import pipeline.steps.train"
)


def median_seconds(command: list[str], env: dict[str, str], cwd: Path, repeats: int) -> tuple[float, list[float]]:
    times = [run_measured(command, env, cwd).seconds for _ in range(repeats)]
    return statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with fresh_store() as (uri, folder):
        env = {"MLFLOW_TRACKING_URI": uri}
        pipeline = [PYTHON, "-m", "pipeline"]
        run_measured([*pipeline, "main", "--config", CONFIG, "--n-trials", "10"], env, folder)
        timed = {
            "floor: python -c 'import mlflow'": [PYTHON, "-c", "import mlflow"],
            "python -m pipeline main, all four steps reused": [
                *pipeline,
                "main",
                "--config",
                CONFIG,
                "--n-trials",
                "10",
            ],
            "python -m pipeline train alone": [*pipeline, "train", "--config", CONFIG],
            "train's imports and the store opened, no work": [PYTHON, "-c", TRAIN_IMPORTS],
        }
        results = {what: median_seconds(command, env, folder, args.repeats) for what, command in timed.items()}
    floor = next(iter(results.values()))[0]
    for what, (median, times) in results.items():
        ratio = "" if median == floor else f"  ({median / floor:.2f}x the floor)"
        print(f"{what}: median {median:.2f} s of {', '.join(f'{t:.2f}' for t in times)}{ratio}")
    reused, train, imports = (results[key][0] / floor for key in list(results)[1:])
    print(
        f"train's own work (train alone less its imports): {(train - imports) * floor:.2f} s; "
        f"its imports leave {max(2.5 - imports, 0) * floor:.2f} s of the 2.5x goal for it"
    )
    print(
        f"goals: reused main {reused:.2f}x <= 2x: {'PASS' if reused <= 2 else 'FAIL'}; "
        f"train alone {train:.2f}x <= 2.5x: {'PASS' if train <= 2.5 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
