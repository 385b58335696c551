"""Notes people read in the MLflow UI: each step run's Description (tag `mlflow.note.content`), written from what
the run recorded (its params, metrics and tags, read back once it is done), with links to its upstream runs; the
chain run's note is the pipeline card; a registered version's description is its headline.

Reads only the run being closed (and its upstream runs' ids); nothing here changes what a step computes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

from pipeline.contract import (
    ERROR_TAG,
    MODEL_NAME_TAG,
    MODEL_VERSION_TAG,
    UPSTREAM_TAG_PREFIX,
    VERDICT_REASON_TAG,
    VERDICT_TAG,
)

# Metric names as the notes show them: train's test metrics, tune's study counts.
_TUNE_COUNTS = ("n_finished", "n_complete", "n_pruned", "n_failed", "n_trials_this_run")
_NOT_SEARCHED = ("optuna.", "engine", "dask.", "tune.", "predict.")
_COUNTS = ("example_count", "true_", "false_", "sum_on_", "mean_on_")  # row counts, not scores
NOTE_LIMIT = 5000  # characters: a note is a tag value


def run_link(experiment_id: str, run_id: str, label: str) -> str:
    """A link the MLflow UI follows (its own route to a run)."""
    return f"[{label} `{run_id[:8]}`](#/experiments/{experiment_id}/runs/{run_id})"


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() and abs(value) >= 1 else f"{value:.4g}"


def _table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    return [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}", *(f"| {' | '.join(row)} |" for row in rows)]


def _preprocess(run: Run) -> list[str]:
    params, metrics = run.data.params, run.data.metrics
    lines = [
        f"{params.get('data.task', '?')} task on {_number(metrics.get('n_rows', 0))} rows of "
        f"`{params.get('data.source', '?')}`: {_number(metrics.get('n_train', 0))} train / "
        f"{_number(metrics.get('n_test', 0))} test, {_number(metrics.get('n_features', 0))} features "
        f"({_number(metrics.get('n_categorical', 0))} categorical)."
    ]
    if params.get("data.classes"):
        lines.append(f"Labels in class order: {params['data.classes']}; positive: {params.get('data.positive_class')}.")
    return lines


def _tune(run: Run) -> list[str]:
    metrics, params = run.data.metrics, run.data.params
    best = next((f"{key} = {value:.5g}" for key, value in metrics.items() if key.startswith("best_valid_")), "none")
    counts = ", ".join(f"{key.removeprefix('n_')} {_number(metrics[key])}" for key in _TUNE_COUNTS if key in metrics)
    searched = sorted((k, v) for k, v in params.items() if not k.startswith(_NOT_SEARCHED))
    return [
        f"Study `{params.get('optuna.study_name', '?')}` ({params.get('optuna.storage', '?')}): {counts}.",
        f"Best {best}, with:",
        "",
        *_table([(k, f"`{v}`") for k, v in searched], ("param", "value")),
    ]


def _train(run: Run) -> list[str]:
    tags, metrics = run.data.tags, run.data.metrics
    scores = ", ".join(f"{key} {value:.4f}" for key, value in sorted(metrics.items()) if key.startswith("test_"))
    return [
        f"Test metrics: {scores or 'none'}.",
        f"Registered `{tags.get(MODEL_NAME_TAG, '?')}` version {tags.get(MODEL_VERSION_TAG, '?')} as the challenger.",
    ]


def _evaluate(run: Run) -> list[str]:
    tags, metrics = run.data.tags, run.data.metrics
    lines = [
        f"**{tags.get(VERDICT_TAG, '?')}**: `{tags.get(MODEL_NAME_TAG, '?')}` version "
        f"{tags.get(MODEL_VERSION_TAG, '?')}. {tags.get(VERDICT_REASON_TAG, '')}"
    ]
    compared = sorted(
        name
        for name in (key.removeprefix("champion_") for key in metrics if key.startswith("champion_"))
        if not name.startswith(_COUNTS)
    )
    rows = [(key, f"{metrics[key]:.4f}", f"{metrics['champion_' + key]:.4f}") for key in compared if key in metrics]
    if rows:
        lines += [
            "",
            "Against the champion, on the same rows:",
            "",
            *_table(rows, ("metric", "challenger", "champion")),
        ]
    return lines


def _predict(run: Run) -> list[str]:
    tags, metrics = run.data.tags, run.data.metrics
    return [
        f"Scored {_number(metrics.get('n_rows', 0))} rows with `{tags.get(MODEL_NAME_TAG, '?')}` version "
        f"{tags.get(MODEL_VERSION_TAG, '?')}."
    ]


SUMMARIES: dict[str, Callable[[Run], list[str]]] = {
    "preprocess": _preprocess,
    "tune": _tune,
    "train": _train,
    "evaluate": _evaluate,
    "predict": _predict,
}


def step_note(run: Run) -> str:
    """The Description of a step run: what it did, then the runs it read."""
    step, tags = run.data.tags.get("pipeline.step", "?"), run.data.tags
    summary = SUMMARIES.get(step, lambda _: [])(run)
    if ERROR_TAG in tags:
        summary = [f"**Failed**: {tags[ERROR_TAG]}"]
    upstream = [
        run_link(run.info.experiment_id, run_id, f"{key.removeprefix(UPSTREAM_TAG_PREFIX)} run")
        for key, run_id in sorted(tags.items())
        if key.startswith(UPSTREAM_TAG_PREFIX)
    ]
    lines = [f"**{step}**", "", *summary]
    if upstream:
        lines += ["", "Read: " + ", ".join(upstream)]
    return "\n".join(lines)[:NOTE_LIMIT]


def write_step_note(client: MlflowClient, run_id: str) -> None:
    client.set_tag(run_id, MLFLOW_RUN_NOTE, step_note(client.get_run(run_id)))


def write_note(client: MlflowClient, run_id: str, text: str) -> None:
    client.set_tag(run_id, MLFLOW_RUN_NOTE, text[:NOTE_LIMIT])


def version_headline(task: str, metrics: dict[str, float], headline: str) -> str:
    """What a registered version is and how good, as train describes it (the runs that made it follow)."""
    return f"{task} XGBoost model, {headline} {metrics[headline]:.4f} on the held-out test split."


def add_verdict(client: MlflowClient, name: str, version: str, decision: str, reason: str) -> None:
    """evaluate's verdict appended to the version's description."""
    current = client.get_model_version(name, version).description or ""
    client.update_model_version(name, version, description=f"{current}\n\nevaluate: **{decision}**. {reason}".strip())
