"""preprocess's leakage guards, the same on both engines: how well each feature alone predicts the target (`check`),
what to do about the features that predict it almost perfectly (`guard`, as `data.leakage.action` says), and how
many test rows also appear in the train split (`row_hashes`, `rows_in`, `warn_duplicates`).

A feature's score: a one-feature model fitted on 70% of a seeded sample of at most `SAMPLE_ROWS` training rows and
scored on the other 30%, by ROC AUC for classification (binary; one-vs-rest macro average for multiclass) and R²
for regression. The model is a tree in effect, grown in one pass rather than split by split: the feature's values
in up to `MAX_BINS` quantile bins of the fitted rows (a depth-8 tree has as many leaves; at least `MIN_BIN_ROWS`
rows each, `MIN_LINE_ROWS` for regression), the two end bins halved again and again as a tree splits a long tail,
cut halfway between fitted values as a tree's splits are; missing values in a bin of their own; each category of a
categorical feature a bin of its own. A bin predicts its class shares (classification) or a straight line through
its rows (regression: so a copy of a skewed target, such as prices, is still found in its tail, where one mean per
bin would miss it). It costs a sort of at most `EDGE_ROWS` values, a table look-up and a few `bincount`s per
feature: about 3 ms at 100,000 rows, where a scikit-learn tree per feature costs ten times that.

Pure: reads frames, logs lines, raises DataError; preprocess (pipeline/steps/preprocess.py) logs what it found:
`data/leakage.json`, metrics `n_suspect_features` and `n_test_rows_in_train`, params, the run note.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from loguru import logger

from pipeline.config import LeakageConfig
from pipeline.data.schema import CATEGORICAL, Schema
from pipeline.errors import DataError

SAMPLE_ROWS = 100_000  # training rows the features are scored on, at most (a seeded sample)
HOLDOUT_SHARE = 0.3  # of the sample: the rows each one-feature model is scored on
# Quantile bins of a numeric feature: at most 256, of at least 5 fitted rows each (20 for regression, where each
# bin fits a line).
MAX_BINS, MIN_BIN_ROWS, MIN_LINE_ROWS = 256, 5, 20
EDGE_ROWS = 20_000  # fitted values whose quantiles cut a numeric feature's bins, at most (evenly spaced among them)
MIN_ROWS = 30  # with fewer sample rows no feature is scored (too few to tell a leak from luck)
DUPLICATES_WARN_SHARE = 0.01  # share of the test split also in the train split above which preprocess warns
# engine dask: the row hashes of about this many train rows at most come to the process to be compared (16 MB);
# beyond, a share of both splits picked by hash is compared and the count scaled up (`hash_modulus`).
DUPLICATES_HASHED_ROWS = 2_000_000
REPORT_GROUP = "suspected_leak"  # data/schema.json's report: the features dropped (data.leakage.action: drop)


@dataclass(frozen=True)
class Leakage:
    """What the leakage guards found: every feature's score, the suspects and what was done about them, and how
    many test rows also appear in the train split."""

    metric: str  # roc_auc | r2
    threshold: float
    action: str  # warn | fail | drop
    sample_rows: int
    train_rows: int  # rows of the train split the sample was drawn from
    scores: dict[str, float | None]  # None: not scored (too few rows, one class held out, a constant target)
    suspects: list[str]  # highest score first
    seconds: float = 0.0
    n_test_rows_in_train: int | None = None
    n_test: int | None = None
    duplicates_counted: str = "every row of both splits"
    # engine local: (train, test) content digests of the typed splits (`pipeline.data.digests.digest`), from the
    # row hashes compared, so preprocess hashes each split once less; not in data/leakage.json.
    split_digests: tuple[str, str] | None = None

    @property
    def dropped(self) -> list[str]:
        return list(self.suspects) if self.action == "drop" else []

    def document(self) -> dict[str, Any]:
        """`data/leakage.json`: the scores highest first."""
        return {
            "metric": self.metric,
            "threshold": self.threshold,
            "action": self.action,
            "suspects": self.suspects,
            "dropped": self.dropped,
            "sample_rows": self.sample_rows,
            "train_rows": self.train_rows,
            "holdout_share": HOLDOUT_SHARE,
            "seconds": self.seconds,
            "scores": dict(sorted(self.scores.items(), key=lambda item: -_sortable(item[1]))),
            "n_test_rows_in_train": self.n_test_rows_in_train,
            "n_test": self.n_test,
            "duplicates_counted": self.duplicates_counted,
        }

    def with_duplicates(self, found: int, n_test: int, counted: str = "") -> Leakage:
        return dataclasses.replace(
            self, n_test_rows_in_train=found, n_test=n_test, duplicates_counted=counted or self.duplicates_counted
        )


class LeakageRefused(DataError):
    """data.leakage.action: fail, and some feature is suspect: the one-line error, and what was found (preprocess
    logs `data/leakage.json` on its failed run, to show why)."""

    def __init__(self, message: str, found: Leakage) -> None:
        super().__init__(message)
        self.found = found


def _sortable(score: float | None) -> float:
    return -np.inf if score is None else score


def sample(frame: pd.DataFrame, seed: int, rows: int = SAMPLE_ROWS) -> pd.DataFrame:
    """At most `rows` rows of `frame`, drawn with `seed` (the frame itself when it is no longer)."""
    return frame if len(frame) <= rows else frame.sample(n=rows, random_state=seed)


# --- the scores --------------------------------------------------------------------------------------------------


def _numeric_bins(values: np.ndarray, fitted: int, bins: int, least: int) -> tuple[np.ndarray, int]:
    """Bin numbers (and how many): 0 for a missing value, then up to `bins` quantile bins of the values of the
    first `fitted` rows (cut at the quantiles of at most EDGE_ROWS of them: enough for 256 bins, a fifth of the
    sort)."""
    present = np.isfinite(values)
    complete = bool(present.all())
    known = values[:fitted] if complete else values[:fitted][present[:fitted]]
    known = np.sort(known[:: -(-known.size // EDGE_ROWS) or 1])
    if known.size == 0:
        return np.zeros(len(values), dtype=np.int64), 1
    # Equal shares of the values, and the two end bins halved again and again (down to `least` values): where a
    # long tail holds much of a target's variance, a tree splits it finely too.
    halves = 1 / bins / 2.0 ** np.arange(1, 32)
    halves = halves[halves * known.size >= least]
    levels = np.concatenate((np.arange(1, bins) / bins, halves, 1 - halves))
    cuts = np.unique(np.clip((levels * known.size).astype(np.int64), 1, known.size - 1))
    # Halfway between the fitted values either side of each cut, as a tree splits: a held-out value goes with the
    # fitted values nearest to it.
    edges = np.unique((known[cuts - 1] + known[cuts]) / 2)
    if complete:
        return _bin_of(values, edges) + 1, len(edges) + 2
    codes = np.zeros(len(values), dtype=np.int64)
    codes[present] = _bin_of(values[present], edges) + 1
    return codes, len(edges) + 2


def _bin_of(values: np.ndarray, edges: np.ndarray, cells_per_edge: int = 64) -> np.ndarray:
    """`np.searchsorted(edges, values, side="right")`, several times faster for many edges: a value's cell of an
    even grid over the edges looks its bin up in a table; only values in a cell holding an edge are searched."""
    low, high = edges[0], edges[-1]
    if len(edges) <= 32 or not high > low:
        return np.searchsorted(edges, values, side="right")
    cells = cells_per_edge * len(edges)
    scale = cells / (high - low)
    at = np.searchsorted(edges, low + np.arange(cells + 1) / scale, side="right")  # the bin at each cell's start
    # Cell -1: below the edges (bin 0); cell `cells`: above them (the last bin).
    table = np.concatenate(([0], at[:-1], [len(edges)]))
    split = np.concatenate(([False], at[:-1] != at[1:], [False]))
    cell = np.floor(np.clip((values - low) * scale, -1, cells)).astype(np.int64) + 1
    found, searched = table[cell], split[cell]
    if searched.any():
        found[searched] = np.searchsorted(edges, values[searched], side="right")
    return found


def _category_bins(column: pd.Series) -> tuple[np.ndarray, int]:
    """Bin numbers (and how many): 0 for a missing value, then one per category."""
    categorical = column if isinstance(column.dtype, pd.CategoricalDtype) else column.astype("category")
    return categorical.cat.codes.to_numpy().astype(np.int64) + 1, len(categorical.cat.categories) + 1


def _binned_auc(score: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> float | None:
    """ROC AUC of a score that is one value per bin, from each bin's positive and negative rows (ties count half);
    None without positive or without negative rows."""
    total_positive, total_negative = positive.sum(), negative.sum()
    if total_positive == 0 or total_negative == 0:
        return None
    order = np.argsort(score, kind="stable")
    _, starts = np.unique(score[order], return_index=True)
    positive_at = np.add.reduceat(positive[order], starts)
    negative_at = np.add.reduceat(negative[order], starts)
    below = np.cumsum(negative_at) - negative_at
    return float((positive_at * (below + 0.5 * negative_at)).sum() / (total_positive * total_negative))


def _class_score(codes: np.ndarray, bins: int, labels: np.ndarray, classes: int, fitted: int) -> float | None:
    """ROC AUC on the rows after the first `fitted` of each bin's class shares among the first `fitted` rows
    (pulled towards the overall shares by one row's weight): of the second class for a binary target, else
    one-vs-rest averaged over the classes with positive and negative held-out rows."""
    cells, cell = bins * classes, codes * classes + labels
    learnt = np.bincount(cell[:fitted], minlength=cells).reshape(bins, classes)
    counts = np.bincount(cell[fitted:], minlength=cells).reshape(bins, classes)
    prior = learnt.sum(axis=0) / max(fitted, 1)
    shares = (learnt + prior) / (learnt.sum(axis=1, keepdims=True) + 1.0)
    rows = counts.sum(axis=1)
    aucs = [
        _binned_auc(shares[:, k], counts[:, k], rows - counts[:, k]) for k in ([1] if classes == 2 else range(classes))
    ]
    known = [auc for auc in aucs if auc is not None]
    return float(np.mean(known)) if known else None


def _regression_score(
    codes: np.ndarray, bins: int, values: np.ndarray | None, target: np.ndarray, fitted: int
) -> float | None:
    """R² on the rows after the first `fitted` of a straight line per bin through its first `fitted` rows (the
    bin's mean for a categorical feature, missing values or a bin of one value; the fitted mean for a bin without
    fitted rows), clipped to the fitted target's range. None when the held-out target is constant."""
    y_fit, y_held = target[:fitted], target[fitted:]
    if y_held.size < 2 or y_held.var() == 0:
        return None
    center, scale = y_fit.mean(), y_fit.std() or 1.0
    y = (y_fit - center) / scale
    where = codes[:fitted]
    n = np.bincount(where, minlength=bins).astype(float)
    mean_y = np.divide(np.bincount(where, y, bins), n, out=np.zeros(bins), where=n > 0)
    held = codes[fitted:]
    prediction = mean_y[held]
    if values is not None:
        x = np.where(np.isfinite(values), values, 0.0)
        x = (x - x[:fitted].mean()) / (x[:fitted].std() or 1.0)
        mean_x = np.divide(np.bincount(where, x[:fitted], bins), n, out=np.zeros(bins), where=n > 0)
        sxx = np.bincount(where, x[:fitted] ** 2, bins) - n * mean_x**2
        sxy = np.bincount(where, x[:fitted] * y, bins) - n * mean_x * mean_y
        slope = np.divide(sxy, sxx, out=np.zeros(bins), where=sxx > 1e-9 * np.maximum(n, 1.0))
        slope[0] = 0.0  # the missing values' bin
        prediction = prediction + slope[held] * (x[fitted:] - mean_x[held])
    # A line may reach past the fitted targets (a copy of the target does), by one range of them at most.
    low, high = y_fit.min(), y_fit.max()
    prediction = np.clip(prediction * scale + center, 2 * low - high, 2 * high - low)
    return float(1.0 - np.mean((y_held - prediction) ** 2) / y_held.var())


def feature_scores(frame: pd.DataFrame, schema: Schema, seed: int) -> dict[str, float | None]:
    """Each feature of the schema scored alone on `frame` (model inputs as `conform` types them, and the target in
    its labels): ROC AUC (classification) or R² (regression) on a seeded 30% of the rows, rounded to 4 places."""
    target = frame[schema.target]
    if target.isna().any():
        frame, target = frame[target.notna().to_numpy()], target[target.notna()]
    scores: dict[str, float | None] = dict.fromkeys(schema.columns)
    if len(frame) < MIN_ROWS:
        return scores
    # The rows in a seeded order, the fitted ones first: each model fits on a slice and is scored on the rest.
    order = np.random.default_rng(seed).permutation(len(frame))
    fitted = len(frame) - round(len(frame) * HOLDOUT_SHARE)
    least = MIN_BIN_ROWS if schema.is_classification else MIN_LINE_ROWS
    bins = int(np.clip(fitted // least, 2, MAX_BINS))
    if schema.is_classification:
        labels = pd.factorize(target)[0].astype(np.int64)[order]
        classes = int(labels.max()) + 1
    else:
        numbers = target.to_numpy(dtype=float)[order]
    for name, kind in schema.columns.items():
        if kind == CATEGORICAL:
            values = None
            codes, count = _category_bins(frame[name])
            codes = codes[order]
        else:
            values = frame[name].to_numpy(dtype=float, na_value=np.nan)[order]
            codes, count = _numeric_bins(values, fitted, bins, least)
        if not schema.is_classification:
            score = _regression_score(codes, count, values, numbers, fitted)
        else:
            score = _class_score(codes, count, labels, classes, fitted) if classes > 1 else None
        scores[name] = None if score is None else round(score, 4)
    return scores


# --- the decision ------------------------------------------------------------------------------------------------


def check(
    frame: pd.DataFrame, schema: Schema, settings: LeakageConfig, seed: int, what: str, train_rows: int | None = None
) -> Leakage:
    """Score every feature on a sample of `frame` (the typed training split, or a sample of it drawn from
    `train_rows` rows) and name the suspects: the features scoring at least `settings.threshold`. Logs one line
    (the highest scores); `guard` acts on the suspects."""
    started = time.perf_counter()
    rows = sample(frame, seed)
    scores = feature_scores(rows, schema, seed)
    ranked = sorted((name for name in scores if scores[name] is not None), key=lambda name: -_sortable(scores[name]))
    found = Leakage(
        metric="roc_auc" if schema.is_classification else "r2",
        threshold=settings.threshold,
        action=settings.action,
        sample_rows=len(rows),
        train_rows=len(frame) if train_rows is None else train_rows,
        scores=scores,
        suspects=[name for name in ranked if _sortable(scores[name]) >= settings.threshold],
        seconds=round(time.perf_counter() - started, 3),
    )
    logger.info(
        "{}: leakage check: each feature alone, {} on {} of {} training rows ({:.1f} s); highest: {}",
        what,
        found.metric,
        f"{found.sample_rows:,}",
        f"{found.train_rows:,}",
        found.seconds,
        ", ".join(f"{name} {scores[name]:.3f}" for name in ranked[:3]) or "none scored (too few rows)",
    )
    return found


def named(found: Leakage) -> str:
    """The suspects with their scores, as the log lines and the error name them."""
    return ", ".join(f"'{name}' ({found.metric} {found.scores[name]:.3f})" for name in found.suspects)


def guard(
    found: Leakage, schema: Schema, report: dict[str, list[str]], what: str
) -> tuple[Schema, dict[str, list[str]]]:
    """Act on the suspects as `data.leakage.action` says: warn (one line; they stay), fail (`LeakageRefused`: one
    line), or drop (one line; the schema without them, the raw inputs among them ignored by the model, and the
    report listing them under REPORT_GROUP). Returns the schema and the report to go on with."""
    if not found.suspects:
        return schema, report
    why = (
        f"alone predict(s) the target almost perfectly (at least data.leakage.threshold {found.threshold}): a copy "
        "of the target, or something known only once it is?"
    )
    if found.action == "fail":
        raise LeakageRefused(
            f"{what}: feature(s) {named(found)} {why} Refused (data.leakage.action: fail): leave them out "
            "(data.features) or set data.leakage.action to drop",
            found,
        )
    if found.action == "warn":
        logger.warning(
            "{}: suspected leakage: feature(s) {} {} Kept (data.leakage.action: warn; drop or fail act on it)",
            what,
            named(found),
            why,
        )
        return schema, report
    logger.warning(
        "{}: suspected leakage: dropping feature(s) {}, which alone predict(s) the target almost perfectly (at least "
        "data.leakage.threshold {}; data.leakage.action: drop)",
        what,
        named(found),
        found.threshold,
    )
    return without(schema, found.suspects, what), {**report, REPORT_GROUP: list(found.suspects)}


def without(schema: Schema, columns: list[str], what: str) -> Schema:
    """The schema less the feature `columns`; those that are raw inputs become inputs the model ignores."""
    gone = set(columns)
    kept = {name: kind for name, kind in schema.columns.items() if name not in gone}
    if not kept:
        raise DataError(
            f"{what}: no feature column is left once the suspected leaks are dropped ({', '.join(columns)}); "
            "set data.leakage.action to warn to look at them"
        )
    return dataclasses.replace(
        schema,
        columns=kept,
        categories={name: values for name, values in schema.categories.items() if name not in gone},
        ignored_inputs=sorted(set(schema.ignored_inputs) | (gone & set(schema.inputs))),
    )


# --- test rows also in the train split -------------------------------------------------------------------------


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """One 64-bit hash per row over every column (values and column order, not the index)."""
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def rows_in(test_hashes: np.ndarray, train_hashes: np.ndarray) -> int:
    """How many test rows (given by their hashes) have an identical row in the train split."""
    return int(pd.Index(test_hashes).isin(train_hashes).sum())  # a hash table: np.isin sorts, 30 times slower


def warn_duplicates(found: int, n_test: int, what: str, estimated: bool = False) -> None:
    """One warning line when more than DUPLICATES_WARN_SHARE of the test split also appears in the train split."""
    if n_test and found > DUPLICATES_WARN_SHARE * n_test:
        logger.warning(
            "{}: {}{} of the {} test rows ({:.1%}) also appear in the train split (the same features and target): "
            "the test metrics overstate how the model does on rows it has not seen (duplicate rows in the table?)",
            what,
            "about " if estimated else "",
            f"{found:,}",
            f"{n_test:,}",
            found / n_test,
        )


def count_test_rows_in_train(found: Leakage, train: pd.DataFrame, test: pd.DataFrame, what: str) -> Leakage:
    """`found` with the test rows that have an identical row in the train split counted over both whole splits
    (the typed frames: features and target), warned of above DUPLICATES_WARN_SHARE of the test split."""
    train_hashes, test_hashes = row_hashes(train), row_hashes(test)
    count = rows_in(test_hashes, train_hashes)
    warn_duplicates(count, len(test), what)
    digests = (str(train_hashes.sum()), str(test_hashes.sum()))  # as `digest` sums them
    return dataclasses.replace(found.with_duplicates(count, len(test)), split_digests=digests)


def hash_modulus(train_rows: int) -> int:
    """engine dask: compare the rows whose hash is a multiple of this (1: every row; enough that about
    DUPLICATES_HASHED_ROWS train rows or fewer are compared)."""
    return max(1, -(-train_rows // DUPLICATES_HASHED_ROWS))


def count_hashed_rows(
    found: Leakage, train_hashes: np.ndarray, test_hashes: np.ndarray, n_test: int, modulus: int, what: str
) -> Leakage:
    """engine dask: `found` with the test rows also in the train split counted on the rows whose hash is a multiple
    of `modulus` (`hash_modulus`; identical rows share their hash, so both sides of a pair are in that share or
    neither is), scaled by `modulus`: exact with 1, an estimate otherwise. Warned of as on the local engine."""
    count = rows_in(test_hashes, train_hashes) * modulus
    warn_duplicates(count, n_test, what, estimated=modulus > 1)
    counted = (
        f"estimated: the rows whose hash is a multiple of {modulus} (about 1/{modulus} of each split), times {modulus}"
        if modulus > 1
        else ""
    )
    return found.with_duplicates(count, n_test, counted)
