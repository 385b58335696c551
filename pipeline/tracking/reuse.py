"""How `main` reuses steps: a step whose fingerprint matches a finished run (see cache.py) is read back from that
run instead of computed; a step another chain is computing is waited for. Reads runs' tags, params, metrics and
the registered version of a train run; writes nothing (the computed step writes its own run)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from loguru import logger
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from pipeline.config import PipelineConfig
from pipeline.contract import (
    MODEL_NAME_TAG,
    MODEL_VERSION_TAG,
    STEP_TAG,
    STEPS,
    UPSTREAM_TAG_PREFIX,
    VERDICT_REASON_TAG,
    VERDICT_TAG,
)
from pipeline.data.digests import file_digest
from pipeline.results import StepResult
from pipeline.tracking.cache import Superseded, find_reusable, source_digest, step_fingerprint
from pipeline.tracking.outputs import step_outputs
from pipeline.tracking.runs import RunContext


def reused_result(client: MlflowClient, run: Run) -> StepResult:
    """A finished run's result, as if the step had just run (read back from its tags, params and metrics)."""
    tags, step = run.data.tags, run.data.tags[STEP_TAG]
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
        outputs=step_outputs(client, run),
        metrics=dict(run.data.metrics),
        model_name=tags.get(MODEL_NAME_TAG),
        model_version=tags.get(MODEL_VERSION_TAG),
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
        looked_ms = int(time.time() * 1000)
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
            return compute(replace(context, fingerprint=fingerprint, claim_since_ms=looked_ms))
        except Superseded as claim:
            logger.info(
                "{}: run {} of another chain claimed the same step first (or has just finished it); waiting for it",
                step,
                claim.winner_run_id,
            )
            force = force - {step}


def input_digest(step: str, config: PipelineConfig, values: Mapping[str, Any]) -> str | None:
    """The digest of a step's own input data, from its contract entry: `data.source` for a step that reads it, the
    content of each input file it was given by option (an `eval-data` file); "" when it has none; None when it
    cannot be known (a URL, a missing file), so it is never reused."""
    declared = STEPS[step]
    parts = [source_digest(config.data)] if declared.source_input else []
    for option in declared.options:
        if option.input_file and (path := values.get(option.keyword)):
            # A missing file is not cached: the step runs and fails with its own one-line error.
            parts.append(file_digest(path) if Path(path).is_file() else None)
    if any(part is None for part in parts):
        return None
    return ";".join(str(part) for part in parts)
