"""evaluate: `mlflow.models.evaluate` the challenger, gate it, and promote it to champion when it passes.

Reads:  the train run (pinned, else the newest finished one), its registered model version, and
        `data/test.parquet` of the preprocess run that train run used, or the file given as `eval_data`.
Writes: the default evaluator's metrics and artifacts on this run; the champion's metrics as `champion_<metric>`
        (from a nested run `champion-baseline`); tags pipeline.verdict and pipeline.verdict_reason (also on the
        model version); alias `registry.champion_alias` moved to the challenger on a pass.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import mlflow
import pandas as pd
from loguru import logger
from mlflow.exceptions import MlflowException

from pipeline.config import PipelineConfig
from pipeline.data import derive_features, read_table, require_columns
from pipeline.errors import GateRejected, UpstreamError
from pipeline.lineage import MODEL_NAME_TAG, MODEL_VERSION_TAG, VERDICT_REASON_TAG, VERDICT_TAG, download_artifact
from pipeline.preprocess import TEST_ARTIFACT
from pipeline.promotion import Verdict, decide
from pipeline.results import StepResult
from pipeline.tracking import RunContext, step_run


def _evaluate(model_uri: str, data: pd.DataFrame, target: str):
    return mlflow.models.evaluate(model_uri, data, targets=target, model_type="classifier",
                                  evaluators="default", evaluator_config={"log_model_explainability": False})


def _load_eval_data(config: PipelineConfig, eval_data: str | None, preprocess_run, model_uri: str) -> pd.DataFrame:
    if eval_data:
        frame = read_table(eval_data)
        if config.features.derived:
            frame = derive_features(frame)
        what = f"evaluation data {eval_data}"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            frame = pd.read_parquet(download_artifact(preprocess_run, TEST_ARTIFACT, Path(tmp)))
        what = f"test split of preprocess run {preprocess_run.info.run_id}"
    inputs = mlflow.models.get_model_info(model_uri).signature.inputs.input_names()
    require_columns(frame, [*inputs, config.data.target], what)
    return frame[[*inputs, config.data.target]]


def _champion_version(name: str, alias: str) -> str | None:
    try:
        return str(mlflow.MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def _evaluate_champion(name: str, version: str, data: pd.DataFrame, target: str):
    with mlflow.start_run(run_name="champion-baseline", nested=True):
        mlflow.set_tag(MODEL_VERSION_TAG, version)
        result = _evaluate(f"models:/{name}/{version}", data, target)
    mlflow.log_metrics({f"champion_{key}": value for key, value in result.metrics.items()
                        if isinstance(value, (int, float))})
    return result


def _record(verdict: Verdict, config: PipelineConfig, version: str) -> None:
    client = mlflow.MlflowClient()
    name = config.registry.model_name
    mlflow.set_tags({VERDICT_TAG: verdict.decision, VERDICT_REASON_TAG: verdict.reason[:5000]})
    client.set_model_version_tag(name, version, VERDICT_TAG, verdict.decision)
    if verdict.promoted:
        client.set_registered_model_alias(name, config.registry.champion_alias, version)


def run(config: PipelineConfig, *, upstream_run_id: str | None = None, eval_data: str | None = None,
        context: RunContext = RunContext()) -> StepResult:
    started = time.monotonic()
    with step_run("evaluate", config, context) as active:
        train_run = active.use_upstream(upstream_run_id)
        preprocess_run = active.follow(train_run, "preprocess")
        name, version = train_run.data.tags.get(MODEL_NAME_TAG), train_run.data.tags.get(MODEL_VERSION_TAG)
        if not name or not version:
            raise UpstreamError(f"evaluate: train run {train_run.info.run_id} registered no model version")
        model_uri = f"models:/{name}/{version}"
        data = _load_eval_data(config, eval_data, preprocess_run, model_uri)
        active.data_digest = str(pd.util.hash_pandas_object(data, index=False).sum())
        mlflow.log_input(mlflow.data.from_pandas(data, targets=config.data.target, name="evaluation"),
                         context="evaluation")
        logger.info("evaluating {} on {} rows", model_uri, len(data))
        candidate = _evaluate(model_uri, data, config.data.target)
        champion = _champion_version(name, config.registry.champion_alias)
        baseline = None
        if champion and champion != version:
            logger.info("comparing with champion version {}", champion)
            baseline = _evaluate_champion(name, champion, data, config.data.target)
        verdict = decide(config.evaluate, candidate, baseline)
        _record(verdict, config, version)
        logger.info("verdict for {} version {}: {} ({})", name, version, verdict.decision, verdict.reason)
        if not verdict.promoted and config.evaluate.fail_on_reject:
            raise GateRejected(f"evaluate: {name} version {version} rejected: {verdict.reason}")
    metrics = {k: float(v) for k, v in candidate.metrics.items() if isinstance(v, (int, float))}
    return StepResult("evaluate", active.run_id, active.experiment_id, upstream=dict(active.upstream),
                      metrics=metrics, model_name=name, model_version=version, verdict=verdict.decision,
                      verdict_reason=verdict.reason, duration_s=time.monotonic() - started)
