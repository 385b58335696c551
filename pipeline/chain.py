"""main: the four steps in one process, each its own top-level run, pinned to the run made just before it.

Reads:  what each step reads (see their modules); nothing from runs made by other chains.
Writes: one run per step tagged `pipeline.chain_id`, plus the chain's own run (tag `pipeline.step` = `main`) whose
        id is the chain id and whose artifact `chain.json` lists every step's result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

from pipeline import evaluate, interrupts, preprocess, train, tune
from pipeline.config import PipelineConfig, loggable_config
from pipeline.errors import first_line
from pipeline.lineage import CHAIN_TAG, ERROR_TAG, STEP_TAG
from pipeline.results import StepResult
from pipeline.tracking import RunContext, resolve_experiment_id

CHAIN_STEP = "main"


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
        return {"step": CHAIN_STEP, "run_id": self.run_id, "chain_id": self.chain_id, "status": self.status,
                "experiment_id": self.experiment_id, "steps": [result.to_dict() for result in self.steps]}


def _open_chain_run(client: MlflowClient, config: PipelineConfig, launcher_run_id: str | None,
                    chain_id: str | None) -> tuple[str, str, str]:
    """The chain's own run (the launcher's when given) -> (run id, experiment id, chain id)."""
    if launcher_run_id:
        run = client.get_run(launcher_run_id)
    else:
        experiment_id = resolve_experiment_id(client, config.experiment)
        name = f"main-{time.strftime('%Y%m%d-%H%M%S')}"
        run = client.create_run(experiment_id, tags={MLFLOW_RUN_NAME: name}, run_name=name)
    run_id = run.info.run_id
    client.set_tag(run_id, STEP_TAG, CHAIN_STEP)
    client.set_tag(run_id, CHAIN_TAG, chain_id or run_id)
    return run_id, run.info.experiment_id, chain_id or run_id


def _run_steps(config: PipelineConfig, context: RunContext, eval_data: str | None, result: ChainResult) -> None:
    result.steps.append(preprocess.run(config, context=context))
    result.steps.append(tune.run(config, upstream_run_id=result.steps[-1].run_id, context=context))
    result.steps.append(train.run(config, upstream_run_id=result.steps[-1].run_id, context=context))
    result.steps.append(evaluate.run(config, upstream_run_id=result.steps[-1].run_id, eval_data=eval_data,
                                     context=context))


def run_chain(config: PipelineConfig, *, eval_data: str | None = None, launcher_run_id: str | None = None,
              chain_id: str | None = None) -> ChainResult:
    """Run preprocess -> tune -> train -> evaluate; the chain run ends FAILED if any step fails.

    `chain_id` (default: the chain run's id) is what an orchestrator passes to tag the runs with its own id."""
    client = MlflowClient()
    run_id, experiment_id, chain_id = _open_chain_run(client, config, launcher_run_id, chain_id)
    logger.info("chain {} (run {}) in experiment {}", chain_id, run_id, experiment_id)
    result = ChainResult(chain_id, experiment_id, run_id=run_id)
    context = RunContext(chain_id=chain_id, experiment_id=experiment_id)
    try:
        client.log_dict(run_id, loggable_config(config), "config/resolved.yaml")
        _run_steps(config, context, eval_data, result)
    except BaseException as exc:
        result.status = RunStatus.to_string(RunStatus.KILLED if interrupts.was_interrupted(exc) else RunStatus.FAILED)
        exc.pipeline_run_id = run_id  # type: ignore[attr-defined] - read by the CLI's result file
        client.set_tag(run_id, ERROR_TAG, first_line(exc))
        raise
    finally:
        try:
            client.log_dict(run_id, result.to_dict(), "chain.json")
        finally:
            client.set_terminated(run_id, result.status)
    return result
