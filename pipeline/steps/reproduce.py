"""reproduce: rebuild a registered version (or a train run) from its record, and say whether it came out the same.

Reads:  the version's train run (`pipeline.train_run`), the tune and preprocess runs behind it; the config each
        logged (`config/resolved.yaml`), the code version (`mlflow.source.git.commit`, `pipeline.git_dirty`), the
        thread counts (`tune.threads`, `train.threads`) and the data source's digest (`pipeline.source_digest`).
Does:   checks that commit out into a temporary git worktree (a dirty, unrecorded or absent commit is refused
        unless `--allow-dirty`, which then runs the current tree and says so; a clean commit is always used),
        checks that the source still has the recorded digest, and reruns preprocess, tune and train there, each a
        `python -m pipeline <step>` process of that code, with the recorded config, seeds and thread counts (tune
        reruns only an in-memory study: a study kept in a storage is not replayed, and train is then pinned to the
        original tune run's params).
Writes: the new runs, tagged `pipeline.reproduces` = the run each rebuilt; the model registered under
        `<model>-reproduce` and deleted after the comparison or a failed step (under the model itself with
        `--register`). Prints the
        test metrics and a hash of the test predictions, original against rebuilt: exit 0 when identical (metrics
        within 1e-9, the same hash), 7 (`NotReproduced`) with the differences otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import yaml
from loguru import logger
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT

from pipeline.config import PipelineConfig, load_config
from pipeline.contract import (
    DATA_DIGEST_TAG,
    GIT_DIRTY_TAG,
    MODEL_NAME_TAG,
    MODEL_VERSION_TAG,
    REPRODUCES_TAG,
    RESOLVED_CONFIG_ARTIFACT,
    SOURCE_DIGEST_TAG,
    STEP_TAG,
    TEST_ARTIFACT,
    version_run_tag,
)
from pipeline.errors import DataError, NotReproduced, UpstreamError
from pipeline.masking import mask_url
from pipeline.tracking.lineage_view import chain_of_run
from pipeline.tracking.lookup import quoted
from pipeline.tracking.source import PROJECT_DIR

TOLERANCE = 1e-9
REBUILT = ("preprocess", "tune", "train")  # the steps rerun: evaluate and the registry's aliases are left alone


def _train_run(client: MlflowClient, name: str, version: str | None, run_id: str | None) -> Run:
    if run_id:
        run = client.get_run(run_id)
        if run.data.tags.get(STEP_TAG) != "train":
            raise UpstreamError(f"reproduce: run {run_id} is not a train run (pipeline.step train)")
        return run
    if not version:
        raise UpstreamError("reproduce needs --version (with --model) or --run-id of a train run")
    found = client.get_model_version(name, version).tags.get(version_run_tag("train"))
    if not found:
        raise UpstreamError(f"reproduce: {name} version {version} names no train run (not made by this pipeline)")
    return client.get_run(found)


def _refuse_or_current_tree(problem: str, allow_dirty: bool) -> None:
    """With --allow-dirty, say that the current tree runs instead; else the one-line refusal."""
    if not allow_dirty:
        raise UpstreamError(f"reproduce: {problem}; --allow-dirty runs the current tree instead")
    logger.warning("reproduce: {}; --allow-dirty: running the current tree {}", problem, PROJECT_DIR)


def _checked_commit(train_run: Run, allow_dirty: bool) -> str | None:
    """The recorded commit to check out, when it is clean and in this repository; else a refusal, or None (the
    current tree) with --allow-dirty."""
    tags, run_id = train_run.data.tags, train_run.info.run_id
    commit = tags.get(MLFLOW_GIT_COMMIT)
    if not commit:
        _refuse_or_current_tree(f"train run {run_id} records no git commit (made outside a git checkout)", allow_dirty)
        return None
    if tags.get(GIT_DIRTY_TAG) == "true":
        _refuse_or_current_tree(
            f"train run {run_id} was made from a checkout with uncommitted changes to commit {commit[:12]}: that "
            "code is gone",
            allow_dirty,
        )
        return None
    git = ["git", "-C", str(PROJECT_DIR)]
    if subprocess.run([*git, "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True).returncode:
        _refuse_or_current_tree(f"commit {commit[:12]} is not in {PROJECT_DIR} (git fetch it first)", allow_dirty)
        return None
    return commit


@contextmanager
def _code_at(commit: str | None) -> Iterator[Path]:
    """The project at `commit`, in a temporary git worktree (removed after); the current tree for None."""
    if commit is None:
        yield PROJECT_DIR
        return
    git = ["git", "-C", str(PROJECT_DIR)]
    with tempfile.TemporaryDirectory(prefix="reproduce-") as tmp:
        tree = Path(tmp) / "code"
        subprocess.run([*git, "worktree", "add", "--detach", str(tree), commit], check=True, capture_output=True)
        try:
            yield tree
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(tree)], capture_output=True)


def _recorded_config(client: MlflowClient, run: Run, folder: Path, model_name: str) -> Path:
    """The config the run logged, made runnable elsewhere: its source as an absolute path (the worktree has only
    tracked files), the scratch model name; secrets were masked when logged, so they must be absent."""
    text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/{RESOLVED_CONFIG_ARTIFACT}")
    if "***" in text:
        raise UpstreamError(
            "reproduce: the recorded config had secrets (masked when logged: ***); pass them through "
            "environment variables in the source URL (${VAR}) to make such runs reproducible"
        )
    document = yaml.safe_load(text)
    source = document["data"]["source"]
    if "://" not in source and not source.startswith("sklearn:") and not Path(source).is_absolute():
        document["data"]["source"] = str(Path(source).resolve())
    document["registry"]["model_name"] = model_name
    path = folder / f"{run.data.tags.get(STEP_TAG, 'step')}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _check_data(config_path: Path, preprocess_run: Run) -> None:
    """The source has the recorded digest, or one line with the digest then and now."""
    from pipeline.errors import ConfigError
    from pipeline.tracking.reuse import input_digest

    recorded = preprocess_run.data.tags.get(SOURCE_DIGEST_TAG)
    if not recorded:
        logger.info("reproduce: no source digest recorded: the rebuilt splits' digest will tell")
        return
    try:
        config = load_config(config_path)
    except ConfigError:  # a config of older code than this one: the rebuilt splits' digest will tell
        logger.info("reproduce: the recorded config predates this code's: the rebuilt splits' digest will tell")
        return
    now = input_digest("preprocess", config, {})
    if now != recorded:
        raise DataError(
            f"reproduce: the data changed since: {mask_url(config.data.source)} had digest {recorded}, "
            f"now {now or 'none (unreadable)'}"
        )


def _run_step(step: str, code: Path, config: Path, sets: list[str], upstream: str | None, original: str) -> str:
    """One step of the recorded code in its own process; its run tagged as rebuilding `original`."""
    with tempfile.TemporaryDirectory(prefix=f"reproduce-{step}-") as tmp:
        result_file = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "pipeline", step, "--config", str(config), "--result-file", str(result_file)]
        command += [item for key_value in sets for item in ("--set", key_value)]
        command += ["--upstream-run-id", upstream] if upstream else []
        logger.info("reproduce: {} ({})", step, " ".join(command[3:]))
        done = subprocess.run(command, cwd=code, env={**os.environ, "PYTHONPATH": str(code)})
        if not result_file.exists():
            raise NotReproduced(f"reproduce: {step} wrote no result (exit {done.returncode})")
        result = json.loads(result_file.read_text())
    if done.returncode:
        raise NotReproduced(f"reproduce: {step} failed (exit {done.returncode}): {result.get('error')}")
    MlflowClient().set_tag(result["run_id"], REPRODUCES_TAG, original)
    return result["run_id"]


def prediction_hash(client: MlflowClient, train_run: Run) -> str:
    """SHA-256 of the model's predictions (class probabilities, or values) on its preprocess run's test split."""
    from pipeline.modeling.model import evaluation_model
    from pipeline.tracking.splits import read_split, schema_of_run

    preprocess = client.get_run(train_run.data.tags["pipeline.upstream.preprocess"])
    schema = schema_of_run(preprocess)
    rows = read_split(preprocess, TEST_ARTIFACT, schema).drop(columns=[schema.target])
    tags = train_run.data.tags
    with evaluation_model(f"models:/{tags[MODEL_NAME_TAG]}/{tags[MODEL_VERSION_TAG]}") as (scored, _, _):
        inner = scored._model_impl.xgb_model
        values = inner.model.predict_proba(rows) if schema.is_classification else inner.predict(rows)
    return hashlib.sha256(np.ascontiguousarray(values, dtype="float64").tobytes()).hexdigest()


def compare(client: MlflowClient, original: Run, rebuilt: Run) -> list[tuple[str, str, str, bool]]:
    """(what, original, rebuilt, same) for each test metric, the prediction hash and the prepared data's digest."""
    rows = []
    for key in sorted(k for k in original.data.metrics if k.startswith("test_")):
        before, after = original.data.metrics[key], rebuilt.data.metrics.get(key)
        same = after is not None and abs(before - after) <= TOLERANCE
        rows.append((key, f"{before:.12g}", "missing" if after is None else f"{after:.12g}", same))
    digests = [
        client.get_run(run.data.tags["pipeline.upstream.preprocess"]).data.tags.get(DATA_DIGEST_TAG, "?")
        for run in (original, rebuilt)
    ]
    rows.append(("data digest (splits)", digests[0], digests[1], digests[0] == digests[1]))
    hashes = [prediction_hash(client, run)[:16] for run in (original, rebuilt)]
    rows.append(("test predictions (sha256)", hashes[0], hashes[1], hashes[0] == hashes[1]))
    return rows


