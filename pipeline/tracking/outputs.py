"""A step result's `outputs`, read back from the step's finished run as its contract entry declares them
(`pipeline.contract.Output`): the result a step returns and the one `main` reuses from an earlier run both come
from here, so an orchestrator reads the same keys and values either way. Reads the run (and, for a run that
registered a model, that version's source); writes nothing."""

from __future__ import annotations

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from pipeline.contract import MODEL_NAME_TAG, MODEL_VERSION_TAG, STEP_TAG, STEPS, Output


def _value(client: MlflowClient, run: Run, output: Output) -> str | None:
    tags, params = run.data.tags, run.data.params
    if output.location_tag and output.location_tag in tags:
        return tags[output.location_tag]
    if output.artifact:
        return f"{run.info.artifact_uri.rstrip('/')}/{output.artifact}"
    if output.run_artifact:
        return f"runs:/{run.info.run_id}/{output.run_artifact}"
    if output.param:
        return params.get(output.param)
    if output.registered_model:
        name, version = tags.get(MODEL_NAME_TAG), tags.get(MODEL_VERSION_TAG)
        return (client.get_model_version(name, version).source or None) if name and version else None
    raise ValueError(f"output {output.name} names no source")


def step_outputs(client: MlflowClient, run: Run) -> dict[str, str]:
    """The outputs of a step's run, by name (those the run did not record are left out)."""
    step = STEPS.get(run.data.tags.get(STEP_TAG, ""))
    if step is None:
        return {}
    values = {output.name: _value(client, run, output) for output in step.outputs}
    return {name: value for name, value in values.items() if value is not None}
