"""The chain behind a run or a model version, for people: preprocess -> tune -> train -> evaluate with run ids, key
params and metrics. `python -m pipeline lineage` prints it; evaluate logs it as `lineage.md` on its run.
"""

from __future__ import annotations

from typing import Any

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline.contract import (
    CHAIN_STEPS,
    STEP_TAG,
    STEPS,
    UPSTREAM_TAG_PREFIX,
    VERDICT_REASON_TAG,
    VERDICT_TAG,
    version_run_tag,
)
from pipeline.errors import UpstreamError


def _get(client: MlflowClient, run_id: str) -> Run:
    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        raise UpstreamError(f"lineage: run '{run_id}' does not exist in this tracking store") from exc


def chain_of_run(client: MlflowClient, run: Run) -> dict[str, Run]:
    """`run` and every run it consumed, directly or not, by step."""
    chain, todo = {}, [run]
    while todo:
        current = todo.pop()
        step = current.data.tags.get(STEP_TAG)
        if not step or step in chain:
            continue
        chain[step] = current
        todo += [_get(client, value) for key, value in current.data.tags.items() if key.startswith(UPSTREAM_TAG_PREFIX)]
    if not chain:
        raise UpstreamError(f"lineage: run {run.info.run_id} was not made by this pipeline (no {STEP_TAG} tag)")
    return chain


def chain_of_version(client: MlflowClient, name: str, version: str) -> dict[str, Run]:
    """The runs that made a registered version (its `pipeline.<step>_run` tags)."""
    try:
        tags = client.get_model_version(name, version).tags
    except MlflowException as exc:
        raise UpstreamError(f"lineage: model '{name}' has no version {version}") from exc
    return {step: _get(client, tags[version_run_tag(step)]) for step in CHAIN_STEPS if version_run_tag(step) in tags}


def _facts(step: str, run: Run) -> tuple[str, str]:
    shown = STEPS[step]  # the contract names the params and metrics the view shows of each step's run
    params = [f"{key}={run.data.params[key]}" for key in shown.key_params if key in run.data.params]
    metrics = [f"{key}={run.data.metrics[key]:.4g}" for key in shown.key_metrics if key in run.data.metrics]
    if step == "evaluate" and VERDICT_TAG in run.data.tags:
        params.insert(0, f"verdict={run.data.tags[VERDICT_TAG]}")
    return ", ".join(params), ", ".join(metrics)


def render_text(title: str, chain: dict[str, Run]) -> str:
    lines = [title]
    for step in CHAIN_STEPS:
        if step in chain:
            run = chain[step]
            params, metrics = _facts(step, run)
            lines.append(f"  {step:<10} run {run.info.run_id}  {run.info.status}")
            lines += [f"             {text}" for text in (params, metrics) if text]
    return "\n".join(lines)


def render_markdown(title: str, chain: dict[str, Run], verdict_reason: str | None = None) -> str:
    lines = [f"# {title}", "", "| step | run | params | metrics |", "|---|---|---|---|"]
    for step in CHAIN_STEPS:
        if step in chain:
            run = chain[step]
            params, metrics = _facts(step, run)
            lines.append(f"| {step} | `{run.info.run_id}` ({run.info.status}) | {params} | {metrics} |")
    reason = verdict_reason or (chain["evaluate"].data.tags.get(VERDICT_REASON_TAG) if "evaluate" in chain else None)
    if reason:
        lines += ["", f"Verdict: {reason}"]
    return "\n".join(lines) + "\n"


def describe(client: MlflowClient, run_id: str | None, name: str, version: str | None) -> dict[str, Any]:
    """The lineage of a run, or of a model version: a title, the text view and the run ids by step."""
    if run_id:
        chain = chain_of_run(client, _get(client, run_id))
        title = f"lineage of run {run_id}"
    else:
        assert version, "describe needs a run id or a version"
        chain = chain_of_version(client, name, version)
        title = f"lineage of {name} version {version}"
    return {
        "title": title,
        "runs": {step: run.info.run_id for step, run in chain.items()},
        "text": render_text(title, chain),
        "markdown": render_markdown(title, chain),
    }
