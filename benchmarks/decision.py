"""The decision inside the model (config `decision`, `train.class_weight`): what a threshold rule, class weights and
calibration change on imbalanced binary tables, against the model answering its most probable label.

Tables (written as CSV files in a temporary folder, seeded):
  synthetic      5,000 generated rows, ~5% positive ("yes"): four numeric features, a noise column and a text
                 category (region), a logistic signal with a noise term in it;
  breast_cancer  scikit-learn's breast cancer, every benign row and a seeded sample of malignant ones (the positive
                 class), so that malignant is ~5% of the rows;
  digits         scikit-learn's digits as "is it a 9" (~10% positive).

For each table and split seed: preprocess, then tune once (configs/pipeline.yaml, features.derived false,
tune.n_trials --n-trials), then train once per configuration pinned to that tune run (train's upstream_run_id), so
the tuned params are the same and only the decision differs:
  baseline              threshold 0.5, no class weights, no calibration;
  f1                    threshold {optimize: f1};
  cost                  threshold {cost: {false_positive: 1, false_negative: 10}};
  balanced+isotonic+f1  train.class_weight balanced, calibration isotonic, threshold {optimize: f1} (on params tuned
                        without weights: tune is shared, so the weights change only train's fits).
Rules choose their threshold on out-of-fold predictions of the train split (decision.folds models), never on the test
split. Reported per table and configuration, mean ± sample std over the seeds: test F1, recall and precision and
the expected cost per row at (fp 1, fn 10), counted from the registered model's answers (mlflow.pyfunc.load_model of
train's model_uri) to the preprocess run's test rows; train's logged test_brier_score, test_roc_auc and
test_average_precision; the threshold train logged (param decision.threshold); train's wall time (the step, fold
fits, logging and registering included). The F1 counted from the loaded model's answers is checked against train's
logged test_f1 (the largest difference is printed).

Every step runs in this process on a fresh temporary SQLite tracking store.

Usage: .venv/bin/python benchmarks/decision.py [--seeds 1 2 3] [--n-trials 15]
                                               [--tables synthetic breast_cancer digits]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import QUIET_ENV, ROOT, fresh_store, machine

COST_FP, COST_FN = 1.0, 10.0
CONFIGURATIONS: dict[str, dict[str, object]] = {
    "baseline": {"decision.threshold": 0.5, "decision.calibration": "none", "train.class_weight": "none"},
    "f1": {"decision.threshold": {"optimize": "f1"}, "decision.calibration": "none", "train.class_weight": "none"},
    "cost": {
        "decision.threshold": {"cost": {"false_positive": COST_FP, "false_negative": COST_FN}},
        "decision.calibration": "none",
        "train.class_weight": "none",
    },
    "balanced+isotonic+f1": {
        "decision.threshold": {"optimize": "f1"},
        "decision.calibration": "isotonic",
        "train.class_weight": "balanced",
    },
}


@dataclass(frozen=True)
class Table:
    name: str
    path: Path
    target: str
    positive: str
    rows: int
    positives: int


def synthetic_table(folder: Path, rows: int = 5000, share: float = 0.05, seed: int = 7) -> Table:
    """~5% positive: a logistic signal of four numeric features and a region, plus a noise term in the logit."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 5)), columns=["income", "debt", "age", "tenure", "noise"])
    frame["region"] = rng.choice(["north", "south", "east", "west", "centre"], rows)
    region_effect = frame["region"].map({"north": 0.0, "south": 0.6, "east": -0.4, "west": 0.3, "centre": -0.2})
    signal = 1.4 * frame["debt"] - 1.0 * frame["income"] + 0.5 * frame["age"] * frame["debt"] - 0.4 * frame["tenure"]
    logit = signal + region_effect + rng.normal(scale=1.0, size=rows)
    # The intercept giving the wanted share of positives on average (bisection on the mean probability).
    low, high = -20.0, 20.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if np.mean(1 / (1 + np.exp(-(middle + logit)))) < share else (low, middle)
    positive = rng.random(rows) < 1 / (1 + np.exp(-(low + logit)))
    frame["default"] = np.where(positive, "yes", "no")
    path = folder / "synthetic.csv"
    frame.to_csv(path, index=False)
    return Table("synthetic", path, "default", "yes", rows, int(positive.sum()))


