"""Opening and closing a step's MLflow run: experiment choice, tags, resolved config, log file, final status.

Every step writes `config/resolved.yaml` and `logs/<step>.log` into its run. A run is ended FINISHED only after
all its artifacts are logged; any exception ends it FAILED (KILLED on Ctrl-C) with the message in `pipeline.error`.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
from loguru import logger
from mlflow.entities import Run, RunStatus
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from pipeline import interrupts
from pipeline.config import PipelineConfig, loggable_config
from pipeline.contract import (
    CHAIN_TAG,
    ERROR_TAG,
    FINGERPRINT_TAG,
    LOGS_DIR,
    RESOLVED_CONFIG_ARTIFACT,
    STEP_TAG,
    upstream_tag,
)
from pipeline.errors import TrackingError, first_line
from pipeline.masking import mask_url
from pipeline.results import StepResult
from pipeline.tracking.lookup import follow_lineage, resolve_upstream
from pipeline.tracking.notes import step_note, write_note
from pipeline.tracking.outputs import step_outputs
from pipeline.tracking.source import source_tags


def check_tracking_store() -> None:
    """Fail fast, with the URI in the message, when the tracking store cannot be reached (a database store is
    probed first: MLflow itself would retry it for about 100 s)."""
    from mlflow.exceptions import MlflowException

    from pipeline.data.source_text import is_sql_url
    from pipeline.tracking.database import probe_tracking_database

    uri = mlflow.get_tracking_uri()
    if is_sql_url(uri):
        probe_tracking_database(uri)
    try:
        MlflowClient().search_experiments(max_results=1)
    except (MlflowException, OSError) as exc:
        message = first_line(exc, 300)
        if "error code 401" in message or "error code 403" in message:
            code = "401" if "error code 401" in message else "403"
            raise TrackingError(
                f"the tracking server {mask_url(uri)} refused the credentials (HTTP {code}): set "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to a user it knows"
            ) from exc
        raise TrackingError(f"cannot reach the tracking store {mask_url(uri)}: {message}") from exc


def take_launcher_run_id() -> str | None:
    """The run `mlflow run` created for this process, if any (removed from the environment once taken)."""
    return os.environ.pop("MLFLOW_RUN_ID", None) or None


def resolve_experiment_id(client: MlflowClient, configured_name: str) -> str:
    """MLflow's own choice first (MLFLOW_EXPERIMENT_ID / _NAME), else the configured experiment, created if new."""
    if experiment_id := os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return experiment_id
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or configured_name
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else client.create_experiment(name)


@dataclass(frozen=True)
class RunContext:
    """Where a step's run comes from: the launcher's run to resume, the chain it belongs to, its experiment."""

    launcher_run_id: str | None = None
    chain_id: str | None = None
    experiment_id: str | None = None
    fingerprint: str | None = None  # known before the step runs (main): tagged at once, as a claim on the work
    claim_since_ms: int = 0  # with a fingerprint: when main last looked for a finished run to reuse
    parent_run_id: str | None = None  # main's run: the step's run is nested under it (one row per chain in the UI)


