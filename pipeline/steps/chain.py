"""main: the four steps in one process, each its own top-level run, pinned to the run made just before it.

Reads:  what each step reads (see their modules); of runs made by other chains, only finished runs with the same
        fingerprint (reused instead of computing the step again, see cache.py).
Writes: one run per computed step tagged `pipeline.chain_id`, plus the chain's own run (tag `pipeline.step` =
        `main`) whose id is the chain id and whose artifact `chain.json` lists every step's result (`reused` says
        which steps were taken from earlier runs).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from loguru import logger
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

from pipeline import engines, interrupts
from pipeline.config import PipelineConfig, loggable_config
from pipeline.contract import (
    CHAIN,
    CHAIN_OPTIONS,
    CHAIN_RECORD_ARTIFACT,
    CHAIN_STEPS,
    CHAIN_TAG,
    ERROR_TAG,
    HEADLINE_METRIC,
    MAIN_STEP,
    RESOLVED_CONFIG_ARTIFACT,
    STEP_TAG,
)
from pipeline.errors import ConfigError, first_line
from pipeline.results import StepResult
from pipeline.steps.calls import call_step
from pipeline.tracking.lineage_view import render_markdown
from pipeline.tracking.notes import write_note
from pipeline.tracking.registry import fill_model_aliases
from pipeline.tracking.reuse import input_digest, reuse_or_compute
from pipeline.tracking.runs import RunContext, resolve_experiment_id, run_name


@dataclass
class ChainResult:
    chain_id: str
    experiment_id: str
    run_id: str = ""
    steps: list[StepResult] = field(default_factory=list)
    status: str = "FINISHED"

    def step(self, name: str) -> StepResult:
        return next(result for result in self.steps if result.step == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": MAIN_STEP,
            "run_id": self.run_id,
            "chain_id": self.chain_id,
            "status": self.status,
            "experiment_id": self.experiment_id,
            "steps": [result.to_dict() for result in self.steps],
        }


def _open_chain_run(
    client: MlflowClient, config: PipelineConfig, launcher_run_id: str | None, chain_id: str | None
) -> tuple[str, str, str]:
    """The chain's own run (the launcher's when given) -> (run id, experiment id, chain id)."""
    if launcher_run_id:
        run = client.get_run(launcher_run_id)
        client.set_tag(launcher_run_id, MLFLOW_RUN_NAME, run_name(MAIN_STEP))  # not MLflow's random name
    else:
        experiment_id = resolve_experiment_id(client, config.experiment)
        name = run_name(MAIN_STEP)
        run = client.create_run(experiment_id, tags={MLFLOW_RUN_NAME: name}, run_name=name)
    run_id = run.info.run_id
    client.set_tag(run_id, STEP_TAG, MAIN_STEP)
    client.set_tag(run_id, CHAIN_TAG, chain_id or run_id)
    return run_id, run.info.experiment_id, chain_id or run_id


def _run_steps(
    config: PipelineConfig, context: RunContext, values: dict[str, Any], result: ChainResult, force: frozenset[str]
) -> None:
    """Each step of the contract's chain in order, pinned to the runs just made (or reused) before it. A step's
    module is imported only when it computes: a reused step costs no import of XGBoost, Optuna or scikit-learn (a
    fully reused `main` starts in about the time of `import mlflow`)."""
    run_ids: dict[str, str] = {}
    for step in CHAIN:
        upstream = {name: run_ids[name] for name in step.records}
        pinned = {"upstream_run_id": run_ids[step.reads]} if step.reads else {}
        step_result = reuse_or_compute(
            step.name,
            config,
            context,
            force,
            upstream,
            input_digest(step.name, config, values),
            partial(call_step, step.name, config, {**values, **pinned}),
        )
        result.steps.append(step_result)
        run_ids[step.name] = step_result.run_id


def _write_card(client: MlflowClient, run_id: str, result: ChainResult) -> None:
    """The chain run's Description in the MLflow UI: the pipeline card (the lineage view of its runs)."""
    runs = {step.step: client.get_run(step.run_id) for step in result.steps}
    write_note(client, run_id, render_markdown(f"chain {result.chain_id}", runs))


