"""The model card of a registered version (`model_card.md`): what the model is for, on what data, how good, with
which caveats, and how to rebuild it. train writes it into its run; evaluate logs it again with its verdict and the
champion comparison appended, and tags the version with where the current card is (`pipeline.model_card`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.data.schema import Schema
from pipeline.data.splitting import DATE_RANGE_PARAM
from pipeline.data.transform import decide

BOOTSTRAP_RESAMPLES = 200
BOOTSTRAP_MAX_ROWS = 50_000  # test rows a bootstrap resamples at most (a seeded sample of them above that)


def bootstrap_interval(
    truth: np.ndarray, predicted: np.ndarray, task: str, decision: dict | None, seed: int = 0
) -> tuple[float, float] | None:
    """A 95% percentile bootstrap interval of the headline metric on the test split (ROC AUC, or RMSE for
    regression): BOOTSTRAP_RESAMPLES resamples of the test rows with replacement. None when it cannot be computed
    (a resample with one class only, every time)."""
    from sklearn.metrics import roc_auc_score, root_mean_squared_error

    rng = np.random.default_rng(seed)
    truth = np.asarray(truth)
    rows = np.arange(len(truth))
    if len(rows) > BOOTSTRAP_MAX_ROWS:
        rows = rng.choice(rows, BOOTSTRAP_MAX_ROWS, replace=False)
    if task == "regression":
        values = np.asarray(predicted, dtype="float64")
    else:
        values, _ = decide(np.asarray(predicted), decision)
        values = values[:, 1] if values.shape[1] == 2 else values
    scores = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        drawn = rng.choice(rows, len(rows), replace=True)
        if task == "regression":
            scores.append(root_mean_squared_error(truth[drawn], values[drawn]))
        elif len(np.unique(truth[drawn])) == (values.shape[1] if values.ndim == 2 else 2):
            scores.append(roc_auc_score(truth[drawn], values[drawn], multi_class="ovr"))
    if not scores:
        return None
    low, high = np.percentile(scores, [2.5, 97.5])
    return float(low), float(high)


@dataclass
class CardFacts:
    """What train knows of the version it registered, for its card."""

    model_name: str
    version: str
    intended_use: str | None
    schema: Schema
    preprocess_params: dict[str, str]
    preprocess_metrics: dict[str, float]
    data_digest: str
    tuned_params: dict[str, Any]
    test_metrics: dict[str, float]
    headline: str
    interval: tuple[float, float] | None
    decision: dict[str, Any] | None
    runs: dict[str, str]  # step -> run id
    dropped: dict[str, list[str]] = field(default_factory=dict)  # reason -> columns (schema report)
    trial_weights: list[float] = field(default_factory=list)  # tune.ensemble's trials, the best (tuned_params) first
    fits: int = 1  # the models averaged into the registered one (train.bag)


def _count(value: float | None) -> str:
    return "?" if value is None else f"{int(value):,}"


def _data_lines(facts: CardFacts) -> list[str]:
    params, metrics = facts.preprocess_params, facts.preprocess_metrics
    lines = [
        f"- Source: `{params.get('data.source', '?')}`; data digest `{facts.data_digest}`.",
        f"- Rows: {_count(metrics.get('n_rows'))} ({_count(metrics.get('n_train'))} train, "
        f"{_count(metrics.get('n_test'))} test); split `{params.get('split.method', 'random')}`, seed "
        f"{params.get('split.seed', '?')}.",
    ]
    ranges = [
        (key.removeprefix(DATE_RANGE_PARAM), span) for key, span in params.items() if key.startswith(DATE_RANGE_PARAM)
    ]
    if ranges:
        lines.append("- Dates in the table: " + "; ".join(f"`{name}` {span}" for name, span in sorted(ranges)) + ".")
    if params.get("split.method") == "time":
        lines.append(
            f"- Dated: trained on rows up to {params.get('split.train_end', '?')}, tested on rows from "
            f"{params.get('split.test_start', '?')}."
        )
    if suspects := params.get("data.suspect_features"):
        lines.append(
            f"- **Leakage warning**: {suspects} alone predict(s) the target almost perfectly "
            f"(data.leakage.action: {params.get('data.leakage.action', '?')})."
        )
    return lines


def _feature_lines(facts: CardFacts) -> list[str]:
    kinds: dict[str, list[str]] = {}
    for name, kind in facts.schema.columns.items():
        kinds.setdefault(kind, []).append(f"`{name}`")
    lines = [f"- {kind} ({len(names)}): {', '.join(names)}" for kind, names in sorted(kinds.items())]
    lines += [f"- left out as {reason}: {', '.join(columns)}" for reason, columns in facts.dropped.items() if columns]
    return lines


def _performance_lines(facts: CardFacts) -> list[str]:
    value = facts.test_metrics.get(facts.headline)
    interval = f" (95% bootstrap interval {facts.interval[0]:.4f} to {facts.interval[1]:.4f})" if facts.interval else ""
    lines = [
        f"- Headline: `{facts.headline}` {value:.4f}{interval}, on the held-out test split."
        if value is not None
        else f"- Headline `{facts.headline}`: not computed."
    ]
    others = ", ".join(f"`{k}` {v:.4f}" for k, v in sorted(facts.test_metrics.items()) if k != facts.headline)
    if others:
        lines.append(f"- Also: {others}.")
    decision = facts.decision or {}
    if decision.get("threshold") is not None:
        lines.append(
            f"- Decision: the positive label at probability >= {decision['threshold']:.4f} "
            f"({decision.get('objective')})."
        )
    if decision.get("calibration"):
        lines.append(f"- Probabilities calibrated ({decision['calibration'][0]['method']}) on {decision['held_out']}.")
    return lines


def _averaged_lines(facts: CardFacts) -> list[str]:
    """What the model averages, above the best trial's params (nothing for a single fit)."""
    if len(facts.trial_weights) > 1:
        weights = ", ".join(f"{weight:.2f}" for weight in facts.trial_weights)
        return [
            f"The model is the weighted average of {facts.fits} fits of {len(facts.trial_weights)} trials (weights "
            f"{weights}; the tune run's `ensemble.json` holds each one's params); the table is the best trial's.",
            "",
        ]
    if facts.fits > 1:
        return [f"The model is the average of {facts.fits} fits of these params (train.bag).", ""]
    return []


