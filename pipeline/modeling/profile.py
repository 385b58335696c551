"""The reference profile a model carries, and the drift of a batch of rows from it.

train profiles the training inputs (`profile`): per numeric feature, 10 quantile bins of the train split (the 9
inner edges and each bin's share) and the missing share; per categorical feature, each training category's share
and the missing share; and the model's output on the test split (binary: the positive class's probability, in
bins; multiclass: the share of each answered label; regression: the prediction, in bins). The features profiled are
the raw columns callers send that are model inputs as they are (not date columns, whose every new batch is later
than training, nor the feature hook's columns, which callers do not send). The document is JSON, stored inside the
registered model (`artifacts/profile.json`) and as train's `data/profile.json`.

predict and monitor count a batch's rows into the same bins (`Tally`, chunk by chunk or partition by partition,
merged), then `compare` gives each feature's population stability index:

    PSI = sum over bins of (batch share - reference share) x ln(batch share / reference share)

over the value bins, a bin for missing values and, for a categorical feature, one for categories never seen in
training (reference share 0); a share of 0 counts as EPSILON. PSI at least `monitor.psi_warn` warns, at least
`monitor.psi_alert` alerts; a batch of fewer than `monitor.min_rows` rows gets no verdict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data.transform import CATEGORICAL, NUMERIC, category_text, unused_name

BINS = 10
EPSILON = 1e-4
OUTPUT = "model output"  # the output's name in a report, beside the features
_UNSAFE_METRIC = re.compile(r"[^0-9A-Za-z_\-. /]")


def profiled_features(schema: dict[str, Any]) -> dict[str, str]:
    """The features a profile covers: raw input columns the model reads as they are -> numeric | categorical."""
    inputs, ignored = schema.get("inputs") or {}, set(schema.get("ignored_inputs") or ())
    return {name: kind for name, kind in schema["columns"].items() if name in inputs and name not in ignored}


def _numeric_profile(values: np.ndarray) -> dict[str, Any]:
    present = values[~np.isnan(values)]
    edges = np.unique(np.quantile(present, np.linspace(0, 1, BINS + 1)[1:-1])) if len(present) else np.array([])
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    return {
        "kind": NUMERIC,
        "edges": edges.tolist(),
        "shares": (counts / max(len(present), 1)).tolist(),
        "missing": float(1 - len(present) / max(len(values), 1)),
    }


def _categorical_profile(values: pd.Series) -> dict[str, Any]:
    text = category_text(values)
    counts = text.value_counts(dropna=True)
    present = int(counts.sum())
    return {
        "kind": CATEGORICAL,
        "categories": [str(label) for label in counts.index],
        "shares": (counts.to_numpy() / max(present, 1)).tolist(),
        "missing": float(1 - present / max(len(values), 1)),
    }


def _numbers(values: pd.Series) -> np.ndarray:
    """Values as float64, as the model types them (booleans 0/1; the model already refused text that is no
    number, so what does not convert here is missing)."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype="float64", na_value=np.nan)
    return pd.to_numeric(values.astype(object).where(values.notna(), None), errors="coerce").to_numpy(dtype="float64")


def column_profile(values: pd.Series, kind: str) -> dict[str, Any]:
    if kind == NUMERIC:
        return _numeric_profile(_numbers(values))
    return _categorical_profile(values)


def output_values(answer: pd.DataFrame, schema: dict[str, Any]) -> tuple[str, str, pd.Series]:
    """The model output a profile covers, from an answer frame: its name, kind and values."""
    if schema["task"] == "binary":
        from pipeline.data.transform import probability_column

        name = probability_column(schema["positive_class"])
        return name, NUMERIC, answer[name]
    return "prediction", CATEGORICAL if schema["task"] == "multiclass" else NUMERIC, answer["prediction"]