def render(rows: list[tuple[str, str, str, bool]]) -> str:
    width = max(len(what) for what, *_ in rows)
    lines = [f"{'':<{width}}  {'original':<20}  {'rebuilt':<20}"]
    lines += [f"{what:<{width}}  {a:<20}  {b:<20}  {'same' if same else 'DIFFERENT'}" for what, a, b, same in rows]
    return "\n".join(lines)


def _sets(tune_run: Run, train_run: Run) -> list[str]:
    """The recorded thread counts, set again (XGBoost's CPU results depend on them)."""
    sets = []
    if threads := tune_run.data.params.get("tune.threads"):
        sets.append(f"tune.threads_per_trial={threads}")
    if threads := train_run.data.params.get("train.threads"):
        sets.append(f"train.fixed_params.n_jobs={threads}")
    return sets


def _rebuild(client: MlflowClient, chain: dict[str, Run], original: Run, commit: str | None, model_name: str) -> str:
    """Preprocess, tune and train rerun by the code at `commit`, each with the config it ran with (a step run alone
    may have had overrides the others had not); the rebuilt train run's id."""
    with tempfile.TemporaryDirectory(prefix="reproduce-config-") as tmp, _code_at(commit) as code:
        configs = {step: _recorded_config(client, chain[step], Path(tmp), model_name) for step in REBUILT}
        _check_data(configs["preprocess"], chain["preprocess"])
        sets = _sets(chain["tune"], original)
        preprocess = _run_step("preprocess", code, configs["preprocess"], sets, None, chain["preprocess"].info.run_id)
        if chain["tune"].data.params.get("optuna.storage", "in-memory") == "in-memory":
            tune = _run_step("tune", code, configs["tune"], sets, preprocess, chain["tune"].info.run_id)
        else:
            logger.warning("reproduce: the study was kept in a storage: train is pinned to the original tune run")
            tune = chain["tune"].info.run_id
        return _run_step("train", code, configs["train"], sets, tune, original.info.run_id)


