"""What init-config writes for a table: what the pipeline's own rules decide about it (`decide`: the task, the
positive class of a binary target, rows without a target, the date, id-like and row-number columns, starter
gates) and the config text that says so, each decision explained by a comment (`render`). Used by
pipeline/steps/init_config.py, which reads the table and writes the file.

A binary target whose positive class is rare (under `RARE_POSITIVE_SHARE` of the labelled rows) gets gates on
`roc_auc` and `average_precision` instead of `accuracy_score` (answering the majority class scores an accuracy of
1 - the share), and `decision.threshold: {optimize: f1}` instead of the base config's 0.5."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pipeline.data.labels import MAX_INFERRED_CLASSES, MAX_NO_TARGET_SHARE, infer_task, positive_class
from pipeline.data.schema import detect_datetime_columns, detect_id_like, detect_row_numbers, raw_kind
from pipeline.errors import DataError

BASE_CONFIG = "pipeline.yaml"
# Gates for a first run, per task: modest on purpose (what a table allows is unknown until the first run).
STARTER_GATES: dict[str, dict[str, float]] = {
    "binary": {"roc_auc": 0.75, "accuracy_score": 0.7},
    "multiclass": {"accuracy_score": 0.7, "f1_score": 0.7},
    "regression": {"r2_score": 0.2},
}
# A binary target whose positive class is under this share of the labelled rows is rare: accuracy is no gate for
# it (a model always answering the majority class scores 1 - share), and the threshold is chosen, not 0.5.
RARE_POSITIVE_SHARE = 0.10
# Rare positive class: the threshold rule proposed (decision.threshold), as the config reads it.
RARE_THRESHOLD_RULE: dict[str, Any] = {"optimize": "f1"}
_LABELS_SHOWN = 10  # label counts written into the comments, at most


@dataclass(frozen=True)
class Scaffold:
    """What init-config decided about a table (everything the written config says, and why)."""

    name: str
    source: str
    target: str
    task: str
    task_reason: str
    n_rows: int
    label_counts: list[tuple[Any, int]] = field(default_factory=list)  # classification: (label, rows), sorted
    positive_class: Any = None
    positive_reason: str | None = None
    id_columns: list[str] = field(default_factory=list)  # the id-like text and row-number columns
    row_number_columns: list[str] = field(default_factory=list)  # those of id_columns that are row numbers
    rows_no_target: int = 0  # rows whose target is empty
    datetime_columns: dict[str, list[str]] = field(default_factory=dict)  # column -> its date parts
    date_gaps: dict[str, int] = field(default_factory=dict)  # date column -> rows without a value
    feature_kinds: dict[str, int] = field(default_factory=dict)  # the other columns: raw kind -> how many
    notes: list[str] = field(default_factory=list)  # things to look at before running
    # preprocess's leakage check run on the table: (column, score) of each suspect, and the metric scored.
    suspects: list[tuple[str, float]] = field(default_factory=list)
    leakage_metric: str = ""
    query: str | None = None
    table: str | None = None

    @property
    def model_name(self) -> str:
        return f"{self.name}-xgb"

    @property
    def experiment(self) -> str:
        return self.name

    @property
    def positive_share(self) -> float | None:
        """Binary: the positive class's share of the rows with a target; None otherwise."""
        if self.task != "binary":
            return None
        labelled = sum(count for _, count in self.label_counts)
        positive = sum(count for label, count in self.label_counts if label == self.positive_class)
        return positive / labelled if labelled else None

    @property
    def rare_positive(self) -> bool:
        """Binary, with the positive class under RARE_POSITIVE_SHARE of the labelled rows."""
        share = self.positive_share
        return share is not None and share < RARE_POSITIVE_SHARE

    @property
    def gates(self) -> dict[str, float]:
        """The starter gates for the task; a rare positive class: roc_auc at its starter value and
        average_precision tied to the positive share, instead of accuracy_score."""
        if not self.rare_positive:
            return STARTER_GATES[self.task]
        starter = STARTER_GATES["binary"]
        return {"roc_auc": starter["roc_auc"], "average_precision": _rare_average_precision(self.positive_share or 0)}

    @property
    def decision_threshold(self) -> dict[str, Any] | None:
        """The decision.threshold rule proposed (a rare positive class), or None: the base config's applies."""
        return dict(RARE_THRESHOLD_RULE) if self.rare_positive else None


def _rare_average_precision(share: float) -> float:
    """A modest average_precision gate for a rare positive class: a random ranking scores about the positive share,
    so twice the share, to two significant digits, capped at 0.5."""
    return float(f"{min(2 * share, 0.5):.2g}")


