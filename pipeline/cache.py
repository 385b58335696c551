"""Skip-if-done for `main`: step fingerprints, finding a finished run to reuse, and claims between chains.

A step's fingerprint hashes what decides its output: the step, the source of the modules it runs (its import
closure inside this package, so editing train.py leaves preprocess and tune cached), its config sections, its
upstream run ids and the digest of its own input data (preprocess: the source file, or a database query's rows;
evaluate: an `eval-data` file). Everything lives in MLflow tags, so the cache works from any machine against a
shared tracking server.

Claims: a chain opens a step's run with the fingerprint tag before doing any work. A chain that finds a RUNNING run
with its fingerprint waits for it (up to `cache.claim_wait_s`) and reuses it if it finishes; two chains that open
the same step at the same moment both see each other, and the later one steps aside (its empty run is deleted).
"""

from __future__ import annotations

import ast
import hashlib
import json
import time
from functools import cache
from pathlib import Path

from loguru import logger
from mlflow.entities import Run, RunStatus
from mlflow.tracking import MlflowClient

from pipeline.config import DataConfig, PipelineConfig, config_as_dict
from pipeline.lineage import FINGERPRINT_TAG, STEP_TAG

PACKAGE = Path(__file__).parent
# Which config sections decide each step's output.
STEP_CONFIG_SECTIONS = {
    "preprocess": ("data", "features", "split"),
    "tune": ("data", "split", "tune", "train"),
    "train": ("data", "train", "registry"),
    "evaluate": ("data", "registry", "evaluate"),
    "rollback": ("registry",),
    "predict": ("features", "registry"),
}
FINISHED, RUNNING = RunStatus.to_string(RunStatus.FINISHED), RunStatus.to_string(RunStatus.RUNNING)


class Superseded(Exception):
    """Another chain opened the same step (same fingerprint) first: this run steps aside and waits for it."""

    def __init__(self, winner_run_id: str) -> None:
        super().__init__(f"run {winner_run_id} computes the same step")
        self.winner_run_id = winner_run_id


def _imported_modules(path: Path) -> set[str]:
    """Names of this package's modules that a source file imports (top-level and inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "pipeline":
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[1] for alias in node.names if alias.name.startswith("pipeline."))
    return {name for name in names if (PACKAGE / f"{name}.py").is_file()}


@cache
def code_digest(step: str) -> str:
    """Hash of the step module and every module of this package it imports, directly or not."""
    seen, todo = set(), [step]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_imported_modules(PACKAGE / f"{name}.py") - seen)
    code = hashlib.sha256()
    for name in sorted(seen):
        code.update(name.encode() + b"\0" + (PACKAGE / f"{name}.py").read_bytes())
    return code.hexdigest()


def hook_digest(step: str, config: PipelineConfig) -> str:
    """preprocess runs the feature hook file, which lies outside this package: its content counts as code."""
    from pipeline.feature_hook import hook_path

    path = hook_path(config) if step == "preprocess" else None
    return file_digest(path) if path is not None and path.is_file() else ""


def step_fingerprint(step: str, config: PipelineConfig, upstream: dict[str, str], data_digest: str = "") -> str:
    resolved = config_as_dict(config)
    payload = json.dumps({"step": step, "code": code_digest(step), "hook": hook_digest(step, config),
                          "upstream": upstream, "data": data_digest,
                          "config": {name: resolved[name] for name in STEP_CONFIG_SECTIONS[step]}}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def file_digest(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_digest(data: DataConfig) -> str | None:
    """What identifies the content of the data source: a bundled dataset's name, a local file's hash, a database
    query's or table's rows hashed (read once per process: sql_source hands the frame on to preprocess); None for
    a file URL, whose content may change behind it (preprocess then always runs)."""
    from pipeline.data import SKLEARN_PREFIX
    from pipeline.sql_source import is_sql_url, sql_digest

    if data.source.startswith(SKLEARN_PREFIX):
        return data.source
    if is_sql_url(data.source):
        return f"sql:{sql_digest(data)}"
    if "://" in data.source or not Path(data.source).is_file():
        return None
    return file_digest(data.source)


def _same_fingerprint(client: MlflowClient, experiment_id: str, step: str, fingerprint: str) -> list[Run]:
    return client.search_runs([experiment_id], f"tags.`{FINGERPRINT_TAG}` = '{fingerprint}' and "
                              f"tags.`{STEP_TAG}` = '{step}'", order_by=["attributes.start_time ASC"],
                              max_results=100)


def earlier_claim(client: MlflowClient, experiment_id: str, step: str, fingerprint: str, run_id: str) -> str | None:
    """The run that opened the same step before `run_id` and is still running: the one to wait for. (Finished runs
    were offered for reuse before this run opened; a forced step must not step aside for them.)"""
    runs = _same_fingerprint(client, experiment_id, step, fingerprint)
    mine = next((run for run in runs if run.info.run_id == run_id), None)
    if mine is None:
        return None
    order = (mine.info.start_time, run_id)
    for run in runs:
        if run.info.status == RUNNING and (run.info.start_time, run.info.run_id) < order:
            return run.info.run_id
    return None


def find_reusable(client: MlflowClient, experiment_id: str, step: str, fingerprint: str, wait_s: float,
                  poll_s: float = 1.0) -> Run | None:
    """The newest FINISHED run of `step` with this fingerprint; if only a RUNNING one exists (another chain's
    claim), wait for it to end, at most `wait_s`. None when there is nothing to reuse."""
    deadline, announced = time.monotonic() + wait_s, False
    while True:
        runs = _same_fingerprint(client, experiment_id, step, fingerprint)
        finished = [run for run in runs if run.info.status == FINISHED]
        if finished:
            return max(finished, key=lambda run: run.info.end_time or 0)
        running = [run for run in runs if run.info.status == RUNNING]
        if not running:
            return None
        if time.monotonic() > deadline:
            logger.warning("{}: run {} has held the same work for over {:.0f} s (a dead process?); computing it "
                           "here instead", step, running[0].info.run_id, wait_s)
            return None
        if not announced:
            logger.info("{}: run {} of another chain is computing the same step; waiting for it", step,
                        running[0].info.run_id)
            announced = True
        time.sleep(poll_s)