def _model_exists(client: MlflowClient, name: str) -> bool:
    # Not a search: MLflow adds a clause of its own to a registered-model filter, and a name with a quote breaks it.
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True


def _drop_scratch_model(client: MlflowClient, name: str, existed: bool) -> None:
    """Delete the scratch model the rebuilt train registered; one left by an earlier reproduce that was killed
    loses its versions made by a rebuild (`pipeline.reproduces` on their run), and goes when none is left."""
    if not _model_exists(client, name):
        return  # the rebuild failed before train registered anything
    if existed:
        for found in client.search_model_versions(f"name = {quoted(name)}"):
            if found.run_id and client.get_run(found.run_id).data.tags.get(REPRODUCES_TAG):
                client.delete_model_version(name, found.version)
        if client.search_model_versions(f"name = {quoted(name)}"):
            return  # versions someone else put there: not ours to delete
    client.delete_registered_model(name)


def _drop_scratch_model_or_warn(client: MlflowClient, name: str, existed: bool) -> None:
    try:
        _drop_scratch_model(client, name, existed)
    except Exception as exc:  # noqa: BLE001 - reported, and the error that stopped the rebuild is raised
        logger.warning("reproduce: the scratch model {} could not be deleted: {}", name, exc)


def run(
    config: PipelineConfig,
    *,
    model: str | None = None,
    version: str | None = None,
    run_id: str | None = None,
    allow_dirty: bool = False,
    register: bool = False,
) -> dict[str, Any]:
    client = MlflowClient()
    name = model or config.registry.model_name
    original = _train_run(client, name, version, run_id)
    chain = chain_of_run(client, original)
    commit = _checked_commit(original, allow_dirty)
    target_name = original.data.tags.get(MODEL_NAME_TAG, name) if register else f"{name}-reproduce"
    existed = _model_exists(client, target_name)
    try:
        rebuilt_id = _rebuild(client, chain, original, commit, target_name)
        rows = compare(client, original, client.get_run(rebuilt_id))
    except BaseException:
        if not register:  # the step's own error is the one to see, whatever the clean-up meets
            _drop_scratch_model_or_warn(client, target_name, existed)
        raise
    if not register:  # the rebuilt model was for the comparison only
        _drop_scratch_model(client, target_name, existed)
    print(render(rows), flush=True)
    result = {
        "step": "reproduce",
        "status": "FINISHED",
        "run_id": rebuilt_id,
        "reproduces": original.info.run_id,
        "commit": commit,
        "identical": all(same for *_, same in rows),
        "differences": [what for what, *_, same in rows if not same],
    }
    if not result["identical"]:
        raise NotReproduced(
            f"reproduce: train run {original.info.run_id} came out different: {', '.join(result['differences'])}",
            result,
        )
    return result