def _native(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def decide(
    frame: pd.DataFrame, target: str, name: str, source: str, query: str | None = None, table: str | None = None
) -> Scaffold:
    """Decide the task, labels, id and date columns of a table (the target column included) with preprocess's
    rules, applied to the whole table rather than a training split."""
    what = f"init-config {name}"
    labels = frame[target]
    notes = []
    if (missing := int(labels.isna().sum())) > MAX_NO_TARGET_SHARE * len(labels):
        notes.append(
            f"target column '{target}' is empty in {missing} of {len(labels)} rows, more than half: preprocess "
            "refuses the table; is it the column to predict?"
        )
    elif missing:
        notes.append(
            f"target column '{target}' is empty in {missing} of {len(labels)} rows: preprocess leaves those rows "
            "out (data.missing_target: drop)"
        )
    if labels.nunique() < 2:
        raise DataError(
            f"{what}: target column '{target}' holds a single value "
            f"({_native(labels.dropna().iloc[0]) if labels.notna().any() else 'none'}); nothing to learn"
        )
    task, task_reason = infer_task(labels)
    label_counts, positive, positive_reason = [], None, None
    if task != "regression":
        counts = labels.dropna().value_counts()
        label_counts = sorted(
            ((_native(label), int(count)) for label, count in counts.items()),
            key=lambda item: (str(type(item[0])), item[0]),
        )
        if len(label_counts) > MAX_INFERRED_CLASSES:
            notes.append(
                f"target column '{target}' holds {len(label_counts)} distinct labels: is it the column to predict?"
            )
        if task == "binary":
            positive, positive_reason = positive_class([label for label, _ in label_counts], None, target)
    features = frame.drop(columns=[target])
    dates = detect_datetime_columns(features, [], what)
    # Date columns are text with about one value per row as well: they are dates, not ids.
    ids = detect_id_like(features, keep=list(dates))
    # On the table in its file order, as preprocess judges them.
    row_numbers = [name for name in detect_row_numbers(features, keep=list(dates)) if name not in ids]
    kinds: dict[str, int] = {}
    for column in features.columns:
        if str(column) not in dates and str(column) not in ids and str(column) not in row_numbers:
            kind = "text (categorical)" if raw_kind(features[column]) == "text" else raw_kind(features[column])
            kinds[kind] = kinds.get(kind, 0) + 1
    if not kinds and not dates:
        notes.append("no feature column is left besides the target, the ids and the dates")
    return Scaffold(
        name=name,
        source=source,
        target=target,
        task=task,
        task_reason=task_reason,
        n_rows=len(frame),
        label_counts=label_counts,
        positive_class=positive,
        positive_reason=positive_reason,
        id_columns=[*ids, *row_numbers],
        row_number_columns=row_numbers,
        rows_no_target=missing,
        datetime_columns=dates,
        date_gaps={column: int(features[column].isna().sum()) for column in dates},
        feature_kinds=kinds,
        notes=notes,
        query=query,
        table=table,
    )


def _yaml(value: Any) -> str:
    """One YAML flow value that reads back as `value` with its type: 'yes' stays text, 1 an int, True a bool."""
    text = yaml.safe_dump([value], default_flow_style=True, allow_unicode=True, width=10**9).strip()
    return text[1:-1]  # the list's brackets


def _comment(text: str, indent: str = "", width: int = 116) -> list[str]:
    """`text` as comment lines of at most `width` characters."""
    lines, line = [], ""
    for word in text.split():
        if line and len(indent) + 2 + len(line) + 1 + len(word) > width:
            lines.append(f"{indent}# {line}")
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, f"{indent}# {line}"] if line else lines


def _labels_text(scaffold: Scaffold) -> str:
    shown = ", ".join(f"{label!r} ({count} rows)" for label, count in scaffold.label_counts[:_LABELS_SHOWN])
    more = len(scaffold.label_counts) - _LABELS_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def render(scaffold: Scaffold, path: str | Path | None = None) -> str:
    """The config file's text: YAML with a comment on each decision (`path`: where it goes, for the command)."""
    lines = _comment(
        f"Written by `python -m pipeline init-config` from {scaffold.n_rows} rows: a starting point "
        "to edit. Each value below is what the pipeline inferred from the table, and says why; "
        f"everything not written here comes from configs/{BASE_CONFIG}."
    )
    lines += [
        f"#   {next_command(path or f'configs/{scaffold.name}.yaml')}",
        *(line for note in scaffold.notes for line in _comment(f"Look at this first: {note}.")),
        f"extends: {BASE_CONFIG}",
        "",
        *_comment(
            "The MLflow experiment of this table's runs (created on the first run), so each dataset has its own "
            "run list; `mlflow run --experiment-name` or MLFLOW_EXPERIMENT_NAME still take precedence."
        ),
        f"experiment: {_yaml(scaffold.experiment)}",
        "",
    ]
    sections = [
        *_data_section(scaffold),
        *_split_section(scaffold),
        *_decision_section(scaffold),
        *_registry_and_gates(scaffold),
    ]
    return "\n".join([*lines, *sections]) + "\n"