def breast_cancer_table(folder: Path, share: float = 0.05, seed: int = 0) -> Table:
    """scikit-learn's breast cancer with its malignant rows (the positive class) sampled down to ~5% of the rows."""
    from sklearn.datasets import load_breast_cancer

    loaded = load_breast_cancer(as_frame=True)
    frame = loaded.data.copy()
    frame["diagnosis"] = np.asarray(loaded.target_names)[loaded.target.to_numpy()]
    benign, malignant = frame[frame["diagnosis"] == "benign"], frame[frame["diagnosis"] == "malignant"]
    keep = round(share * len(benign) / (1 - share))
    frame = pd.concat([benign, malignant.sample(n=keep, random_state=seed)]).sample(frac=1.0, random_state=seed)
    path = folder / "breast_cancer.csv"
    frame.to_csv(path, index=False)
    return Table("breast_cancer", path, "diagnosis", "malignant", len(frame), keep)


def digits_table(folder: Path) -> Table:
    """scikit-learn's digits as "is it a 9" (1 for a 9, else 0)."""
    from sklearn.datasets import load_digits

    loaded = load_digits(as_frame=True)
    frame = loaded.data.copy()
    frame["is_nine"] = (loaded.target == 9).astype("int64")
    path = folder / "digits.csv"
    frame.to_csv(path, index=False)
    return Table("digits", path, "is_nine", "1", len(frame), int(frame["is_nine"].sum()))


TABLES = {"synthetic": synthetic_table, "breast_cancer": breast_cancer_table, "digits": digits_table}


@dataclass
class Outcome:
    f1: float
    recall: float
    precision: float
    cost: float
    brier: float
    roc_auc: float
    average_precision: float
    threshold: float
    train_s: float
    logged_f1: float


@dataclass
class Totals:
    preprocess_s: list[float] = field(default_factory=list)
    tune_s: list[float] = field(default_factory=list)


def counted(model_uri: str, test: pd.DataFrame, table: Table) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) of the registered model's answers to the test rows (the target dropped)."""
    import mlflow

    # The test split holds typed model inputs (text categories as pandas categories); the model takes raw rows.
    rows = test.drop(columns=[table.target])
    rows = rows.astype({name: object for name, kind in rows.dtypes.items() if isinstance(kind, pd.CategoricalDtype)})
    answer = mlflow.pyfunc.load_model(model_uri).predict(rows)
    said = answer["prediction"].astype(str).to_numpy() == table.positive
    truth = test[table.target].astype(str).to_numpy() == table.positive
    tp, fp = int((said & truth).sum()), int((said & ~truth).sum())
    fn, tn = int((~said & truth).sum()), int((~said & ~truth).sum())
    return tp, fp, fn, tn


def ratio(top: float, bottom: float) -> float:
    return top / bottom if bottom else 0.0


def spread(values: list[float], digits: int = 3) -> str:
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def measure_table(table: Table, seeds: list[int], n_trials: int, config_path: Path) -> tuple[dict, Totals]:
    import mlflow

    from pipeline.config import load_config
    from pipeline.contract import TEST_ARTIFACT
    from pipeline.steps import preprocess, train, tune
    from pipeline.tracking.splits import read_split_rows

    client = mlflow.MlflowClient()
    base = {
        "experiment": "bench-decision",
        "data.source": str(table.path),
        "data.target": table.target,
        "features.derived": False,
        "registry.model_name": f"bench-decision-{table.name.replace('_', '-')}",
        "tune.n_trials": n_trials,
        "cache.enabled": False,
        # 1 and "yes" are the positive class by default; an override value is read as YAML (yes would be True).
        **({"data.positive_class": table.positive} if table.positive not in ("1", "yes") else {}),
    }
    outcomes: dict[str, list[Outcome]] = {name: [] for name in CONFIGURATIONS}
    totals = Totals()
    for seed in seeds:
        config = load_config(config_path, {**base, "split.seed": seed})
        started = time.perf_counter()
        prepared = preprocess.run(config)
        totals.preprocess_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        tuned = tune.run(config, upstream_run_id=prepared.run_id)
        totals.tune_s.append(time.perf_counter() - started)
        test = read_split_rows(client.get_run(prepared.run_id), TEST_ARTIFACT)
        for name, keys in CONFIGURATIONS.items():
            config = load_config(config_path, {**base, "split.seed": seed, **keys})
            started = time.perf_counter()
            trained = train.run(config, upstream_run_id=tuned.run_id)
            train_s = time.perf_counter() - started
            model_uri = trained.outputs.get("model_uri") or f"models:/{trained.model_name}/{trained.model_version}"
            tp, fp, fn, tn = counted(model_uri, test, table)
            metrics = trained.metrics
            threshold = float(client.get_run(trained.run_id).data.params.get("decision.threshold", "nan"))
            outcomes[name].append(
                Outcome(
                    f1=ratio(2 * tp, 2 * tp + fp + fn),
                    recall=ratio(tp, tp + fn),
                    precision=ratio(tp, tp + fp),
                    cost=(COST_FP * fp + COST_FN * fn) / (tp + fp + fn + tn),
                    brier=metrics["test_brier_score"],
                    roc_auc=metrics["test_roc_auc"],
                    average_precision=metrics["test_average_precision"],
                    threshold=threshold,
                    train_s=train_s,
                    logged_f1=metrics["test_f1"],
                )
            )
        print(f"  ... {table.name} split seed {seed} done", file=sys.stderr, flush=True)
    return outcomes, totals