def render(facts: CardFacts) -> str:
    """The card as Markdown."""
    schema = facts.schema
    labels = ""
    if schema.is_classification:
        labels = f"; labels {', '.join(map(repr, schema.classes))}"
        labels += f", positive {schema.positive_class!r}" if schema.positive_class is not None else ""
    params = "\n".join(f"| `{k}` | `{v}` |" for k, v in sorted(facts.tuned_params.items()))
    # The UI's own route to a run (it finds the experiment), and the URI MLflow's APIs take.
    runs = [f"- {step}: [`{run_id}`](#/runs/{run_id}) (`runs:/{run_id}`)" for step, run_id in facts.runs.items()]
    lines = [
        f"# Model card: {facts.model_name} version {facts.version}",
        "",
        "## Intended use",
        "",
        facts.intended_use or "Not stated (set `registry.description` in the config).",
        "",
        "## Data",
        "",
        *_data_lines(facts),
        "",
        "## Task and features",
        "",
        f"- Task: {schema.task}; target `{schema.target}`{labels}.",
        *_feature_lines(facts),
        "",
        "## Tuned parameters",
        "",
        *_averaged_lines(facts),
        "| param | value |",
        "|---|---|",
        params,
        "",
        "## Performance",
        "",
        *_performance_lines(facts),
        "",
        "## Lineage",
        "",
        *runs,
        f"- Rebuild it: `python -m pipeline reproduce --model {facts.model_name} --version {facts.version}`.",
        "",
    ]
    return "\n".join(lines)


def with_evaluation(card: str, decision: str, reason: str, comparison: list[str], gates: Sequence[str] = ()) -> str:
    """The card with evaluate's verdict, its gates (bound, value, outcome) and the champion comparison appended."""
    lines = [card.rstrip(), "", "## Evaluation", "", f"- Verdict: **{decision}**. {reason}", *gates]
    if comparison:
        lines += ["", *comparison]
    return "\n".join(lines) + "\n"
