"""monitor: compare a batch of rows with a registered model's reference profile, without writing predictions.

Reads:  the input file (raw rows as predict takes them; on engine dask also a Parquet folder, a glob or CSV files);
        the model `registry.model_name` at `--alias` (default the champion) or `--version`, whose own code types
        the rows and answers them (the model's output is part of the comparison), and its reference profile
        (`artifacts/profile.json`, pipeline/modeling/profile.py).
Writes: metrics n_rows, drift_rows, drift_psi_max, drift_n_warn, drift_n_alert, drift_psi_<column>; artifacts
        drift/report.json and plots/drift.png; tags pipeline.model.name / pipeline.model.version (the version
        compared with). With monitor.on_drift: fail and a column at psi_alert or more: exit 6 (DriftAlert), the run
        FAILED with the reason, the result's `drifted` naming the columns.
"""

from __future__ import annotations

import mlflow
from loguru import logger
from mlflow.entities import Run

from pipeline.config import PipelineConfig
from pipeline.contract import MODEL_NAME_TAG, MODEL_VERSION_TAG
from pipeline.engines import MonitorWork, engine_for
from pipeline.errors import UpstreamError
from pipeline.modeling import drift
from pipeline.results import StepResult
from pipeline.steps.predict import DEFAULT_CHUNK_ROWS, resolve_version, served_model
from pipeline.tracking.notes import drift_note, number
from pipeline.tracking.runs import RunContext, step_run


def run(
    config: PipelineConfig,
    *,
    input_path: str,
    alias: str | None = None,
    version: str | None = None,
    chunk_rows: int | None = None,
    context: RunContext = RunContext(),
) -> StepResult:
    with step_run("monitor", config, context) as active:
        work: MonitorWork = engine_for(config, "monitor")
        work.check_input(input_path)
        name = config.registry.model_name
        version = resolve_version(config, alias, version, "monitor")
        model_uri = f"models:/{name}/{version}"
        mlflow.set_tags({MODEL_NAME_TAG: name, MODEL_VERSION_TAG: version})
        served = served_model(mlflow.pyfunc.load_model(model_uri), name, version)
        what = f"monitor input {input_path}"
        tally = drift.new_tally(served, what)
        if tally is None:
            raise UpstreamError(f"monitor: {name} version {version} carries no reference profile: retrain it")
        rows = work.count(config, served, model_uri, input_path, chunk_rows or DEFAULT_CHUNK_ROWS, tally)
        mlflow.log_metric("n_rows", rows)
        report = drift.record(tally, config.monitor, what)
        logger.info("compared {} rows with {} version {}: {}", rows, name, version, report["verdict"])
        drift.enforce(report, config.monitor, what)
    metrics = {key: float(value) for key, value in active.client.get_run(active.run_id).data.metrics.items()}
    return active.result(metrics=metrics, model_name=name, model_version=version, verdict=report["verdict"])


def note(run: Run) -> list[str]:
    """The run's Description: how many rows, compared with which version, and their drift."""
    tags, metrics = run.data.tags, run.data.metrics
    return [
        f"Compared {number(metrics.get('n_rows', 0))} rows with the reference profile of "
        f"`{tags.get(MODEL_NAME_TAG, '?')}` version {tags.get(MODEL_VERSION_TAG, '?')}.",
        *drift_note(metrics),
    ]
