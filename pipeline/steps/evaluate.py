"""evaluate: `mlflow.models.evaluate` the challenger, gate it, and promote it to champion when it passes.

Reads:  the train run (pinned, else the newest finished one), its registered model version (with the schema inside
        it), and `data/test.parquet` of the preprocess run that train run used, or the file given as `eval_data`
        (checked against the schema: missing or mistyped columns are named).
Writes: the default evaluator's metrics and artifacts for the task (classifier or regressor) on this run, scoring
        the XGBoost model inside the registered pyfunc so that probabilities, ROC AUC and its curves are there
        (metrics linked to the LoggedModel too); the champion's metrics as `champion_<metric>` (from a nested run
        `champion-baseline`); tags pipeline.model.name / pipeline.model.version (the version judged),
        pipeline.verdict and pipeline.verdict_reason (the verdict also on the model version);
        alias `registry.champion_alias` moved to the challenger on a pass, gated by `evaluate.<task>`, and then
        pipeline.promotion on this run (JSON from, to, by, at: the record `history` reads); `lineage.md`,
        the chain behind the version (run ids, key params and metrics, the verdict).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import mlflow
import pandas as pd
from loguru import logger
from mlflow.entities import Run

from pipeline.config import PipelineConfig
from pipeline.contract import (
    LINEAGE_CARD_ARTIFACT,
    MODEL_CARD_ARTIFACT,
    MODEL_CARD_TAG,
    MODEL_NAME_TAG,
    MODEL_VERSION_TAG,
    VERDICT_REASON_TAG,
    VERDICT_TAG,
    version_run_tag,
)
from pipeline.data.schema import Schema
from pipeline.data.sources import read_table, tracked_dataset
from pipeline.engines import EvaluateWork, TestSplit, engine_for
from pipeline.errors import DataError, GateRejected, UpstreamError
from pipeline.modeling import card, plots
from pipeline.modeling.evaluation import default_evaluation, evaluable
from pipeline.modeling.promotion import REJECTED, Verdict, decide, gate_lines
from pipeline.results import StepResult
from pipeline.tracking.lineage_view import chain_of_run, render_markdown
from pipeline.tracking.notes import add_verdict, table
from pipeline.tracking.registry import alias_version, promote
from pipeline.tracking.reuse import input_digest
from pipeline.tracking.runs import RunContext, StepRun, step_run


class _EvalFile:
    """An `eval-data` file: read into this process on every engine and scored as it is (raw rows)."""

    raw = True

    def __init__(self, path: str) -> None:
        self.path, self.what = path, f"evaluation data {path}"

    def rows(self) -> pd.DataFrame:
        return read_table(self.path)  # a missing file: a DataError naming it

    def whole_split(self, result: Any, model: Any, schema: Schema, prefix: str) -> Any:
        return result


@contextmanager
def _rows_to_evaluate(config: PipelineConfig, preprocess_run: Run, eval_data: str | None) -> Iterator[TestSplit]:
    """The `eval-data` file, else the preprocess run's test split as the configured engine sees it."""
    if eval_data:
        yield _EvalFile(eval_data)
        return
    work: EvaluateWork = engine_for(config, "evaluate")
    with work.test_split(config, preprocess_run) as split:
        yield split


def _evaluate_champion(
    client: mlflow.MlflowClient, name: str, version: str, rows: tuple[pd.DataFrame, bool, str], split: TestSplit
):
    """The champion on the same rows, in a nested run; None with a reason when its columns are not there."""
    try:
        with evaluable(name, version, *rows) as (model, schema, data):
            with mlflow.start_run(run_name="champion-baseline", nested=True):
                mlflow.set_tag(MODEL_VERSION_TAG, version)
                result = split.whole_split(
                    default_evaluation(client, name, version, model, schema, data)[0], model, schema, "full_test_"
                )
    except DataError as exc:
        return None, f"champion version {version} cannot be evaluated on the same rows ({exc}); compare by hand"
    mlflow.log_metrics(
        {f"champion_{key}": value for key, value in result.metrics.items() if isinstance(value, (int, float))}
    )
    return result, ""


def _judge(
    active: StepRun,
    config: PipelineConfig,
    task: str,
    version: str,
    rows: tuple[pd.DataFrame, bool, str],
    candidate,
    split: TestSplit,
) -> Verdict:
    name = config.registry.model_name
    champion = alias_version(active.client, name, config.registry.champion_alias)
    if champion == version:
        return decide(config.evaluate, task, candidate, None, note=f" (version {version} already is the champion)")
    if champion is None:
        return decide(config.evaluate, task, candidate, None)
    logger.info("comparing with champion version {}", champion)
    baseline, problem = _evaluate_champion(active.client, name, champion, rows, split)
    return decide(config.evaluate, task, candidate, baseline) if baseline is not None else Verdict(REJECTED, problem)