def profile(features: pd.DataFrame, schema: dict[str, Any], test_answer: pd.DataFrame) -> dict[str, Any]:
    """The reference profile of training rows (model inputs, as the train split holds them) and of the model's
    answer on the test split."""
    columns = {name: column_profile(features[name], kind) for name, kind in profiled_features(schema).items()}
    name, kind, values = output_values(test_answer, schema)
    return {
        "rows": len(features),
        "bins": BINS,
        "features": columns,
        "output": {"name": name, **column_profile(values, kind)},
    }


@dataclass
class Counts:
    """A batch's counts in one profiled column's bins."""

    bins: np.ndarray  # value bins (numeric) or training categories (categorical)
    missing: int = 0
    unseen: int = 0
    rows: int = 0
    examples: list[str] = field(default_factory=list)  # a few unseen categories

    def add(self, other: Counts) -> None:
        self.bins = self.bins + other.bins
        self.missing += other.missing
        self.unseen += other.unseen
        self.rows += other.rows
        self.examples = sorted(set(self.examples) | set(other.examples))[:5]


def count(values: pd.Series, reference: dict[str, Any]) -> Counts:
    """A batch's values counted into a profiled column's bins."""
    if reference["kind"] == NUMERIC:
        numbers = _numbers(values)
        present = numbers[~np.isnan(numbers)]
        edges = np.asarray(reference["edges"], dtype="float64")
        bins = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
        return Counts(bins, missing=len(numbers) - len(present), rows=len(numbers))
    text = category_text(values)
    known = pd.Categorical(text, categories=reference["categories"])
    codes = np.asarray(known.codes)
    bins = np.bincount(codes[codes >= 0], minlength=len(reference["categories"]))
    unseen = text.notna().to_numpy() & (codes < 0)
    return Counts(
        bins,
        missing=int(text.isna().sum()),
        unseen=int(unseen.sum()),
        rows=len(text),
        examples=sorted({str(value) for value in text[unseen].head(50)})[:5],
    )


class Tally:
    """A batch counted into a profile's bins, chunk by chunk (or partition by partition, then merged)."""

    def __init__(self, reference: dict[str, Any]) -> None:
        self.reference = reference
        self.columns: dict[str, Counts] = {}
        self.rows = 0

    def add(self, scored: pd.DataFrame, schema: dict) -> Tally:
        """Count one scored chunk (the rows as the caller sent them, followed by the model's answer): categories as
        sent (one never seen in training counts as unseen, not missing), and the answer."""
        for name, reference in self.reference["features"].items():
            self._add(name, count(scored[name], reference))
        self._add(OUTPUT, count(output_values(scored, schema)[2], self.reference["output"]))
        self.rows += len(scored)
        return self

    def _add(self, name: str, counted: Counts) -> None:
        if name in self.columns:
            self.columns[name].add(counted)
        else:
            self.columns[name] = counted

    def merge(self, other: Tally) -> Tally:
        for name, counted in other.columns.items():
            self._add(name, counted)
        self.rows += other.rows
        return self


def _shares(reference: dict[str, Any]) -> np.ndarray:
    """The reference's shares over value bins, missing, and (categorical) unseen."""
    present = np.asarray(reference["shares"], dtype="float64") * (1 - reference["missing"])
    tail = [reference["missing"], 0.0] if reference["kind"] == CATEGORICAL else [reference["missing"]]
    return np.r_[present, tail]


