"""The upstream lookup (newest finished run of a step, or a pinned one) and reading a run's artifacts."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from mlflow.entities import Run, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline.contract import CHAIN, STEP_TAG, upstream_tag
from pipeline.errors import ConfigError, UpstreamError

UPSTREAM_OF = {step.name: step.reads for step in CHAIN if step.reads}


def quoted(value: str) -> str:
    """`value` as a string in an MLflow search filter. MLflow's filter grammar has no escape: a value holding a
    single quote goes in double quotes, and one holding both kinds cannot be written at all (a ConfigError)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ConfigError(f"{value!r} holds both ' and \": MLflow's search filters cannot match it; rename it")


def latest_finished_run(client: MlflowClient, experiment_id: str, step: str) -> Run | None:
    """The newest FINISHED top-level run of `step`: one indexed query, never a scan of the experiment."""
    runs = client.search_runs(
        [experiment_id],
        f"tags.`{STEP_TAG}` = '{step}' and attributes.status = 'FINISHED'",
        order_by=["attributes.end_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def get_step_run(client: MlflowClient, run_id: str, step: str, why: str) -> Run:
    """Fetch a run that must be a FINISHED run of `step`; `why` says where the id came from."""
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise UpstreamError(f"{why}: run '{run_id}' does not exist in this tracking store") from exc
    if run.info.lifecycle_stage != "active":
        raise UpstreamError(f"{why}: run {run_id} is deleted")
    actual = run.data.tags.get(STEP_TAG)
    if actual != step:
        raise UpstreamError(f"{why}: run {run_id} is a '{actual or 'non-pipeline'}' run, not a '{step}' run")
    if run.info.status != RunStatus.to_string(RunStatus.FINISHED):
        raise UpstreamError(f"{why}: {step} run {run_id} is {run.info.status}, not FINISHED")
    return run


def resolve_upstream(client: MlflowClient, experiment_id: str, consumer: str, pinned_run_id: str | None = None) -> Run:
    """The run `consumer` reads from: the pinned one if given, else the newest finished upstream run."""
    step = UPSTREAM_OF[consumer]
    if pinned_run_id:
        return get_step_run(client, pinned_run_id, step, f"{consumer}: pinned upstream run")
    run = latest_finished_run(client, experiment_id, step)
    if run is None:
        name = client.get_experiment(experiment_id).name
        raise UpstreamError(
            f"{consumer}: no finished '{step}' run in experiment '{name}' (id {experiment_id}); "
            f"create one with `mlflow run . -e {step} --env-manager local`"
        )
    return run


def follow_lineage(client: MlflowClient, run: Run, step: str) -> Run:
    """The `step` run that `run` itself consumed (its `pipeline.upstream.<step>` tag)."""
    run_id = run.data.tags.get(upstream_tag(step))
    if not run_id:
        raise UpstreamError(
            f"run {run.info.run_id} has no '{upstream_tag(step)}' tag: it was not made by this pipeline"
        )
    return get_step_run(client, run_id, step, f"lineage of run {run.info.run_id}")


def download_artifact(run: Run, artifact_path: str, dst_dir: Path) -> Path:
    """Download one artifact of an upstream run; a missing one is an UpstreamError naming run and path. The run's
    own artifact URI is used: a `runs:/` URI would look the run up again (two requests per artifact to a server)."""
    import mlflow.artifacts

    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}", dst_path=str(dst_dir)
        )
    except (MlflowException, OSError) as exc:
        step = run.data.tags.get(STEP_TAG, "?")
        raise UpstreamError(f"{step} run {run.info.run_id} has no artifact '{artifact_path}'") from exc
    return Path(local)


def read_parquet_artifact(run: Run, artifact_path: str):
    """A Parquet artifact of an upstream run, read into a DataFrame (the download is removed afterwards)."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        return pd.read_parquet(download_artifact(run, artifact_path, Path(tmp)))


def read_json_artifact(run: Run, artifact_path: str) -> Any:
    """A JSON artifact of an upstream run."""
    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(download_artifact(run, artifact_path, Path(tmp)).read_text())