def _data_section(scaffold: Scaffold) -> list[str]:
    """`data:`: where the table is, the target and task, then the columns found, each with why."""
    lines = ["data:", f"  source: {_yaml(scaffold.source)}"]
    if scaffold.query is not None:
        lines.append(f"  query: {_yaml(scaffold.query)}")
    if scaffold.table is not None:
        lines.append(f"  table: {_yaml(scaffold.table)}")
    lines.append(f"  target: {_yaml(scaffold.target)}")
    why_task = f"{scaffold.task}: {scaffold.task_reason}"
    if scaffold.label_counts:
        why_task += f": {_labels_text(scaffold)}"
    lines += _comment(
        f"{why_task}. Written out so that it cannot change with the data; binary, multiclass, regression or auto.", "  "
    )
    lines.append(f"  task: {scaffold.task}")
    if scaffold.task == "binary":
        negative = next(label for label, _ in scaffold.label_counts if label != scaffold.positive_class)
        lines += _comment(
            f"The label ROC AUC, F1 and the gates are about: {scaffold.positive_class!r} "
            f"({scaffold.positive_reason}); the negative class is {negative!r}. Quoted where YAML "
            "would read it otherwise (a bare yes is the boolean true).",
            "  ",
        )
        lines.append(f"  positive_class: {_yaml(scaffold.positive_class)}")
    if scaffold.rows_no_target:
        share = scaffold.rows_no_target / scaffold.n_rows
        found = f"{scaffold.rows_no_target} of {scaffold.n_rows} rows ({share:.1%}) have an empty target."
    else:
        found = "No row has an empty target."
    lines += _comment(
        f"{found} With drop, such rows are left out before the split (warned, and counted in the metric "
        "n_rows_no_target); fail refuses the table.",
        "  ",
    )
    lines.append("  missing_target: drop")
    return lines + _column_lines(scaffold)


def _column_lines(scaffold: Scaffold) -> list[str]:
    """The id and date columns found, and what the features are."""
    text_ids = [name for name in scaffold.id_columns if name not in scaffold.row_number_columns]
    found = []
    if text_ids:
        found.append(f"{', '.join(text_ids)}, text with about one distinct value per row (ids, names, free text)")
    if scaffold.row_number_columns:
        found.append(
            f"{', '.join(scaffold.row_number_columns)}, unique integers growing with the file's row order (row "
            "numbers, auto-increment keys: they give away the target of a table stored sorted)"
        )
    if found:
        why_ids = f"Found: {'; '.join(found)}. Kept out of the features, passed through by predict."
    else:
        why_ids = (
            "None found (a text column with about one distinct value per row, or unique integers growing with the "
            "row order, would be one)."
        )
    lines = _comment(f"{why_ids} Other numeric ids (keys not in row order) are not detected: add them here.", "  ")
    lines.append(f"  id_columns: {_yaml(scaffold.id_columns)}")
    if scaffold.datetime_columns:
        parts = "; ".join(f"{column} -> {', '.join(parts)}" for column, parts in scaffold.datetime_columns.items())
        why_dates = (
            f"Found: every value is a date ({parts}). Each becomes those numeric parts; listed, a value "
            "that does not parse is an error naming it."
        )
    else:
        why_dates = "None found (datetime columns, or text columns whose every value is an ISO 8601 date)."
    lines += _comment(why_dates, "  ")
    lines.append(f"  datetime_columns: {_yaml(list(scaffold.datetime_columns))}")
    if scaffold.suspects:
        named = ", ".join(f"{column} ({scaffold.leakage_metric} {score:.3f})" for column, score in scaffold.suspects)
        lines += _comment(
            f"Suspected leakage: {named} alone predict(s) the target almost perfectly (preprocess's leakage check, "
            "data.leakage.threshold): a copy of the target, or something known only once it is? preprocess warns "
            "of it; leave it out (list the other columns in data.features) or set data.leakage.action: drop.",
            "  ",
        )
    if scaffold.feature_kinds:
        kinds = ", ".join(f"{count} {kind}" for kind, count in scaffold.feature_kinds.items())
        lines += _comment(
            f"Features: the other columns ({kinds}). List "
            "data.features to choose, data.categorical_columns for integer-coded categories.",
            "  ",
        )
    return lines