@dataclass
class StepRun:
    """The open run of a step, with what the step records about its lineage."""

    step: str
    run_id: str
    experiment_id: str
    client: MlflowClient
    config: PipelineConfig
    upstream: dict[str, str] = field(default_factory=dict)
    data_digest: str = ""
    undo_actions: list[Callable[[], None]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    finished: Run | None = None  # the run as it stood when the step's work was done (read back to close it)

    def on_failure(self, undo: Callable[[], None]) -> None:
        """Register an action that takes back an outside change (registry, alias) if the step fails after it."""
        self.undo_actions.append(undo)

    def set_upstream(self, step: str, run_id: str) -> None:
        self.upstream[step] = run_id
        mlflow.set_tag(upstream_tag(step), run_id)

    def use_upstream(self, pinned_run_id: str | None) -> Run:
        """Resolve this step's direct upstream run (pinned or newest finished) and record it in the tags."""
        run = resolve_upstream(self.client, self.experiment_id, self.step, pinned_run_id)
        self.set_upstream(run.data.tags[STEP_TAG], run.info.run_id)
        return run

    def follow(self, run: Run, step: str) -> Run:
        """The `step` run that `run` consumed, recorded as this run's upstream too."""
        earlier = follow_lineage(self.client, run, step)
        self.set_upstream(step, earlier.info.run_id)
        return earlier

    def fingerprint(self) -> str:
        from pipeline.tracking.cache import step_fingerprint

        return step_fingerprint(self.step, self.config, self.upstream, self.data_digest)

    def result(self, **recorded: Any) -> StepResult:
        """The step's result once its run is closed: its upstream runs, its outputs as the contract reads them from
        the run (what a reused run gives too), the time it took, and what the step adds (`metrics`, ...)."""
        assert self.finished is not None, "a step's result is made after its run closed"
        return StepResult(
            self.step,
            self.run_id,
            self.experiment_id,
            upstream=dict(self.upstream),
            outputs=step_outputs(self.client, self.finished),
            duration_s=time.monotonic() - self.started,
            **recorded,
        )


@contextmanager
def _log_file(step: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"pipeline-{step}-") as tmp:
        path = Path(tmp) / f"{step}.log"
        sink = logger.add(path, level="DEBUG", enqueue=False)
        try:
            yield path
        finally:
            logger.remove(sink)


def run_name(step: str) -> str:
    """`<step>-<local time>`: every run the pipeline opens or takes over is named so."""
    return f"{step}-{time.strftime('%Y%m%d-%H%M%S')}"


def _open_run(step: str, config: PipelineConfig, context: RunContext, tags: dict[str, str]) -> StepRun:
    client = MlflowClient()
    if context.launcher_run_id:
        # `mlflow run` already named the project's source on its run (a git URL, say): keep its words for it.
        recorded = client.get_run(context.launcher_run_id).data.tags
        tags = {key: value for key, value in tags.items() if key.startswith("pipeline.") or key not in recorded}
        # Named like the runs the steps open themselves, not with MLflow's random name.
        run = mlflow.start_run(run_id=context.launcher_run_id, tags={**tags, MLFLOW_RUN_NAME: run_name(step)})
    else:
        experiment_id = context.experiment_id or resolve_experiment_id(client, config.experiment)
        name = run_name(step)
        nested = {MLFLOW_PARENT_RUN_ID: context.parent_run_id} if context.parent_run_id else {}
        created = client.create_run(experiment_id, tags={**tags, **nested, MLFLOW_RUN_NAME: name}, run_name=name)
        run = mlflow.start_run(run_id=created.info.run_id)
    return StepRun(step, run.info.run_id, run.info.experiment_id, client, config)


@contextmanager
def step_run(step: str, config: PipelineConfig, context: RunContext) -> Iterator[StepRun]:
    """Open the run of `step` (resuming the launcher's run when given), and close it with the right status.

    FINISHED only after every artifact, the log file last, is logged; on any exception the step's registered undo
    actions run (a registry change of a failed run is taken back), and the run ends FAILED (KILLED if interrupted).
    """
    tags = {
        STEP_TAG: step,
        **source_tags(),  # the commit the code came from (and whether the checkout differed from it)
        **({CHAIN_TAG: context.chain_id} if context.chain_id else {}),
        **({FINGERPRINT_TAG: context.fingerprint} if context.fingerprint else {}),
    }
    with _log_file(step) as log_path:
        active = _open_run(step, config, context, tags)
        if context.fingerprint:
            _step_aside_if_claimed(active, context.fingerprint, context.claim_since_ms)
        logger.info("{} run {} in experiment {}", step, active.run_id, active.experiment_id)
        try:
            mlflow.log_dict(loggable_config(config), RESOLVED_CONFIG_ARTIFACT)
            yield active
            mlflow.set_tag(FINGERPRINT_TAG, context.fingerprint or active.fingerprint())
            active.finished = active.client.get_run(active.run_id)
            write_note(active.client, active.run_id, step_note(active.finished))
            logger.info("{} run {} finished", step, active.run_id)
            mlflow.log_artifact(str(log_path), LOGS_DIR)
        except BaseException as exc:
            _fail(active, exc, log_path)
            raise
        mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))


def _step_aside_if_claimed(active: StepRun, fingerprint: str, since_ms: int) -> None:
    """If another chain claimed the same step first (or finished it since `since_ms`), delete this still empty run
    and raise Superseded."""
    from pipeline.tracking.cache import Superseded, earlier_claim, take_ticket

    claim = (active.client, active.experiment_id, active.step, fingerprint, active.run_id)
    stale_s = active.config.cache.claim_wait_s
    winner = earlier_claim(*claim, take_ticket(*claim, stale_s), stale_s, since_ms)
    if winner:
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        active.client.delete_run(active.run_id)
        raise Superseded(winner)


def _fail(active: StepRun, exc: BaseException, log_path: Path) -> None:
    """Undo, record and end a failed step run, without hiding the original exception."""
    interrupted = interrupts.was_interrupted(exc)
    status = RunStatus.KILLED if interrupted else RunStatus.FAILED
    exc.pipeline_run_id = active.run_id  # type: ignore[attr-defined]  # read by the CLI's result file
    for undo in reversed(active.undo_actions):
        try:
            undo()
        except Exception as undo_error:  # noqa: BLE001 - keep undoing the rest
            logger.warning("could not undo a change of run {}: {}", active.run_id, undo_error)
    try:
        if not interrupted:
            mlflow.set_tag(ERROR_TAG, first_line(exc))
            write_note(active.client, active.run_id, step_note(active.client.get_run(active.run_id)))
        logger.debug("{} ended {}: {}", active.step, RunStatus.to_string(status), exc)  # for the log file
        mlflow.log_artifact(str(log_path), LOGS_DIR)
    except Exception as record_error:  # noqa: BLE001 - the step's own error is the one to report
        logger.warning("could not record the failure on run {}: {}", active.run_id, record_error)
    finally:
        mlflow.end_run(RunStatus.to_string(status))


def log_params(params: dict[str, Any]) -> None:
    """Log params in one batched call (values stringified by MLflow)."""
    mlflow.log_params({key: value for key, value in params.items() if value is not None})
