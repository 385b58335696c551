"""predict: score a CSV or Parquet file with a registered model version, in chunks.

Reads:  the input file (raw rows as the source table has them, without the target); the model
        `registry.model_name` at `--alias` (default the champion) or `--version`, whose own code derives the
        features (columns missing or mistyped are named; unseen categories are scored as missing).
Writes: the output file (.csv or .parquet): the input columns plus the model's answer as the served model gives
        it (`prediction` in the target's labels and `probability_<label>` per class, or `prediction` for
        regression), written to a temporary file and renamed only when complete (no partial file on failure); the
        same file as artifact `predictions/<name>`; tags pipeline.model.name / pipeline.model.version; metric
        n_rows; the batch's drift from the model's reference profile (pipeline/modeling/drift.py): metrics
        drift_rows, drift_psi_max, drift_n_warn, drift_n_alert, drift_psi_<column>, artifacts drift/report.json
        and plots/drift.png, and with monitor.on_drift: fail and an alert, exit 6 once the output is written.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
from loguru import logger
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PyFuncModel

from pipeline.config import PipelineConfig
from pipeline.contract import MODEL_NAME_TAG, MODEL_VERSION_TAG
from pipeline.engines import PredictWork, engine_for
from pipeline.errors import UpstreamError
from pipeline.modeling import drift
from pipeline.results import StepResult
from pipeline.tracking.notes import drift_note, number
from pipeline.tracking.registry import alias_version
from pipeline.tracking.runs import RunContext, log_params, step_run

DEFAULT_CHUNK_ROWS = 100_000


def served_model(model: PyFuncModel, name: str, version: str):
    """The registered model's Python object (served_model.ServedXGBoostModel), which carries its schema."""
    try:
        served = model.unwrap_python_model()
    except MlflowException as exc:
        raise UpstreamError(f"predict: {name} version {version} is not a model of this pipeline") from exc
    if not hasattr(served, "score"):
        raise UpstreamError(
            f"predict: {name} version {version} was logged by an older version of this pipeline "
            "(it takes model inputs, not raw rows): retrain it"
        )
    return served


def resolve_version(config: PipelineConfig, alias: str | None, version: str | None, step: str = "predict") -> str:
    """The version asked for, else the one at `alias` (default the champion alias)."""
    name = config.registry.model_name
    if version:
        return version
    alias = alias or config.registry.champion_alias
    found = alias_version(mlflow.MlflowClient(), name, alias)
    if not found:
        raise UpstreamError(
            f"{step}: model '{name}' has no version with alias @{alias} (run evaluate, or pass --version)"
        )
    return found


def run(
    config: PipelineConfig,
    *,
    input_path: str,
    output_path: str,
    alias: str | None = None,
    version: str | None = None,
    chunk_rows: int | None = None,
    context: RunContext = RunContext(),
) -> StepResult:
    source, target = Path(input_path), Path(output_path)
    with step_run("predict", config, context) as active:
        work: PredictWork = engine_for(config, "predict")
        work.check_paths(input_path, target)
        name = config.registry.model_name
        version = resolve_version(config, alias, version)
        model_uri = f"models:/{name}/{version}"
        mlflow.set_tags({MODEL_NAME_TAG: name, MODEL_VERSION_TAG: version})
        log_params({"predict.output": str(target.resolve())})  # where the predictions went: the result's output
        served = served_model(mlflow.pyfunc.load_model(model_uri), name, version)
        what = f"predict input {input_path}"
        tally = drift.new_tally(served, what)
        rows = work.score(config, served, model_uri, input_path, target, chunk_rows or DEFAULT_CHUNK_ROWS, tally)
        mlflow.log_metric("n_rows", rows)
        logger.info("scored {} rows of {} with {} version {} -> {}", rows, source, name, version, target)
        if tally is not None:  # the output is written: an alert fails the run after it, never instead of it
            drift.enforce(drift.record(tally, config.monitor, what), config.monitor, what)
    return active.result(metrics={"n_rows": float(rows)}, model_name=name, model_version=version)


def note(run: Run) -> list[str]:
    """The run's Description: how many rows, scored by which version, and their drift."""
    tags, metrics = run.data.tags, run.data.metrics
    return [
        f"Scored {number(metrics.get('n_rows', 0))} rows with `{tags.get(MODEL_NAME_TAG, '?')}` version "
        f"{tags.get(MODEL_VERSION_TAG, '?')}.",
        *drift_note(metrics),
    ]