def _split_section(scaffold: Scaffold) -> list[str]:
    """`split:` for a dated table: in time order on its one date column; with several, which to choose."""
    dates = list(scaffold.datetime_columns)
    if not dates:
        return []
    if len(dates) == 1 and (gaps := scaffold.date_gaps.get(dates[0], 0)):
        why = (
            f"The table is dated ({dates[0]}), but {gaps} of {scaffold.n_rows} rows have no {dates[0]}: a split "
            f"in time order needs a time on every row. Fill or drop them, then set method: time and time_column: "
            f"{dates[0]} (the test split the latest rows). Random until then."
        )
        return ["", "split:", *_comment(why, "  "), "  method: random"]
    if len(dates) == 1:
        why = (
            f"The table is dated ({dates[0]}): the test split is its latest rows and tune validates on the latest "
            "train rows, so the model is never scored on rows older than those it learnt from (a random split "
            "would train it on next week and score it on last week). Set method: random to draw rows at random."
        )
        return ["", "split:", *_comment(why, "  "), "  method: time", f"  time_column: {_yaml(dates[0])}"]
    why = (
        f"Dated by {', '.join(dates)}: to split in time order (the test split the latest rows), set method: time "
        "and time_column to the one that says when each row happened. Random until you choose."
    )
    return ["", "split:", *_comment(why, "  "), "  method: random"]


def _share_text(scaffold: Scaffold) -> str:
    """'yes' is 40 of 1000 rows with a target (4.0%)."""
    positive = next(count for label, count in scaffold.label_counts if label == scaffold.positive_class)
    labelled = sum(count for _, count in scaffold.label_counts)
    return f"{scaffold.positive_class!r} is {positive} of {labelled} rows with a target ({scaffold.positive_share:.1%})"


def _decision_section(scaffold: Scaffold) -> list[str]:
    """`decision:` for a rare positive class: the threshold chosen for F1 rather than 0.5."""
    rule = scaffold.decision_threshold
    if rule is None:
        return []
    why = (
        f"The positive class is rare: {_share_text(scaffold)}, under {RARE_POSITIVE_SHARE:.0%}. The model answers "
        f"{scaffold.positive_class!r} when its probability of {scaffold.positive_class!r} reaches the threshold "
        "chosen for the best F1 on out-of-fold predictions of the train split (decision.folds), rather than 0.5, "
        "which a rare class seldom reaches. Alternatives: {cost: {false_positive: 1, false_negative: 10}} (the "
        "least expected cost, a missed positive costing ten false alarms) or {precision_at_least: 0.9} (the best "
        "recall with that precision). decision.calibration and train.class_weight stay as the base config has them."
    )
    return ["", "decision:", *_comment(why, "  "), f"  threshold: {_yaml(rule)}"]


def _registry_and_gates(scaffold: Scaffold) -> list[str]:
    lines = [
        "",
        "registry:",
        f"  model_name: {_yaml(scaffold.model_name)}   # one registered model (and champion) per dataset",
        "",
        "evaluate:",
    ]
    lines += _comment(
        f"Gates for a {scaffold.task} task, modest for a first run: raise these once you know what your data allows.",
        "  ",
    )
    if scaffold.rare_positive:
        share = scaffold.positive_share or 0.0
        lines += _comment(
            f"Not on accuracy_score: {_share_text(scaffold)}, so a model always answering the majority class "
            f"scores an accuracy of {1 - share:.3g}; accuracy rewards answering the majority class. Gated on "
            f"roc_auc instead, and on average_precision (the area under the precision-recall curve of "
            f"{scaffold.positive_class!r}): a random ranking scores about the positive share ({share:.3g}), so the "
            f"gate is twice it ({scaffold.gates['average_precision']}), capped at 0.5. accuracy_score: null "
            "removes the base config's accuracy gate (sections merge key by key).",
            "  ",
        )
    lines += [f"  {scaffold.task}:", "    thresholds:"]
    lines += [f"      {metric}: {{threshold: {_yaml(threshold)}}}" for metric, threshold in scaffold.gates.items()]
    left_out = [metric for metric in STARTER_GATES[scaffold.task] if metric not in scaffold.gates]
    return lines + [f"      {metric}: null   # no gate: see above" for metric in left_out]


def next_command(path: str | Path) -> str:
    return f"mlflow run . -e main --env-manager local -P config={path}"
