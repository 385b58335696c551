"""Skip-if-done for `main`: step fingerprints, finding a finished run to reuse, and claims between chains.

A step's fingerprint hashes what decides its output: the step, the source of the modules it runs (its import
closure inside this package, across subpackages, so editing steps/train.py leaves preprocess and tune cached), its
config sections (pipeline.contract), its upstream run ids and the digest of its own input data (preprocess: the
source file, or a database query's rows; evaluate: an `eval-data` file). Everything lives in MLflow tags, so the
cache works from any machine against a shared tracking server.

Claims: a chain opens a step's run with the fingerprint tag before doing any work. A chain that finds a RUNNING run
with its fingerprint waits for it (up to `cache.claim_wait_s`) and reuses it if it finishes. Two chains that open the
same step at the same moment take tickets (Lamport's bakery): each opened run takes one more than the highest ticket
among the open claims it sees, waits until every open claim it sees holds a ticket, and steps aside (its empty run is
deleted) if one holds a lower ticket (ties: the lower run id). Ordering them by their runs' start times instead let
both compute: a run's start time is read on the client before the row reaches the store, so a chain could look,
see nothing, and find later that the other run had started before it. A claim older than `cache.claim_wait_s` is
presumed dead (its process was killed): waited for once, then ignored.
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
from pipeline.contract import CLAIM_TICKET_TAG, FINGERPRINT_TAG, STEP_TAG, STEPS
from pipeline.data.digests import file_digest
from pipeline.data.source_kinds import source_for
from pipeline.engines import engine_module

PACKAGE = Path(__file__).resolve().parents[1]  # the `pipeline` package
FINISHED, RUNNING = RunStatus.to_string(RunStatus.FINISHED), RunStatus.to_string(RunStatus.RUNNING)


class Superseded(Exception):
    """Another chain opened the same step (same fingerprint) first: this run steps aside and waits for it."""

    def __init__(self, winner_run_id: str) -> None:
        super().__init__(f"run {winner_run_id} computes the same step")
        self.winner_run_id = winner_run_id


def _module_file(module: str, root: Path) -> Path | None:
    """The source file of a dotted module of this package (a module or a package's __init__), if it is one."""
    base = root.joinpath(*module.split(".")[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path, module: str, root: Path) -> set[str]:
    """Dotted names of this package's modules a source file imports (top-level and inside functions), with the
    packages around them (whose __init__ runs first). `from pipeline.x import y` counts y when y is a module."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    tree = ast.parse(path.read_text())
    # A package's __init__ is imported on the way to any module inside it: only its module-level imports run then
    # (pipeline/__init__.py's lazy API imports inside __getattr__ would otherwise pull every step into every step).
    nodes = tree.body if path.name == "__init__.py" else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the file's own package upwards
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            if base == "pipeline" or base.startswith("pipeline."):
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("pipeline."))
    with_parents = {".".join(name.split(".")[:depth]) for name in names for depth in range(1, name.count(".") + 2)}
    return {name for name in with_parents if _module_file(name, root) is not None}


def import_closure(module: str, root: Path | None = None) -> dict[str, Path]:
    """Every module of this package that `module` imports, directly or not (itself included) -> its file."""
    root = root or PACKAGE
    seen: dict[str, Path] = {}
    todo = [".".join(module.split(".")[:depth]) for depth in range(1, module.count(".") + 2)]
    while todo:
        name = todo.pop()
        if name in seen or (path := _module_file(name, root)) is None:
            continue
        seen[name] = path
        todo.extend(_imported_modules(path, name, root) - set(seen))
    return seen


def step_modules(step: str, engine: str, root: Path | None = None) -> tuple[str, ...]:
    """The modules whose code a step runs: its own, and its engine module of that engine when it has one (the
    module `engine_for` loads by name, which no import statement shows)."""
    work = engine_module(engine, step)
    return (STEPS[step].module, work) if _module_file(work, root or PACKAGE) else (STEPS[step].module,)


@cache
def code_digest(step: str, root: Path = PACKAGE, engine: str = "local") -> str:
    """Hash of the step's modules (step_modules) and every module of this package they import, directly or not."""
    closure: dict[str, Path] = {}
    for module in step_modules(step, engine, root):
        closure.update(import_closure(module, root))
    code = hashlib.sha256()
    for name, path in sorted(closure.items()):
        code.update(name.encode() + b"\0" + path.read_bytes())
    return code.hexdigest()


def hook_digest(step: str, config: PipelineConfig) -> str:
    """preprocess runs the feature hook file, which lies outside this package: its content counts as code."""
    from pipeline.data.feature_hook import hook_path

    path = hook_path(config) if step == "preprocess" else None
    return file_digest(path) if path is not None and path.is_file() else ""


def _used_config(step: str, resolved: dict) -> dict:
    """The step's config sections, without the keys it never reads (`resolved`, a fresh dump of the config, is cut
    in place)."""
    used = {name: resolved[name] for name in STEPS[step].config_sections}
    for key in STEPS[step].unused_keys:
        *parents, last = key.split(".")
        section = used
        for parent in parents:
            section = section[parent]
        section.pop(last)
    return used


def step_fingerprint(step: str, config: PipelineConfig, upstream: dict[str, str], data_digest: str = "") -> str:
    resolved = config_as_dict(config)
    payload = json.dumps(
        {
            "step": step,
            "code": code_digest(step, engine=config.engine),
            "hook": hook_digest(step, config),
            "upstream": upstream,
            "data": data_digest,
            "config": _used_config(step, resolved),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def source_digest(data: DataConfig) -> str | None:
    """What identifies the content of the data source (`Source.digest` of pipeline.data.source_kinds): a bundled
    dataset's name, a local file's hash (or the files' of a folder or glob, `files:`), a database query's or table's
    rows hashed (`sql:`, read once per process: sql_source hands the frame on to preprocess); None for a URL, whose
    content may change behind it (preprocess then always runs)."""
    return source_for(data).digest()


def _same_fingerprint(client: MlflowClient, experiment_id: str, step: str, fingerprint: str) -> list[Run]:
    return client.search_runs(
        [experiment_id],
        f"tags.`{FINGERPRINT_TAG}` = '{fingerprint}' and tags.`{STEP_TAG}` = '{step}'",
        order_by=["attributes.start_time ASC"],
        max_results=100,
    )


# A run that opened a claim and has no ticket yet is about to take one; one that never does (its process died between
# the two writes) is ignored after this long.
TICKET_WAIT_S = 30.0


def _ticket(run: Run) -> int | None:
    value = run.data.tags.get(CLAIM_TICKET_TAG)
    return int(value) if value and value.isdigit() else None


def _open_claims(runs: list[Run], run_id: str, stale_s: float) -> list[Run]:
    """Of `runs` (one fingerprint's), the other RUNNING ones, less those older than `stale_s` (presumed dead)."""
    oldest = (time.time() - stale_s) * 1000
    return [
        run
        for run in runs
        if run.info.run_id != run_id and run.info.status == RUNNING and run.info.start_time >= oldest
    ]


def _finished_since(runs: list[Run], since_ms: int) -> str | None:
    return next((r.info.run_id for r in runs if r.info.status == FINISHED and (r.info.end_time or 0) >= since_ms), None)


def take_ticket(
    client: MlflowClient, experiment_id: str, step: str, fingerprint: str, run_id: str, stale_s: float
) -> int:
    """Tag the opened run `run_id` with its claim ticket: one more than any open claim's, 1 when it is alone."""
    others = _open_claims(_same_fingerprint(client, experiment_id, step, fingerprint), run_id, stale_s)
    ticket = 1 + max((_ticket(run) or 0 for run in others), default=0)
    client.set_tag(run_id, CLAIM_TICKET_TAG, str(ticket))
    return ticket


def earlier_claim(
    client: MlflowClient,
    experiment_id: str,
    step: str,
    fingerprint: str,
    run_id: str,
    ticket: int,
    stale_s: float,
    since_ms: int,
    poll_s: float = 0.2,
) -> str | None:
    """The run to wait for instead of computing in `run_id` (holding `ticket`): an open claim with a lower ticket,
    or a run that finished the same work after `since_ms` (when this chain last looked for one to reuse); None if
    this run goes first. Waits while a claim it sees has no ticket yet (that run is taking one)."""
    deadline = time.monotonic() + TICKET_WAIT_S
    while True:
        runs = _same_fingerprint(client, experiment_id, step, fingerprint)
        others = _open_claims(runs, run_id, stale_s)
        if any(_ticket(run) is None for run in others) and time.monotonic() < deadline:
            time.sleep(poll_s)
            continue
        if done := _finished_since(runs, since_ms):
            return done
        ahead = [(number, run.info.run_id) for run in others if (number := _ticket(run)) is not None]
        first = min(ahead, default=None)
        return first[1] if first and first < (ticket, run_id) else None


def find_reusable(
    client: MlflowClient, experiment_id: str, step: str, fingerprint: str, wait_s: float, poll_s: float = 1.0
) -> Run | None:
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
            logger.warning(
                "{}: run {} has held the same work for over {:.0f} s (a dead process?); computing it here instead",
                step,
                running[0].info.run_id,
                wait_s,
            )
            return None
        if not announced:
            logger.info(
                "{}: run {} of another chain is computing the same step; waiting for it", step, running[0].info.run_id
            )
            announced = True
        time.sleep(poll_s)
