"""Leakage check: what it adds to preprocess on a generated table (benchmarks/scale.py's: make_classification,
seeded, 1,000,000 rows x 30 features by default, Parquet), on engine local, in this process.

Times, alternating, best of --repeats: preprocess's work (`pipeline.engines.local.preprocess.prepare`: load, split,
schema, typed splits) and the whole step (`pipeline.steps.preprocess.run` on a fresh SQLite store: the work plus
logging the splits, schema and datasets), each with the leakage check and without it (its functions replaced by
no-ops); and the check's parts alone on the prepared splits: the features scored on a sample of at most 100,000
training rows, and the test rows also in the train split (hashing both splits). Target: <= 10% added to preprocess.

Usage: .venv/bin/python benchmarks/leakage.py [--rows 1000000] [--features 30] [--repeats 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import QUIET_ENV, ROOT, fresh_store
from scale import write_table


@contextmanager
def without_check():
    """The leakage check's functions as no-ops: what preprocess costs without it (the splits' digests then hashed
    by preprocess itself, as before the check)."""
    from pipeline.data import leakage

    saved = leakage.check, leakage.count_test_rows_in_train

    def no_scores(frame, schema, settings, seed, what, train_rows=None):
        return leakage.Leakage("-", settings.threshold, settings.action, 0, len(frame), {}, [])

    def digests_only(found, train, test, what):  # each split hashed once, nothing compared
        digests = (str(leakage.row_hashes(train).sum()), str(leakage.row_hashes(test).sum()))
        return dataclasses.replace(found, split_digests=digests)

    leakage.check, leakage.count_test_rows_in_train = no_scores, digests_only
    try:
        yield
    finally:
        leakage.check, leakage.count_test_rows_in_train = saved


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    os.environ.update(QUIET_ENV)
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")

    from pipeline.config import load_config
    from pipeline.data import leakage
    from pipeline.engines.local.preprocess import prepare
    from pipeline.steps import preprocess

    print(f"leakage check: {args.rows:,} rows x {args.features} features, engine local, best of {args.repeats}")
    with tempfile.TemporaryDirectory(prefix="bench-leakage-") as tmp, fresh_store() as (uri, _):
        table = Path(tmp) / "table.parquet"
        write_table(table, args.rows, args.features)
        os.environ["MLFLOW_TRACKING_URI"] = uri
        config = load_config(ROOT / "configs" / "pipeline.yaml", {"data.source": str(table), "experiment": "bench"})
        best = {("work", True): [], ("work", False): [], ("step", True): [], ("step", False): []}
        preprocess.run(config)  # warm: imports, the file in the page cache, the experiment
        for _ in range(args.repeats):
            for checked in (True, False):
                with without_check() if not checked else nullcontext():
                    best[("work", checked)].append(timed(lambda: prepare(config)))
                    best[("step", checked)].append(timed(lambda: preprocess.run(config)))
        splits = prepare(config)
        scores = timed(lambda: leakage.check(splits.train, splits.schema, config.data.leakage, 42, "bench"))
        duplicates = timed(lambda: leakage.count_test_rows_in_train(splits.leakage, splits.train, splits.test, "-"))
        hashing = timed(lambda: (leakage.row_hashes(splits.train), leakage.row_hashes(splits.test)))
    print(
        f"  the check alone: scores {scores:.2f} s ({splits.leakage.sample_rows:,} sample rows, "
        f"{len(splits.leakage.scores)} features); test rows in train {duplicates:.2f} s, of which {hashing:.2f} s "
        f"hashing the {len(splits.train):,} + {len(splits.test):,} rows (which also gives the splits' digests: "
        "preprocess hashed them for those before)"
    )
    for part, what in (("work", "preprocess's work (prepare)"), ("step", "the preprocess step (run, MLflow included)")):
        on, off = min(best[(part, True)]), min(best[(part, False)])
        runs = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(best[(part, False)], best[(part, True)], strict=True))
        print(f"  {what}: {off:.2f} s without the check, {on:.2f} s with it: {(on - off) / off:+.1%} (runs {runs})")
    for part, what in (("work", "preprocess's work"), ("step", "the preprocess step")):
        off = min(best[(part, False)])
        print(
            f"  the check's own time against {what} without it: {(scores + duplicates) / off:+.1%}, "
            f"{(scores + duplicates - hashing) / off:+.1%} net of the digests' hashing (target <= 10%)"
        )


if __name__ == "__main__":
    main()