def _append_to_card(
    active: StepRun, train_run: Run, name: str, version: str, verdict: Verdict, gates: Sequence[str]
) -> str:
    """The train run's model card with the verdict, the gates and the champion comparison appended, logged on this
    run and tagged on the version as its current card; "" for a version whose train run wrote none."""
    try:
        written = mlflow.artifacts.load_text(f"runs:/{train_run.info.run_id}/{MODEL_CARD_ARTIFACT}")
    except Exception:  # noqa: BLE001 - a version trained before model cards: nothing to append to
        return ""
    comparison = note(active.client.get_run(active.run_id))[1:]  # the champion table of this run's note
    appended = card.with_evaluation(written, verdict.decision, verdict.reason, comparison, gates)
    mlflow.log_text(appended, MODEL_CARD_ARTIFACT)
    card_uri = f"runs:/{active.run_id}/{MODEL_CARD_ARTIFACT}"
    active.client.set_model_version_tag(name, version, MODEL_CARD_TAG, card_uri)
    return card_uri


def _record(
    active: StepRun,
    verdict: Verdict,
    config: PipelineConfig,
    version: str,
    train_run: Run | None = None,
    gates: Sequence[str] = (),
) -> None:
    """The verdict on the run and the version, the card with it (`gates`: the card's gate lines, of the metrics
    the gates were checked on), and the promotion."""
    name = config.registry.model_name
    mlflow.set_tags({VERDICT_TAG: verdict.decision, VERDICT_REASON_TAG: verdict.reason[:5000]})
    active.client.set_model_version_tag(name, version, VERDICT_TAG, verdict.decision)
    active.client.set_model_version_tag(name, version, version_run_tag("evaluate"), active.run_id)
    card_uri = _append_to_card(active, train_run, name, version, verdict, gates) if train_run is not None else ""
    reason = f"{verdict.reason.rstrip('.')}. Model card: `{card_uri}`." if card_uri else verdict.reason
    add_verdict(active.client, name, version, verdict.decision, reason)
    if verdict.promoted:
        promote(active, config.registry, version)


def run(
    config: PipelineConfig,
    *,
    upstream_run_id: str | None = None,
    eval_data: str | None = None,
    context: RunContext = RunContext(),
) -> StepResult:
    with step_run("evaluate", config, context) as active:
        train_run = active.use_upstream(upstream_run_id)
        preprocess_run = active.follow(train_run, "preprocess")
        name, version = train_run.data.tags.get(MODEL_NAME_TAG), train_run.data.tags.get(MODEL_VERSION_TAG)
        if not name or not version:
            raise UpstreamError(f"evaluate: train run {train_run.info.run_id} registered no model version")
        mlflow.set_tags({MODEL_NAME_TAG: name, MODEL_VERSION_TAG: version})  # the version this run judges
        with _rows_to_evaluate(config, preprocess_run, eval_data) as split:
            rows = (split.rows(), split.raw, split.what)
            # As main computes it (the test split is known by its run id: ""), so main can reuse this run.
            active.data_digest = input_digest("evaluate", config, {"eval_data": eval_data}) or ""
            with evaluable(name, version, *rows) as (model, schema, data):
                mlflow.log_input(
                    tracked_dataset(data, source=None, targets=schema.target, name="evaluation"), context="evaluation"
                )
                logger.info("evaluating {} version {} ({}) on {} rows", name, version, schema.task, len(data))
                candidate, curves = default_evaluation(active.client, name, version, model, schema, data)
                candidate = split.whole_split(candidate, model, schema, "full_test_")
                plots.log_calibration(curves, len(data))
            verdict = _judge(active, config, schema.task, version, rows, candidate, split)
        # The gates as checked: on the metrics `decide` read (engine dask: the whole split's, over the sample's).
        gates = gate_lines(config.evaluate, schema.task, candidate.metrics)
        _record(active, verdict, config, version, train_run, gates)
        card = {**chain_of_run(active.client, train_run), "evaluate": active.client.get_run(active.run_id)}
        mlflow.log_text(render_markdown(f"{name} version {version}", card, verdict.reason), LINEAGE_CARD_ARTIFACT)
        logger.info("verdict for {} version {}: {} ({})", name, version, verdict.decision, verdict.reason)
        if not verdict.promoted and config.evaluate.fail_on_reject:
            raise GateRejected(f"evaluate: {name} version {version} rejected: {verdict.reason}")
    metrics = {k: float(v) for k, v in candidate.metrics.items() if isinstance(v, (int, float))}
    return active.result(
        metrics=metrics,
        model_name=name,
        model_version=version,
        verdict=verdict.decision,
        verdict_reason=verdict.reason,
    )


_COUNTS = ("example_count", "true_", "false_", "sum_on_", "mean_on_")  # row counts, not scores


def note(run: Run) -> list[str]:
    """The run's Description: the verdict and its reason, and the challenger against the champion as a table."""
    tags, metrics = run.data.tags, run.data.metrics
    lines = [
        f"**{tags.get(VERDICT_TAG, '?')}**: `{tags.get(MODEL_NAME_TAG, '?')}` version "
        f"{tags.get(MODEL_VERSION_TAG, '?')}. {tags.get(VERDICT_REASON_TAG, '')}"
    ]
    compared = sorted(
        name
        for name in (key.removeprefix("champion_") for key in metrics if key.startswith("champion_"))
        if not name.startswith(_COUNTS)
    )
    rows = [(key, f"{metrics[key]:.4f}", f"{metrics['champion_' + key]:.4f}") for key in compared if key in metrics]
    if rows:
        lines += ["", "Against the champion, on the same rows:", "", *table(rows, ("metric", "challenger", "champion"))]
    return lines
