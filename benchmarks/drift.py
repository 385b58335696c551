"""Drift (issue 25): the reference profile's and the batch comparison's speed, false alarms on undrifted batches,
and sensitivity to a shifted feature and a grown category (pipeline/modeling/profile.py), each against its target.

1. Speed. A generated table (make_classification, seeded, as benchmarks/scale.py; float64 as the typed train split
   holds it): `profile.profile` of 1,000,000 rows x 30 numeric features (target <= 3 s), and `Tally.add` + `compare`
   of a 200,000-row batch (target <= 1 s); also with 2 categorical columns added (5 and 40 categories: pandas
   categories in the profiled rows, text in the batch, as callers send it). The profile's output part is made of
   200,000 generated probabilities (beta(2, 5)): its cost does not depend on where they come from. Best of
   --repeats, each repeat shown.
2. False alarms (target: no batch's verdict is "alert"), psi_warn / psi_alert / min_rows from configs/pipeline.yaml:
   a. the default table (configs/pipeline.yaml as it is: scikit-learn's breast cancer, 569 rows, feature hook on):
      its test split has 114 rows, so 10,000-row batches are drawn from it WITH replacement (--batches of them);
      the test split itself (its own size, without replacement: every such batch is the same 114 rows, and PSI does
      not depend on the order, so one comparison stands for all; below min_rows it gets no verdict, its columns'
      levels are shown); and, as a control, 10,000-row batches drawn with replacement from the train split the
      profile was made of.
   b. a generated table: --table-rows rows (make_classification, 8 numeric features, 4 informative, plus two text
      categories, region and plan, each with one category at 10%; the target depends a little on plan), split by
      the pipeline's preprocess (80/20); batches of 10,000 rows drawn without replacement from the 20% test split.
   For both tables preprocess's own work builds the splits and schema (`pipeline.engines.local.preprocess.prepare`,
   no tracking), and the model is the pipeline's XGBoost (`build_model` with configs/pipeline.yaml's fixed params
   and no tuned params) fitted on the train split; the profile is `profile.profile(train features, schema, the
   model's answer on the test split)`, as train makes it; a batch is the raw input columns (categories as text)
   followed by the model's answer to those rows (decision: most probable label), as predict scores it.
3. Sensitivity (target: alerted in a 10,000-row batch): each numeric feature shifted by +0.5 standard deviations
   (of the train split) in a batch drawn as in 2 (generated table: without replacement; breast cancer: with
   replacement), the model's answer recomputed on the shifted rows; and each 10%-category grown to 40% of a batch
   of the generated table (4,000 of its rows drawn with replacement from the test rows of that category, 6,000
   without replacement from the others). Per feature: its PSI unshifted (the same draw) and shifted, and its level.
   For reference: the PSI of a 0.5-SD shift of a Gaussian over 10 equal-share bins is computed and printed.

Usage: .venv/bin/python benchmarks/drift.py [--rows 1000000] [--features 30] [--batch-rows 200000] [--repeats 3]
                                            [--table-rows 100000] [--batches 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import QUIET_ENV, ROOT, machine

BATCH = 10_000
SHIFT_SD = 0.5
PROFILE_TARGET_S, COMPARE_TARGET_S = 3.0, 1.0


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def how_measured(args: argparse.Namespace) -> str:
    return (
        f"how measured: {machine()}; python "
        f"{platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}; in this process, "
        f"time.perf_counter, best of {args.repeats}; seed {args.seed}"
    )


# ---------------------------------------------------------------------------------------------------------- speed


def speed_schema(features: list[str], categorical: list[str]) -> dict[str, Any]:
    from pipeline.data.schema import Schema

    return Schema(
        task="binary",
        target="target",
        columns={**{name: "numeric" for name in features}, **{name: "categorical" for name in categorical}},
        classes=[0, 1],
        positive_class=1,
        inputs={**{name: "numeric" for name in features}, **{name: "text" for name in categorical}},
    ).to_dict()


def speed(args: argparse.Namespace) -> list[bool]:
    from sklearn.datasets import make_classification

    from pipeline.modeling import profile

    rows, batch_rows, n = args.rows, args.batch_rows, args.features
    print(f"\n1. speed: profile {rows:,} rows x {n} numeric features; compare a {batch_rows:,}-row batch")
    x, _ = make_classification(n_samples=rows + batch_rows, n_features=n, n_informative=n // 3, random_state=args.seed)
    names = [f"f{i}" for i in range(n)]
    rng = np.random.default_rng(args.seed)
    levels = {"region": [f"r{i}" for i in range(5)], "segment": [f"s{i:02d}" for i in range(40)]}
    codes = {name: rng.integers(0, len(cats), rows + batch_rows) for name, cats in levels.items()}
    train = pd.DataFrame(x[:rows], columns=names)
    batch = pd.DataFrame(x[rows:], columns=names)
    del x
    for name, cats in levels.items():
        train[name] = pd.Categorical.from_codes(codes[name][:rows], categories=cats)  # as the train split types it
        batch[name] = np.asarray(cats, dtype=object)[codes[name][rows:]]  # text, as callers send it
    probability = rng.beta(2, 5, batch_rows)
    answer = pd.DataFrame(
        {
            "prediction": (probability >= 0.5).astype("int64"),
            "probability_0": 1 - probability,
            "probability_1": probability,
        }
    )
    scored = pd.concat([batch, answer], axis=1)
    monitor = args.monitor
    results = []
    for label, categorical in ((f"{n} numeric", []), (f"{n} numeric + 2 categorical", list(levels))):
        schema = speed_schema(names, categorical)
        columns = names + categorical
        profile_s, compare_s, reference = [], [], None
        for _ in range(args.repeats):
            started = time.perf_counter()
            reference = profile.profile(train[columns], schema, answer)
            profile_s.append(time.perf_counter() - started)
        for _ in range(args.repeats):
            started = time.perf_counter()
            report = profile.compare(
                profile.Tally(reference).add(scored[columns + list(answer.columns)], schema),
                monitor.psi_warn,
                monitor.psi_alert,
                monitor.min_rows,
            )
            compare_s.append(time.perf_counter() - started)
        best_profile, best_compare = min(profile_s), min(compare_s)
        each = lambda times: ", ".join(f"{t:.3f}" for t in times)  # noqa: E731
        print(
            f"  [{label}] profile {rows:,} rows: best {best_profile:.3f} s (runs {each(profile_s)}) "
            f"target <= {PROFILE_TARGET_S:g} s: {verdict(best_profile <= PROFILE_TARGET_S)}"
        )
        print(
            f"  [{label}] Tally.add + compare of {batch_rows:,} rows: best {best_compare:.3f} s "
            f"(runs {each(compare_s)}) target <= {COMPARE_TARGET_S:g} s: {verdict(best_compare <= COMPARE_TARGET_S)}"
            f" (verdict of this undrifted batch: {report['verdict']}, largest PSI "
            f"{max(e['psi'] for e in report['columns'].values()):.4f})"
        )
        results += [best_profile <= PROFILE_TARGET_S, best_compare <= COMPARE_TARGET_S]
    return results


# ------------------------------------------------------------------------------------------------ tables and model


@dataclass
class Fitted:
    name: str
    schema: Any  # pipeline.data.schema.Schema
    document: dict[str, Any]
    hook: Any
    model: Any
    train_x: pd.DataFrame  # typed model inputs of the train split
    test_x: pd.DataFrame  # typed model inputs of the test split
    reference: dict[str, Any]
    raw: list[str]  # the raw input columns callers send
    sds: dict[str, float]  # train split standard deviation per numeric raw input


def fit_table(name: str, config) -> Fitted:
    """preprocess's work (splits, schema), the pipeline's XGBoost on the train split, the reference profile."""
    from pipeline.data import feature_hook
    from pipeline.data.sources import features_and_target
    from pipeline.data.transform import encode_labels
    from pipeline.engines.local.preprocess import prepare
    from pipeline.modeling import profile
    from pipeline.modeling.model import build_model

    splits = prepare(config)
    schema = splits.schema
    x, y = features_and_target(splits.train, schema.target)
    x_test, _ = features_and_target(splits.test, schema.target)
    model = build_model(schema.task, {}, config.train.fixed_params)
    model.fit(x, encode_labels(y, schema.classes), verbose=False)
    document = schema.to_dict()
    fitted = Fitted(
        name, schema, document, feature_hook.load(feature_hook.hook_path(config)), model, x, x_test, {}, [], {}
    )
    fitted.raw = [c for c in schema.inputs if c not in schema.ignored_inputs]
    fitted.reference = profile.profile(x, document, answer_of(fitted, x_test))
    numeric = [c for c, kind in profile.profiled_features(document).items() if kind == "numeric"]
    fitted.sds = {c: float(x[c].std()) for c in numeric}
    return fitted


def answer_of(fitted: Fitted, typed_raw: pd.DataFrame) -> pd.DataFrame:
    """The model's answer to raw rows (typed raw inputs): the hook's columns recomputed, then conformed."""
    from pipeline.data import feature_hook
    from pipeline.data.schema import conform
    from pipeline.data.transform import answer

    raw = typed_raw[fitted.raw]
    inputs = conform(feature_hook.apply(raw, fitted.hook, "bench"), fitted.schema, "bench", dates=True)
    probabilities = fitted.model.predict_proba(inputs)
    return answer(probabilities, fitted.schema.classes, pd.RangeIndex(len(raw)))


def report_of(fitted: Fitted, typed_raw: pd.DataFrame, monitor) -> dict[str, Any]:
    """The drift report of a batch: its raw rows (categories as text) followed by the model's answer."""
    from pipeline.modeling import profile

    raw = typed_raw[fitted.raw].reset_index(drop=True)
    raw = raw.astype({c: object for c, kind in raw.dtypes.items() if isinstance(kind, pd.CategoricalDtype)})
    scored = pd.concat([raw, answer_of(fitted, typed_raw)], axis=1)
    tally = profile.Tally(fitted.reference).add(scored, fitted.document)
    return profile.compare(tally, monitor.psi_warn, monitor.psi_alert, monitor.min_rows)


