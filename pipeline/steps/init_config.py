"""Scaffold a config for a table: `python -m pipeline init-config --source TABLE --target COLUMN [--name NAME]`.

Reads the table (`data.source`: a CSV/Parquet path or URL, s3://, a SQL source with `query`/`table`, sklearn:<name>)
with the pipeline's own loader, and decides with the pipeline's own rules what preprocess would infer
(pipeline/data/scaffold.py, which also writes the text): the task
(`pipeline.data.labels.infer_task`), the positive class of a binary target (`pipeline.data.labels.positive_class`),
the date columns (`pipeline.data.schema.detect_datetime_columns`), the id-like text columns
(`pipeline.data.schema.detect_id_like`) and the row numbers (`pipeline.data.schema.detect_row_numbers`, on the
table in its file order), and counts the rows without a target; then runs preprocess's own work on the written config
(in this process, no run) for its leakage check, and writes the suspects as a comment.

Writes `<configs_dir>/<name>.yaml` (default `configs/<source stem>.yaml`): `extends: pipeline.yaml`, `experiment:
<name>` (each dataset its own experiment), plus
`data.source/target/task/positive_class/missing_target/id_columns/datetime_columns`, `registry.model_name`
(`<name>-xgb`) and modest gates for the task under `evaluate.<task>`, each decision explained by a comment. A binary
target whose positive class is under `RARE_POSITIVE_SHARE` (10%) of the rows is gated on `roc_auc` and
`average_precision` rather than `accuracy_score`, and gets `decision.threshold: {optimize: f1}`. The
file is validated with `pipeline.config.load_config` before it takes its name (written to a temporary file, then
renamed), and an existing file is only replaced when asked (`force`). Needs no tracking store and starts no run.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loguru import logger
from pydantic import ValidationError

from pipeline.config import DataConfig, ThresholdRule, load_config
from pipeline.data.scaffold import BASE_CONFIG, Scaffold, decide, next_command, render
from pipeline.data.source_text import SKLEARN_PREFIX, source_kind
from pipeline.data.sources import load_source
from pipeline.errors import ConfigError, DataError
from pipeline.masking import mask_url

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def default_name(source: str, table: str | None = None) -> str:
    """The config's name for a source: the table for a SQL table, else the file's stem (a URL's path, sklearn's
    dataset), lower-cased, every run of non-alphanumerics turned into one '-'. Asked before the source is read or
    its config validated, so it goes by the kind of the text alone."""
    kind = source_kind(source)
    if table:
        stem = table
    elif kind == "sklearn":
        stem = source.removeprefix(SKLEARN_PREFIX)
    else:
        stem = Path(source if kind == "files" else urlsplit(source).path).stem
    name = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")
    if not name:
        raise ConfigError(f"init-config: cannot make a config name from '{mask_url(source)}'; pass --name")
    return name


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(f"init-config: --name '{name}' must be letters, digits, '_', '-' or '.' (not first)")
    if f"{name}.yaml" == BASE_CONFIG:
        raise ConfigError(f"init-config: --name '{name}' would replace the base config {BASE_CONFIG}; choose another")
    return name


def _check_written(path: Path, scaffold: Scaffold) -> None:
    """The file loads and validates as a pipeline config and reads back what was decided, with the same types."""
    config = load_config(path)
    if config.experiment != scaffold.experiment:
        raise ConfigError(f"init-config: experiment reads back as {config.experiment!r}, not {scaffold.experiment!r}")
    data = config.data
    read_back = {
        "target": data.target,
        "task": data.task,
        "positive_class": data.positive_class,
        "missing_target": data.missing_target,
        "id_columns": data.id_columns,
        "datetime_columns": data.datetime_columns,
    }
    wanted = {
        "target": scaffold.target,
        "task": scaffold.task,
        "positive_class": scaffold.positive_class,
        "missing_target": "drop",
        "id_columns": scaffold.id_columns,
        "datetime_columns": list(scaffold.datetime_columns),
    }
    for key, value in wanted.items():
        if read_back[key] != value or type(read_back[key]) is not type(value):
            raise ConfigError(f"init-config: data.{key} reads back as {read_back[key]!r}, not {value!r}")
    gates = config.evaluate.gates(scaffold.task).thresholds
    for metric, threshold in scaffold.gates.items():
        if metric not in gates or gates[metric].threshold != threshold:
            found = gates[metric].threshold if metric in gates else None
            raise ConfigError(
                f"init-config: evaluate.{scaffold.task}.thresholds.{metric} reads back as {found!r}, not {threshold!r}"
            )
    if (rule := scaffold.decision_threshold) is not None:
        chosen = config.decision.threshold
        if not isinstance(chosen, ThresholdRule) or chosen != ThresholdRule.model_validate(rule):
            raise ConfigError(f"init-config: decision.threshold reads back as {chosen!r}, not {rule!r}")


def _leakage_suspects(config_path: Path) -> tuple[str, list[tuple[str, float]]] | None:
    """preprocess's own work on the written config, in this process and without a run: the leakage check's metric
    and suspects (None when there are none, or when preprocess would refuse the table: its error is then shown
    by the first run, and is not init-config's to decide)."""
    from pipeline.engines.local.preprocess import prepare  # scikit-learn and the schema: only once a file is written

    config = load_config(config_path, {"features.derived": False, "data.leakage.action": "warn"})
    try:
        found = prepare(config).leakage
    except DataError as exc:
        logger.warning("init-config: the leakage check did not run: {}", exc)
        return None
    if not found.suspects:
        return None
    return found.metric, [(name, float(found.scores[name] or 0.0)) for name in found.suspects]


def run(
    source: str,
    target: str,
    name: str | None = None,
    force: bool = False,
    configs_dir: Path = Path("configs"),
    query: str | None = None,
    table: str | None = None,
) -> dict[str, Any]:
    """Read the table, decide, write `<configs_dir>/<name>.yaml`, validate it; return what was decided and the
    path. Errors (no such source or target column, an existing file without `force`) are ConfigError/DataError."""
    name = _check_name(name) if name else default_name(source, table)
    configs_dir = Path(configs_dir)
    path = configs_dir / f"{name}.yaml"
    if path.exists() and not force:
        raise ConfigError(f"init-config: {path} exists; pass --overwrite to replace it, or --name for another name")
    if not (configs_dir / BASE_CONFIG).is_file():
        raise ConfigError(
            f"init-config: {configs_dir / BASE_CONFIG} not found: the config it writes extends it "
            "(run from the project folder)"
        )
    try:
        data = DataConfig.whole_table(source, target, query=query or None, table=table or None)
    except ValidationError as exc:
        raise ConfigError(
            f"init-config: {exc.errors()[0]['msg']} (--source {mask_url(source)!r}, --target {target!r})"
        ) from exc
    scaffold = decide(load_source(data), target, name, source, query=query, table=table)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(render(scaffold, path))
        _check_written(temporary, scaffold)
        if suspects := _leakage_suspects(temporary):
            scaffold = replace(scaffold, suspects=suspects[1], leakage_metric=suspects[0])
            temporary.write_text(render(scaffold, path))
            _check_written(temporary, scaffold)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    decided = asdict(scaffold)
    decided.update(
        source=mask_url(source),
        model_name=scaffold.model_name,
        experiment=scaffold.experiment,
        gates=scaffold.gates,
        positive_share=scaffold.positive_share,
        rare_positive=scaffold.rare_positive,
        decision_threshold=scaffold.decision_threshold,
        path=str(path),
        label_counts=[list(pair) for pair in scaffold.label_counts],
        next_command=next_command(path),
    )
    return decided


def summary(decided: dict[str, Any]) -> str:
    """A few lines for the console: what was decided, where it was written, what to run next."""
    lines = [
        f"init-config wrote {decided['path']} (validated with load_config):",
        f"  source     {decided['source']} ({decided['n_rows']} rows)",
        f"  target     {decided['target']}: {decided['task']} ({decided['task_reason']})",
    ]
    if decided["task"] == "binary":
        negative = next(label for label, _ in decided["label_counts"] if label != decided["positive_class"])
        lines.append(
            f"  positive   {decided['positive_class']!r} ({decided['positive_reason']}); negative {negative!r}"
        )
    ids = ", ".join(
        f"{name} (row number)" if name in decided["row_number_columns"] else name for name in decided["id_columns"]
    )
    lines.append(f"  ids        {ids or 'none found'}")
    lines.append(f"  dates      {', '.join(decided['datetime_columns']) or 'none found'}")
    dates = list(decided["datetime_columns"])
    if not dates:
        split = "random"
    elif len(dates) > 1:
        split = "random (several date columns: choose split.time_column for a time split)"
    elif decided["date_gaps"].get(dates[0]):
        split = f"random ({dates[0]} is empty in {decided['date_gaps'][dates[0]]} rows: see the comment in the file)"
    else:
        split = f"time on {dates[0]} (the test split is the latest rows)"
    lines.append(f"  split      {split}")
    if decided["suspects"]:
        named = ", ".join(
            f"{column} ({decided['leakage_metric']} {score:.3f})" for column, score in decided["suspects"]
        )
        lines.append(f"  leakage    suspected: {named} (see the comment in the file)")
    lines.append(f"  model      {decided['model_name']} (experiment {decided['experiment']})")
    gates = ", ".join(f"{metric} >= {threshold}" for metric, threshold in decided["gates"].items())
    lines.append(f"  gates      evaluate.{decided['task']}: {gates} (raise these once you know what your data allows)")
    if decided["rare_positive"]:
        share = f"{decided['positive_share']:.1%}"
        lines.append(f"             not accuracy_score: the positive class is {share} of the rows (see the file)")
        rule = ", ".join(f"{key}: {value}" for key, value in decided["decision_threshold"].items())
        lines.append(
            f"  decision   threshold {{{rule}}}: {decided['positive_class']!r} is answered when its probability "
            "reaches the threshold this rule picks on out-of-fold predictions of the train split, not 0.5"
        )
    lines += [f"  note       {note}" for note in decided["notes"]]
    lines.append(f"then run it: {decided['next_command']}")
    return "\n".join(lines)
