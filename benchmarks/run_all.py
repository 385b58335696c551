"""Run every benchmark and write their figures into docs/benchmarks.md (between the results markers; the notes
around them are kept). Usage: .venv/bin/python benchmarks/run_all.py [--quick] [--only drift.py decision.py]

--quick: smaller sizes (100,000 rows for scale, 1,000 runs for lookup, 2 seeds), to check the scripts work.
--only: run these scripts alone and replace (or add) their rows, each stamped with its date; the other rows stay
as they were measured.
Run it on a quiet machine: the figures are wall times.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def benchmarks(quick: bool) -> list[tuple[str, list[str], str]]:
    """(what, script + arguments, target)"""
    return [
        ("end to end, breast cancer, 50 trials", ["chain.py"], "< 22 s through `mlflow run -e main`"),
        (
            "test ROC AUC over split seeds",
            ["auc_over_seeds.py", *(["--seeds", "1", "2"] if quick else [])],
            "mean >= 0.99",
        ),
        (
            "tracking overhead of tuning (100 trials) and PostgreSQL workers",
            ["tuning_overhead.py", "--repeats", "1" if quick else "2"],
            "ratio <= 1.25; long trials: 2 workers >= 1.7x, storage < 5% of a trial",
        ),
        (
            "start-up: import mlflow, a fully reused main, train alone (fresh processes, median of 3)",
            ["startup.py", "--repeats", "1" if quick else "3"],
            "reused main <= 2x the floor; train alone <= 2.5x",
        ),
        ("upstream lookup", ["lookup.py", *(["--sizes", "10", "1000"] if quick else [])], "< 50 ms at 10,000 runs"),
        (
            "serving latency, single raw rows over HTTP (hook, dates and labels inside the model)",
            ["serving_latency.py", *(["--requests", "200"] if quick else [])],
            "measured and reported",
        ),
        (
            "scale, make_classification x 30 features, 10 trials",
            ["scale.py", *(["--rows", "100000"] if quick else [])],
            "peak < 4 GB",
        ),
        (
            "leakage check: preprocess with and without it, 1M rows x 30 features, engine local, in-process",
            ["leakage.py", *(["--rows", "100000", "--repeats", "1"] if quick else [])],
            "<= 10% added to preprocess",
        ),
        (
            "the decision inside the model: threshold rules, class weights and calibration on 3 imbalanced tables",
            ["decision.py", *(["--seeds", "1", "--n-trials", "5"] if quick else [])],
            "a rule beats the 0.5 cut on F1 or cost where 0.5 flags few positives; measured and reported",
        ),
        (
            "drift: profile and compare speed, false alarms, sensitivity to a 0.5-SD shift and a category's share",
            ["drift.py", *(["--rows", "100000", "--repeats", "1", "--batches", "5"] if quick else [])],
            "profile 1M x 30 <= 3 s; compare 200k <= 1 s; no false alarm; shifts alerted",
        ),
        (
            "tuning quality at an equal budget: the chain against FLAML and a hand-written Optuna search, 4 tables",
            ["equal_budget.py", *(["--budgets", "5", "--seeds", "1", "--no-curve"] if quick else [])],
            "chain's mean at least the better peer's on every table, and at half the budget the hand-written "
            "search's (issue 26: open)",
        ),
        (
            "engine dask against local: 1M and 10M rows x 30 features (Parquet parts), 3 trials of <= 100 rounds, "
            "LocalCluster 2 workers x 1.5 GB; local at 1M only",
            ["dask_scale.py", *(["--rows", "50000", "200000", "--local-max-rows", "200000"] if quick else [])],
            "dask at 10M: no process > 4 GB; at 1M: dask <= 1.5x local",
        ),
    ]


def run(script: list[str]) -> tuple[str, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(HERE / script[0]), *script[1:]],
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    figures = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0:
        figures.append(f"FAILED (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    return "<br>".join(figures), time.perf_counter() - started


HEADER = ["| what | command | figures | target |", "|---|---|---|---|"]


def _script_of(row: str) -> str:
    """The script a table row ran (`.venv/bin/python benchmarks/<script> ...` in its command column)."""
    return row.split("benchmarks/", 1)[1].split()[0].rstrip("`") if "benchmarks/" in row else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", metavar="SCRIPT", help="run these scripts alone, keep the other rows")
    args = parser.parse_args()
    if args.only and args.quick:
        parser.error("--only writes its rows into the table: run it at full sizes, not with --quick")
    known = {script[0] for _, script, _ in benchmarks(args.quick)}
    if args.only and (unknown := set(args.only) - known):
        parser.error(f"--only: no benchmark {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    text = DOC.read_text() if DOC.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text = text.replace("\n", f"\n\n{BEGIN}\n{END}\n", 1)
    head, rest = text.split(BEGIN, 1)
    block, tail = rest.split(END, 1)
    kept = {_script_of(line): line for line in block.splitlines() if line.startswith("| ") and _script_of(line)}
    stamp_line = next((line for line in block.splitlines() if line.startswith("Measured ")), "")
    rows = []
    for what, script, target in benchmarks(args.quick):
        if args.only and script[0] not in args.only:
            if script[0] in kept:
                rows.append(kept[script[0]])
            continue
        print(f"running {' '.join(script)} ...", flush=True)
        figures, seconds = run(script)
        print(figures.replace("<br>", "\n"), flush=True)
        dated = f"{what}, measured {time.strftime('%Y-%m-%d')}" if args.only else what
        rows.append(f"| {dated} | `.venv/bin/python benchmarks/{' '.join(script)}` | {figures} | {target} |")
    stamp = (
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.node()} ({os.cpu_count()} cores, Python "
        f"{platform.python_version()}){' with --quick sizes' if args.quick else ''}, by "
        "`.venv/bin/python benchmarks/run_all.py`:"
    )
    only_note = '; rows marked "measured <date>" by `run_all.py --only`'
    if args.only and stamp_line:
        stamp = f"{stamp_line.rstrip(':').removesuffix(only_note)}{only_note}:"
    DOC.write_text(head + "\n".join([BEGIN, stamp, "", *HEADER, *rows, END]) + tail)
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