COLUMNS = (
    ("configuration", 20),
    ("test F1", 13),
    ("recall", 13),
    ("precision", 13),
    ("cost/row", 13),
    ("Brier", 15),
    ("ROC AUC", 13),
    ("avg prec", 13),
    ("threshold", 13),
    ("train s", 11),
)


def row(cells: list[str]) -> str:
    return "  ".join(
        cell.ljust(width) if i == 0 else cell.rjust(width)
        for i, (cell, (_, width)) in enumerate(zip(cells, COLUMNS, strict=True))
    )


def how_measured(args: argparse.Namespace) -> str:
    return (
        f"how measured: {machine()}; engine local, "
        f"configs/pipeline.yaml, features.derived false, tune.n_trials {args.n_trials} once per table and split seed, "
        f"train per configuration pinned to that tune run; split seeds {' '.join(map(str, args.seeds))}; "
        f"mean ± std over seeds; cost/row = (fp x {COST_FP:g} + fn x {COST_FN:g}) / test rows"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--n-trials", type=int, default=15)
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES))
    parser.add_argument("--config", default=str(ROOT / "configs" / "pipeline.yaml"))
    args = parser.parse_args()
    os.environ.update(QUIET_ENV)
    from loguru import logger

    from pipeline.cli import quiet_libraries

    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    quiet_libraries()

    print(how_measured(args), flush=True)
    started = time.perf_counter()
    largest_f1_gap = 0.0
    with tempfile.TemporaryDirectory(prefix="bench-decision-") as tmp, fresh_store() as (uri, _):
        os.environ["MLFLOW_TRACKING_URI"] = uri
        os.chdir(tmp)  # MLflow's local files (if any) and the steps' relative paths stay in the temporary folder
        for table_name in args.tables:
            table = TABLES[table_name](Path(tmp))
            outcomes, totals = measure_table(table, args.seeds, args.n_trials, Path(args.config))
            print()
            print(
                f"{table.name}: {table.rows:,} rows, {table.positives} positive ({table.positives / table.rows:.1%}, "
                f"label {table.positive!r}); per seed preprocess {statistics.mean(totals.preprocess_s):.1f} s, "
                f"tune {statistics.mean(totals.tune_s):.1f} s"
            )
            print(row([name for name, _ in COLUMNS]))
            for name, found in outcomes.items():
                largest_f1_gap = max(largest_f1_gap, *(abs(o.f1 - o.logged_f1) for o in found))
                print(
                    row(
                        [
                            name,
                            spread([o.f1 for o in found]),
                            spread([o.recall for o in found]),
                            spread([o.precision for o in found]),
                            spread([o.cost for o in found]),
                            spread([o.brier for o in found], 4),
                            spread([o.roc_auc for o in found]),
                            spread([o.average_precision for o in found]),
                            spread([o.threshold for o in found]),
                            spread([o.train_s for o in found], 1),
                        ]
                    )
                )
            sys.stdout.flush()
    print()
    print(
        f"F1 counted from the loaded models' answers vs train's logged test_f1: largest difference "
        f"{largest_f1_gap:.2e}; total wall time {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