def _batch_shares(counted: Counts, kind: str) -> np.ndarray:
    tail = [counted.missing, counted.unseen] if kind == CATEGORICAL else [counted.missing]
    return np.r_[counted.bins, tail] / max(counted.rows, 1)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """The population stability index of `actual` shares against `expected` ones (EPSILON for a share of 0)."""
    expected, actual = np.maximum(expected, EPSILON), np.maximum(actual, EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def level(value: float, warn: float, alert: float) -> str:
    return "alert" if value >= alert else "warn" if value >= warn else "ok"


def compare(tally: Tally, warn: float, alert: float, min_rows: int) -> dict[str, Any]:
    """The drift report of a counted batch: per column its PSI, level, missing shares and unseen categories; the
    verdict (ok, warn, alert; too_few_rows below `min_rows`, with the PSIs still shown)."""
    reference, columns = tally.reference, {}
    for name, counted in tally.columns.items():
        column = reference["output"] if name == OUTPUT else reference["features"][name]
        value = psi(_shares(column), _batch_shares(counted, column["kind"]))
        entry = {
            "kind": column["kind"],
            "psi": value,
            "level": level(value, warn, alert),
            "missing_reference": column["missing"],
            "missing_batch": counted.missing / max(counted.rows, 1),
            "reference_shares": _shares(column).tolist(),
            "batch_shares": _batch_shares(counted, column["kind"]).tolist(),
        }
        if column["kind"] == CATEGORICAL:
            entry.update(unseen_share=counted.unseen / max(counted.rows, 1), unseen_examples=counted.examples)
        columns[name] = entry
    enough = tally.rows >= min_rows
    alerted = sorted(name for name, entry in columns.items() if enough and entry["level"] == "alert")
    warned = sorted(name for name, entry in columns.items() if enough and entry["level"] == "warn")
    verdict = "too_few_rows" if not enough else "alert" if alerted else "warn" if warned else "ok"
    return {
        "rows": tally.rows,
        "min_rows": min_rows,
        "psi_warn": warn,
        "psi_alert": alert,
        "verdict": verdict,
        "alerted": alerted,
        "warned": warned,
        "columns": dict(sorted(columns.items(), key=lambda item: -item[1]["psi"])),
    }


def metric_name(column: str) -> str:
    """`drift_psi_<column>` with characters MLflow refuses in a metric name replaced by `_`."""
    return "drift_psi_output" if column == OUTPUT else f"drift_psi_{_UNSAFE_METRIC.sub('_', column)}"


def metric_names(columns: list[str]) -> dict[str, str]:
    """Each column's metric name, distinct: a feature whose name comes out as one already taken (`drift_psi_max`,
    the model output's, or another feature's after escaping: `a?b` and `a!b`) gets `_2`, `_3` in name order."""
    names = {OUTPUT: metric_name(OUTPUT)} if OUTPUT in columns else {}
    taken = {"drift_psi_max", *names.values()}
    for column in sorted(column for column in columns if column != OUTPUT):
        name = unused_name(metric_name(column), taken)
        names[column] = name
        taken.add(name)
    return names


def metrics(report: dict[str, Any]) -> dict[str, float]:
    """What a run logs of a report: drift_rows, and with a verdict drift_psi_max, drift_n_warn, drift_n_alert and
    drift_psi_<column> per column."""
    logged = {"drift_rows": float(report["rows"])}
    if report["verdict"] == "too_few_rows":
        return logged
    columns = report["columns"]
    logged.update(
        drift_psi_max=max((entry["psi"] for entry in columns.values()), default=0.0),
        drift_n_warn=float(len(report["warned"])),
        drift_n_alert=float(len(report["alerted"])),
    )
    names = metric_names(list(columns))
    logged.update({names[name]: entry["psi"] for name, entry in columns.items()})
    return logged


def summary(report: dict[str, Any]) -> str:
    """One line: the verdict and the columns behind it."""
    if report["verdict"] == "too_few_rows":
        return f"no drift verdict: {report['rows']} rows, fewer than monitor.min_rows {report['min_rows']}"
    columns = report["columns"]
    if report["verdict"] == "ok":
        worst = next(iter(columns.items()), None)
        return "no drift" + (f" (largest PSI {worst[1]['psi']:.3f}, {worst[0]})" if worst else "")
    parts = [
        f"{level}: " + ", ".join(f"{name} (PSI {columns[name]['psi']:.3f})" for name in names)
        for level, names in (("alert", report["alerted"]), ("warn", report["warned"]))
        if names
    ]
    return f"drift {'; '.join(parts)}"
