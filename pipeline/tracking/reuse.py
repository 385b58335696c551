"""How `main` reuses steps: a step whose fingerprint matches a finished run (see cache.py) is read back from that
run instead of computed; a step another chain is computing is waited for. Reads runs' tags, params, metrics and
the registered version of a train run; writes nothing (the computed step writes its own run)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from loguru import logger
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from pipeline.config import PipelineConfig
from pipeline.contract import (
    BEST_PARAMS_ARTIFACT,
    MODEL_NAME_TAG,
    MODEL_VERSION_TAG,
    STEP_TAG,
    TEST_ARTIFACT,
    TRAIN_ARTIFACT,
    UPSTREAM_TAG_PREFIX,
    VERDICT_REASON_TAG,
    VERDICT_TAG,
)
from pipeline.results import StepResult
from pipeline.tracking.cache import Superseded, file_digest, find_reusable, source_digest, step_fingerprint
from pipeline.tracking.runs import RunContext


def reused_result(client: MlflowClient, run: Run) -> StepResult:
    """A finished run's result, as if the step had just run (read back from its tags, params and metrics)."""
    tags, step = run.data.tags, run.data.tags[STEP_TAG]
    outputs = {
        "preprocess": {
            "train": f"{run.info.artifact_uri}/{TRAIN_ARTIFACT}",
            "test": f"{run.info.artifact_uri}/{TEST_ARTIFACT}",
        },
        "tune": {"best_params": f"runs:/{run.info.run_id}/{BEST_PARAMS_ARTIFACT}"},
    }.get(step, {})
    name, version = tags.get(MODEL_NAME_TAG), tags.get(MODEL_VERSION_TAG)
    if step == "train" and name and version:
        outputs = {"model_uri": client.get_model_version(name, version).source or ""}
    upstream = {
        key.removeprefix(UPSTREAM_TAG_PREFIX): value
        for key, value in tags.items()
        if key.startswith(UPSTREAM_TAG_PREFIX)
    }
    return StepResult(
        step,
        run.info.run_id,
        run.info.experiment_id,
        upstream=upstream,
        outputs=outputs,
        metrics=dict(run.data.metrics),
        model_name=name,
        model_version=version,
        verdict=tags.get(VERDICT_TAG),
        verdict_reason=tags.get(VERDICT_REASON_TAG),
        reused=True,
    )


def reuse_or_compute(
    step: str,
    config: PipelineConfig,
    context: RunContext,
    force: frozenset[str],
    upstream: dict[str, str],
    data_digest: str | None,
    compute: Callable[[RunContext], StepResult],
) -> StepResult:
    """Reuse a finished run with the step's fingerprint, or wait for another chain computing it, or compute it."""
    if not config.cache.enabled or data_digest is None:
        return compute(context)
    fingerprint = step_fingerprint(step, config, upstream, data_digest)
    client = MlflowClient()
    assert context.experiment_id, "the chain sets its experiment before any step"
    while True:
        if step not in force and (
            found := find_reusable(client, context.experiment_id, step, fingerprint, config.cache.claim_wait_s)
        ):
            logger.info(
                "{}: reusing run {} (same fingerprint {}; --force {} recomputes it)",
                step,
                found.info.run_id,
                fingerprint,
                step,
            )
            return reused_result(client, found)
        try:
            return compute(replace(context, fingerprint=fingerprint))
        except Superseded as claim:
            logger.info(
                "{}: run {} of another chain started the same step first; waiting for it", step, claim.winner_run_id
            )
            force = force - {step}


def input_digest(step: str, config: PipelineConfig, eval_data: str | None) -> str | None:
    """The digest of a step's own input data ("" when it has none; None: unknown, so never reused)."""
    if step == "preprocess":
        return source_digest(config.data)
    if step == "evaluate" and eval_data:
        # A missing eval-data file is not cached: evaluate runs and fails with its own one-line error.
        return file_digest(eval_data) if Path(eval_data).is_file() else None
    return ""