def worst(report: dict[str, Any]) -> str:
    name, entry = next(iter(report["columns"].items()))
    return f"largest PSI {entry['psi']:.3f} ({name})"


def generated_table(folder: Path, rows: int, seed: int) -> Path:
    """make_classification (8 features, 4 informative) plus region and plan (text), each with a category at 10%;
    the target depends a little on plan."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=rows, n_features=8, n_informative=4, n_redundant=2, random_state=seed + 1)
    rng = np.random.default_rng(seed + 1)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(8)])
    frame["region"] = rng.choice(["north", "south", "east", "west"], rows, p=[0.1, 0.3, 0.3, 0.3])
    frame["plan"] = rng.choice(["basic", "plus", "pro", "team", "enterprise"], rows, p=[0.4, 0.25, 0.15, 0.1, 0.1])
    flip = (frame["plan"] == "enterprise").to_numpy() & (rng.random(rows) < 0.2)
    frame["target"] = np.where(flip, 1, y)
    path = folder / "generated.parquet"
    frame.to_parquet(path, index=False)
    return path


# ------------------------------------------------------------------------------------------ false alarms, sensitivity


def draws(source: pd.DataFrame, rows: int, replace: bool, count: int, rng) -> list[pd.DataFrame]:
    return [source.iloc[rng.choice(len(source), rows, replace=replace)] for _ in range(count)]


def false_alarms(fitted: Fitted, batches: list[pd.DataFrame], label: str, monitor, target: bool) -> bool:
    reports = [report_of(fitted, batch, monitor) for batch in batches]
    counts = {v: sum(r["verdict"] == v for r in reports) for v in ("ok", "warn", "alert", "too_few_rows")}
    largest = max(reports, key=lambda r: next(iter(r["columns"].values()))["psi"])
    alerted_columns = sorted({c for r in reports for c in r["alerted"]})
    line = (
        f"  {label}: {len(reports)} batches: {counts['ok']} ok, {counts['warn']} warn, {counts['alert']} alert"
        + (f", {counts['too_few_rows']} too_few_rows" if counts["too_few_rows"] else "")
        + f"; worst batch's {worst(largest)}"
    )
    if alerted_columns:
        line += f"; columns alerted in some batch: {len(alerted_columns)} ({', '.join(alerted_columns[:6])}"
        line += ", ...)" if len(alerted_columns) > 6 else ")"
    if target:
        line += f"; target no alert: {verdict(counts['alert'] == 0)}"
    print(line)
    return counts["alert"] == 0


def whole_split(fitted: Fitted, test_x: pd.DataFrame, monitor) -> None:
    report = report_of(fitted, test_x, monitor)
    levels = [entry["level"] for entry in report["columns"].values()]
    print(
        f"  the test split itself ({len(test_x)} rows, without replacement; one distinct batch): verdict "
        f"{report['verdict']} (min_rows {monitor.min_rows}); its columns' levels as compare shows them anyway: "
        f"{levels.count('alert')} alert, {levels.count('warn')} warn, {levels.count('ok')} ok of {len(levels)}; "
        f"{worst(report)}"
    )


def gaussian_psi(shift: float, bins: int = 10) -> float:
    from scipy.stats import norm

    from pipeline.modeling import profile

    edges = norm.ppf(np.linspace(0, 1, bins + 1)[1:-1])
    shifted = np.diff(np.r_[0.0, norm.cdf(edges - shift), 1.0])
    return profile.psi(np.full(bins, 1 / bins), shifted)


def shifts(fitted: Fitted, base: pd.DataFrame, monitor, what: str) -> list[bool]:
    """Each numeric raw feature shifted by SHIFT_SD train standard deviations in `base`: its PSI and level."""
    base_report = report_of(fitted, base, monitor)
    print(
        f"  {what}: base batch verdict {base_report['verdict']} ({worst(base_report)}); per feature: PSI unshifted"
        f" -> shifted by +{SHIFT_SD} SD, its level (target alert); output PSI shifted"
    )
    found, rows = [], []
    for name, sd in fitted.sds.items():
        shifted = base.copy()
        shifted[name] = shifted[name] + SHIFT_SD * sd
        report = report_of(fitted, shifted, monitor)
        entry = report["columns"][name]
        found.append(entry["level"])
        rows.append(
            f"    {name:<26} {base_report['columns'][name]['psi']:.3f} -> {entry['psi']:.3f}  {entry['level']:<5}"
            f"  output {report['columns']['model output']['psi']:.3f}"
        )
    print("\n".join(rows))
    alerted, warned = found.count("alert"), found.count("warn")
    print(
        f"  {what}: {alerted} of {len(found)} features alerted, {warned} warned, {found.count('ok')} ok; target "
        f"every 0.5-SD shift alerted: {verdict(alerted == len(found))}"
    )
    return [level == "alert" for level in found]


def grown_category(fitted: Fitted, column: str, category: str, monitor, rng) -> bool:
    test = fitted.test_x
    is_it = (test[column].astype(object) == category).to_numpy()
    grown_rows = int(0.4 * BATCH)
    batch = pd.concat(
        [
            test[is_it].iloc[rng.choice(int(is_it.sum()), grown_rows, replace=True)],
            test[~is_it].iloc[rng.choice(int((~is_it).sum()), BATCH - grown_rows, replace=False)],
        ]
    )
    report = report_of(fitted, batch, monitor)
    entry = report["columns"][column]
    shares = dict(zip(fitted.reference["features"][column]["categories"], entry["reference_shares"], strict=False))
    print(
        f"  {column} = {category!r} from {shares[category]:.1%} (train) to 40% of a {BATCH:,}-row batch: PSI "
        f"{entry['psi']:.3f}, level {entry['level']}; batch verdict {report['verdict']}; target alert: "
        f"{verdict(entry['level'] == 'alert')}"
    )
    return entry["level"] == "alert"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--batch-rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--table-rows", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.update(QUIET_ENV)
    from loguru import logger

    from pipeline.cli import quiet_libraries
    from pipeline.config import load_config

    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    quiet_libraries()
    config_path = ROOT / "configs" / "pipeline.yaml"
    default = load_config(config_path)
    args.monitor = monitor = default.monitor
    print(how_measured(args))
    print(
        f"monitor settings (configs/pipeline.yaml): psi_warn {monitor.psi_warn}, psi_alert {monitor.psi_alert}, "
        f"min_rows {monitor.min_rows}"
    )
    started = time.perf_counter()
    passed: dict[str, list[bool]] = {"speed": speed(args)}

    rng = np.random.default_rng(args.seed)
    print(f"\n2. false alarms: {args.batches} batches each, verdict != alert")
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        cancer = fit_table("breast_cancer", default)
        generated = fit_table(
            "generated",
            load_config(
                config_path,
                {"data.source": str(generated_table(Path(tmp), args.table_rows, args.seed)), "data.target": "target"},
            ),
        )
    print(
        f" a. default table ({default.data.source}): train {len(cancer.train_x)} rows, test {len(cancer.test_x)} "
        f"rows; {len(cancer.reference['features'])} profiled features; model output "
        f"{cancer.reference['output']['name']}"
    )
    print(
        f"  NOTE: the test split has {len(cancer.test_x)} rows, so a {BATCH:,}-row batch from it is drawn WITH "
        "replacement (it is the test split's empirical distribution, resampled)"
    )
    passed["false alarms breast cancer"] = [
        false_alarms(
            cancer,
            draws(cancer.test_x, BATCH, True, args.batches, rng),
            f"{BATCH:,} rows with replacement from the test split",
            monitor,
            True,
        )
    ]
    whole_split(cancer, cancer.test_x, monitor)
    false_alarms(
        cancer,
        draws(cancer.train_x, BATCH, True, args.batches, rng),
        f"control: {BATCH:,} rows with replacement from the train split (the profile's own rows)",
        monitor,
        False,
    )
    print(
        f" b. generated table: {args.table_rows:,} rows (8 numeric, region and plan text), train "
        f"{len(generated.train_x):,} / test {len(generated.test_x):,} rows; {len(generated.reference['features'])} "
        f"profiled features"
    )
    passed["false alarms generated"] = [
        false_alarms(
            generated,
            draws(generated.test_x, BATCH, False, args.batches, rng),
            f"{BATCH:,} rows without replacement from the test split",
            monitor,
            True,
        )
    ]

    print(
        f"\n3. sensitivity ({BATCH:,}-row batches): for reference, a Gaussian shifted by {SHIFT_SD} SD over 10 "
        f"equal-share bins has PSI {gaussian_psi(SHIFT_SD):.4f} (psi_alert {monitor.psi_alert})"
    )
    passed["shift generated"] = shifts(
        generated, draws(generated.test_x, BATCH, False, 1, rng)[0], monitor, "generated table"
    )
    passed["categories generated"] = [
        grown_category(generated, "region", "north", monitor, rng),
        grown_category(generated, "plan", "team", monitor, rng),
    ]
    passed["shift breast cancer"] = shifts(
        cancer,
        draws(cancer.test_x, BATCH, True, 1, rng)[0],
        monitor,
        f"breast cancer (batch drawn with replacement from the {len(cancer.test_x)} test rows)",
    )

    print("\nsummary")
    for name, found in passed.items():
        print(f"  {name:<28} {sum(found)} of {len(found)} PASS")
    print(f"total wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
