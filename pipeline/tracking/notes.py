"""Notes people read in the MLflow UI: each step run's Description (tag `mlflow.note.content`), written from what
the run recorded (its params, metrics and tags, read back once it is done), with links to its upstream runs; the
chain run's note is the pipeline card; a registered version's description is its headline.

A step's own lines come from `note(run)` of its module (pipeline.contract names it); this module adds the failure,
the links and the limits. Reads only the run being closed (and its upstream runs' ids); nothing here changes what a
step computes."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

from pipeline.contract import (
    ERROR_TAG,
    LEAKAGE_ACTION_PARAM,
    LEAKAGE_ARTIFACT,
    STEP_TAG,
    STEPS,
    SUSPECT_FEATURES_PARAM,
    UPSTREAM_TAG_PREFIX,
)

NOTE_LIMIT = 5000  # characters: a note is a tag value


def run_link(experiment_id: str, run_id: str, label: str) -> str:
    """A link the MLflow UI follows (its own route to a run)."""
    return f"[{label} `{run_id[:8]}`](#/experiments/{experiment_id}/runs/{run_id})"


def number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() and abs(value) >= 1 else f"{value:.4g}"


def table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    return [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}", *(f"| {' | '.join(row)} |" for row in rows)]


def step_note(run: Run) -> str:
    """The Description of a step run: what it did, then the runs it read."""
    step, tags = run.data.tags.get(STEP_TAG, "?"), run.data.tags
    if ERROR_TAG in tags:
        summary = [f"**Failed**: {tags[ERROR_TAG]}"]
    else:  # the step's own module (imported already: it is the one running) says what its run did
        summary = importlib.import_module(STEPS[step].module).note(run) if step in STEPS else []
    upstream = [
        run_link(run.info.experiment_id, run_id, f"{key.removeprefix(UPSTREAM_TAG_PREFIX)} run")
        for key, run_id in sorted(tags.items())
        if key.startswith(UPSTREAM_TAG_PREFIX)
    ]
    lines = [f"**{step}**", "", *summary]
    if upstream:
        lines += ["", "Read: " + ", ".join(upstream)]
    return "\n".join(lines)[:NOTE_LIMIT]


def write_note(client: MlflowClient, run_id: str, text: str) -> None:
    client.set_tag(run_id, MLFLOW_RUN_NOTE, text[:NOTE_LIMIT])


def version_headline(task: str, metrics: dict[str, float], headline: str, preprocess_run: Run | None = None) -> str:
    """What a registered version is and how good, as train describes it (the runs that made it follow); with the
    features the preprocess run behind it suspected of leakage and kept (data.leakage.action: warn)."""
    line = f"{task} XGBoost model, {headline} {metrics[headline]:.4f} on the held-out test split."
    params = preprocess_run.data.params if preprocess_run else {}
    if (suspects := params.get(SUSPECT_FEATURES_PARAM)) and params.get(LEAKAGE_ACTION_PARAM) != "drop":
        line += (
            f" **Suspected leakage**: {suspects} alone predict(s) the target almost perfectly, so this score may not "
            f"hold on new rows (the preprocess run's `{LEAKAGE_ARTIFACT}`)."
        )
    return line


def add_verdict(client: MlflowClient, name: str, version: str, decision: str, reason: str) -> None:
    """evaluate's verdict appended to the version's description."""
    current = client.get_model_version(name, version).description or ""
    client.update_model_version(name, version, description=f"{current}\n\nevaluate: **{decision}**. {reason}".strip())


def drift_note(metrics: dict[str, float], shown: int = 5) -> list[str]:
    """The drift lines of a predict or monitor run's note: the verdict and a table of the worst columns."""
    if "drift_rows" not in metrics:
        return []
    if "drift_psi_max" not in metrics:
        return [f"Drift: no verdict on {number(metrics['drift_rows'])} rows (fewer than monitor.min_rows)."]
    columns = sorted(
        ((key.removeprefix("drift_psi_"), value) for key, value in metrics.items() if key.startswith("drift_psi_")),
        key=lambda item: -item[1],
    )
    columns = [(name, value) for name, value in columns if name != "max"][:shown]
    alerts, warnings = int(metrics.get("drift_n_alert", 0)), int(metrics.get("drift_n_warn", 0))
    verdict = f"{alerts} column(s) alerted, {warnings} warned" if alerts or warnings else "no column drifted"
    rows = [(name, f"{value:.3f}") for name, value in columns]
    return [
        "",
        f"Drift from the model's reference profile: {verdict} (largest PSI {metrics['drift_psi_max']:.3f}; "
        "`drift/report.json`).",
        "",
        *table(rows, ("column", "PSI")),
    ]
