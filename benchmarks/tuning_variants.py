"""Tuning variants side by side (issue 26's screens): the chain's tune + train under config variants, each on the same
preprocess run of the same table and split seed at the same budget, and each variant against the first one
(the baseline) seed by seed. The tables are equal_budget.py's (public, from the `bench` extra); no peers run here:
this screens a change before the full equal_budget.py run against FLAML and the hand-written search.

Usage: .venv/bin/python benchmarks/tuning_variants.py --variant base: --variant hyperband:tune.pruner.type=hyperband
           [--variant NAME:KEY=VALUE,KEY=VALUE ...] [--budget 10] [--seeds 1 2 3] [--tables benefits hdma ...]
The first variant is the baseline ("base:" with nothing after the colon: the shipped config). A variant's
`config=PATH` runs it with that config file (one that `extends` the shipped one can add search dimensions, which
`--set`-style overrides cannot); preprocess always uses --config. The variants run in
turn for each seed, in an order rotated from seed to seed, so a machine that slows down during the run does not
always hurt the same variant. Budgets are wall time: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import QUIET_ENV, ROOT, fresh_store, machine
from equal_budget import DEFAULT_TABLES, PRIMARY, TABLES, UNBOUNDED_TRIALS, better, digits_for


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, settings = text.partition(":")
    if not name:
        raise argparse.ArgumentTypeError(f"--variant {text!r}: NAME:KEY=VALUE[,KEY=VALUE]")
    pairs = [item.split("=", 1) for item in settings.split(",") if item]
    if any(len(pair) != 2 for pair in pairs):
        raise argparse.ArgumentTypeError(f"--variant {text!r}: each setting is KEY=VALUE")
    return name, dict(pairs)


def tune_and_train(config_path: Path, overrides: dict, budget: float, prep_id: str) -> tuple[float, dict]:
    from pipeline.config import load_config
    from pipeline.steps import train, tune

    config = load_config(config_path, {**overrides, "tune.timeout_s": budget, "tune.n_trials": UNBOUNDED_TRIALS})
    tuned = tune.run(config, upstream_run_id=prep_id)
    trained = train.run(config, upstream_run_id=tuned.run_id)
    return trained.metrics, {"trials": tuned.metrics.get("n_finished", 0), "pruned": tuned.metrics.get("n_pruned", 0)}


def measure(table, args, variants, found: dict) -> None:
    from pipeline.config import load_config
    from pipeline.steps import preprocess

    metric_name = PRIMARY[table.primary][0]
    base = {
        "experiment": "bench-tuning-variants",
        "data.source": str(table.path),
        "data.target": table.target,
        "features.derived": False,
        "registry.model_name": f"bench-variants-{table.name.replace('_', '-')}",
        "cache.enabled": False,
        **table.overrides,
    }
    for position, seed in enumerate(args.seeds):
        seeded = {**base, "split.seed": seed}
        prepared = preprocess.run(load_config(args.config, seeded))
        order = variants[position % len(variants) :] + variants[: position % len(variants)]
        for name, settings in order:
            own = {key: value for key, value in settings.items() if key != "config"}
            config_path = Path(settings.get("config", args.config))
            metrics, counts = tune_and_train(config_path, {**seeded, **own}, args.budget, prepared.run_id)
            found[(table.name, name, seed)] = (metrics[metric_name], counts)
            print(
                f"  ... {table.name} seed {seed} {name}: {metric_name} {metrics[metric_name]:.5g} "
                f"({counts['trials']:.0f} trials, {counts['pruned']:.0f} pruned)",
                file=sys.stderr,
                flush=True,
            )


def report(tables, args, variants, found: dict) -> None:
    baseline = variants[0][0]
    for table in tables:
        metric_name, greater, _ = PRIMARY[table.primary]
        values = [found[(table.name, name, seed)][0] for name, _ in variants for seed in args.seeds]
        digits = digits_for(values)
        print(f"\n{table.name} ({table.kind}, {table.rows:,} rows), {metric_name} ({'higher' if greater else 'lower'} "
              f"is better), budget {args.budget:g} s, per seed {' / '.join(map(str, args.seeds))}:")  # fmt: skip
        for name, settings in variants:
            per_seed = [found[(table.name, name, seed)] for seed in args.seeds]
            metrics = [metric for metric, _ in per_seed]
            trials = statistics.mean(counts["trials"] for _, counts in per_seed)
            line = (
                f"  {name:<14} mean {statistics.mean(metrics):.{digits}f}  seeds "
                f"{' / '.join(f'{m:.{digits}f}' for m in metrics)}  trials {trials:6.1f}"
            )
            if name != baseline:
                ours = metrics
                theirs = [found[(table.name, baseline, seed)][0] for seed in args.seeds]
                gaps = [a - b for a, b in zip(ours, theirs, strict=True)]
                wins = sum(better(a, b, greater) and a != b for a, b in zip(ours, theirs, strict=True))
                ties = sum(a == b for a, b in zip(ours, theirs, strict=True))
                spread = statistics.stdev(gaps) if len(gaps) > 1 else 0.0
                line += (
                    f"  vs {baseline}: better in {wins}/{len(gaps)} seeds ({ties} tied), paired difference "
                    f"{statistics.mean(gaps):+.{digits + 1}f} ± {spread:.{digits + 1}f}"
                )
            print(line + (f"  [{', '.join(f'{k}={v}' for k, v in settings.items())}]" if settings else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", type=parse_variant, action="append", required=True, metavar="NAME:KEY=VALUE,...")
    parser.add_argument("--budget", type=float, default=10.0, help="tuning seconds per variant")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="split seeds")
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=DEFAULT_TABLES)
    parser.add_argument("--diamonds-rows", type=int, default=20_000, help="sample of diamonds (0: all 53,940)")
    parser.add_argument("--config", default=str(ROOT / "configs" / "pipeline.yaml"))
    args = parser.parse_args()
    args.config = Path(args.config).resolve()
    variants = [  # a variant's own config file, found from here (the run works in a temporary folder)
        (name, {**settings, "config": str(Path(settings["config"]).resolve())} if "config" in settings else settings)
        for name, settings in args.variant
    ]
    os.environ.update(QUIET_ENV)
    from loguru import logger

    from pipeline.cli import quiet_libraries

    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    quiet_libraries()
    print(
        f"how measured: {machine(utc=True)}; engine local, {args.config.name} with features.derived false; budget "
        f"{args.budget:g} s; split seeds {' '.join(map(str, args.seeds))}; variants "
        + "; ".join(f"{n} [{', '.join(f'{k}={v}' for k, v in s.items()) or 'as shipped'}]" for n, s in variants),
        flush=True,
    )
    started = time.perf_counter()
    found: dict = {}
    tables = []
    with tempfile.TemporaryDirectory(prefix="bench-variants-") as tmp, fresh_store() as (uri, _):
        os.environ["MLFLOW_TRACKING_URI"] = uri
        os.chdir(tmp)
        for name in args.tables:
            table = TABLES[name](Path(tmp), args)
            tables.append(table)
            measure(table, args, variants, found)
    report(tables, args, variants, found)
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