def run_chain(
    config: PipelineConfig,
    *,
    launcher_run_id: str | None = None,
    chain_id: str | None = None,
    force: Iterable[str] = (),
    **step_values: Any,
) -> ChainResult:
    """Run the contract's chain (preprocess -> tune -> train -> evaluate); the chain run ends FAILED if any step
    fails. `step_values` are the steps' chain options by keyword (`eval_data=...`: contract.CHAIN_OPTIONS).

    A step whose fingerprint matches a finished run is reused (config `cache`), unless named in `force` ("all"
    for every step); a recomputed step changes its run id, so every step after it is recomputed too.
    `chain_id` (default: the chain run's id) is what an orchestrator passes to tag the runs with its own id."""
    if extra := sorted(set(step_values) - {option.keyword for option in CHAIN_OPTIONS}):
        raise TypeError(f"run_chain() got unexpected option(s) {', '.join(extra)}")
    force = frozenset(CHAIN_STEPS if "all" in force else force)
    if unknown := force - set(CHAIN_STEPS):
        raise ConfigError(
            f"--force: unknown step(s) {', '.join(sorted(unknown))} (use {', '.join(CHAIN_STEPS)} or all)"
        )
    client = MlflowClient()
    run_id, experiment_id, chain_id = _open_chain_run(client, config, launcher_run_id, chain_id)
    logger.info("chain {} (run {}) in experiment {}", chain_id, run_id, experiment_id)
    result = ChainResult(chain_id, experiment_id, run_id=run_id)
    context = RunContext(chain_id=chain_id, experiment_id=experiment_id, parent_run_id=run_id)
    try:
        client.log_dict(run_id, loggable_config(config), RESOLVED_CONFIG_ARTIFACT)
        with engines.session(config):  # dask: one cluster for all the steps (started when first needed)
            _run_steps(config, context, step_values, result, force)
        fill_model_aliases(client, result.steps)
        _write_card(client, run_id, result)
    except BaseException as exc:
        result.status = RunStatus.to_string(RunStatus.KILLED if interrupts.was_interrupted(exc) else RunStatus.FAILED)
        exc.pipeline_run_id = run_id  # type: ignore[attr-defined]  # read by the CLI's result file
        client.set_tag(run_id, ERROR_TAG, first_line(exc))
        raise
    finally:
        try:
            client.log_dict(run_id, result.to_dict(), CHAIN_RECORD_ARTIFACT)
        finally:
            client.set_terminated(run_id, result.status)
    return result


def summary(result: ChainResult) -> str:
    """What a person reads at the end of `main`: each step's run, the model and its headline metric, the verdict."""
    train_result, evaluate_result = result.step("train"), result.step("evaluate")
    lines = [f"chain {result.chain_id} finished in experiment {result.experiment_id}:"]
    lines += [
        f"  {step.step:<10} run {step.run_id}  " + ("(reused)" if step.reused else f"({step.duration_s:.1f} s)")
        for step in result.steps
    ]
    headline = next(name for name in HEADLINE_METRIC.values() if name in train_result.metrics)
    lines.append(
        f"  model      {train_result.model_name} version {train_result.model_version}, "
        f"{headline.replace('_', ' ').replace('roc auc', 'ROC AUC')} {train_result.metrics[headline]:.4f}"
    )
    lines.append(f"  verdict    {evaluate_result.verdict}: {evaluate_result.verdict_reason}")
    lines.append(f"  look at it: {_where_to_look()}")
    return "\n".join(lines)


def _where_to_look() -> str:
    import mlflow

    from pipeline.masking import mask_url

    uri = mlflow.get_tracking_uri()
    if uri.startswith(("http://", "https://")):
        return f"open {mask_url(uri)} in a browser"
    return f"mlflow ui --backend-store-uri {mask_url(uri)}"
