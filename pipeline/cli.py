"""Command line: `python -m pipeline <step> [options]`, the command behind every MLproject entry point.

Empty option values mean "use the config": MLproject passes '' for parameters the user did not set.
Exit codes: 0 ok, 2 bad config or data, 3 missing or wrong upstream run, 4 tracking unreachable,
5 challenger rejected with --fail-on-reject, 130 interrupted, 1 anything unexpected.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

from loguru import logger

from pipeline import interrupts
from pipeline.errors import ConfigError, PipelineError

# CLI option -> dotted config key it overrides.
OVERRIDES = {
    "engine": "engine",
    "test_size": "split.test_size",
    "n_trials": "tune.n_trials",
    "n_jobs": "tune.n_jobs",
    "timeout": "tune.timeout_s",
    "storage": "tune.storage",
    "fail_on_reject": "evaluate.fail_on_reject",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=[*COMMANDS, *LOCAL_COMMANDS])
    parser.add_argument("--config", default="", help="config file (default configs/pipeline.yaml)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set tune.seed=7 (repeatable)",
    )
    parser.add_argument("--engine", default="", help="override engine (local or dask)")
    parser.add_argument("--test-size", default="", help="override split.test_size")
    parser.add_argument("--n-trials", default="", help="override tune.n_trials (finished trials the study must hold)")
    parser.add_argument("--n-jobs", default="", help="override tune.n_jobs (trials in parallel threads)")
    parser.add_argument("--timeout", default="", help="override tune.timeout_s (seconds of tuning at most)")
    parser.add_argument("--storage", default="", help="override tune.storage (Optuna RDB URL or journal:PATH)")
    parser.add_argument("--fail-on-reject", default="", help="override evaluate.fail_on_reject (true/false)")
    parser.add_argument("--upstream-run-id", default="", help="pin the upstream run instead of the newest one")
    parser.add_argument("--eval-data", default="", help="evaluate on this CSV/Parquet file instead of the test split")
    parser.add_argument("--result-file", default="", help="write the step's result as JSON to this path")
    parser.add_argument("--input", default="", help="predict: CSV/Parquet file to score")
    parser.add_argument("--output", default="", help="predict: where to write the predictions (.csv/.parquet)")
    parser.add_argument("--alias", default="", help="predict, lineage: model alias (default: the champion alias)")
    parser.add_argument("--version", default="", help="predict, lineage: model version instead of an alias")
    parser.add_argument("--chunk-rows", default="", help="predict: rows scored at a time (default 100000)")
    parser.add_argument("--run-id", default="", help="lineage: show the chain behind this run")
    parser.add_argument("--reason", default="", help="rollback: why the champion is moved back (recorded)")
    parser.add_argument("--at", default="", help="history: the champion at this time (ISO 8601; no zone = UTC)")
    parser.add_argument("--chain-id", default="", help="tag the run(s) with this pipeline.chain_id (orchestrators)")
    parser.add_argument(
        "--force",
        default="",
        help="main: recompute these steps (comma-separated, or all) instead "
        "of reusing finished runs with the same fingerprint",
    )
    # init-config (a local command, no MLproject entry point): write configs/<name>.yaml for a table.
    parser.add_argument("--source", default="", help="init-config: the table (CSV/Parquet, URL, s3://, SQL)")
    parser.add_argument("--target", default="", help="init-config: the column to predict")
    parser.add_argument(
        "--name",
        default="",
        help="init-config: config name (default: the source file's stem); history: the registered model "
        "(default: registry.model_name)",
    )
    parser.add_argument("--query", default="", help="init-config: SQL source: the SELECT to run")
    parser.add_argument("--table", default="", help="init-config: SQL source: the table to read")
    parser.add_argument("--overwrite", action="store_true", help="init-config: replace an existing config file")
    parser.add_argument(
        "--json",
        nargs="?",
        const=True,
        default=False,
        type=_flag,
        metavar="true|false",
        help="print the result as JSON, as the last line of output (a bare --json means true; '' false)",
    )
    return parser


def _flag(value: str) -> bool:
    """A flag's value as MLproject passes it: '' (not set) or false/0/no, true/1/yes."""
    if value.strip().lower() in ("", "false", "0", "no"):
        return False
    if value.strip().lower() in ("true", "1", "yes"):
        return True
    raise argparse.ArgumentTypeError(f"expected true or false, got '{value}'")


def collect_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Dotted config overrides: every --set, then the named options (which win over a --set of the same key)."""
    overrides: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got '{item}'")
        overrides[key.strip()] = value.strip()
    overrides.update({key: getattr(args, option) for option, key in OVERRIDES.items() if getattr(args, option) != ""})
    return overrides


def _step(args: argparse.Namespace, launcher_run_id: str | None) -> dict[str, Any]:
    """Load the config, check the tracking store, run the command's handler, and report the model aliases."""
    from mlflow.tracking import MlflowClient

    from pipeline.config import load_config
    from pipeline.tracking.registry import fill_model_aliases
    from pipeline.tracking.runs import RunContext, check_tracking_store

    config = load_config(args.config or None, collect_overrides(args))
    check_tracking_store()
    gc.freeze()  # what MLflow and its store imported lives until exit: later collections need not walk it again
    context = RunContext(launcher_run_id=launcher_run_id, chain_id=args.chain_id or None)
    result = COMMANDS[args.step](config, args, context)
    if isinstance(result, dict):  # main, lineage and history report for themselves
        return result
    fill_model_aliases(MlflowClient(), [result])
    logger.success("{} run {} finished", result.step, result.run_id)
    return result.to_dict()


def _main(config, args: argparse.Namespace, context) -> dict[str, Any]:
    from pipeline.steps import chain

    force = [step.strip() for step in args.force.split(",") if step.strip()]
    result = chain.run_chain(
        config,
        eval_data=args.eval_data or None,
        launcher_run_id=context.launcher_run_id,
        chain_id=args.chain_id or None,
        force=force,
    )
    logger.success(chain.summary(result))
    return result.to_dict()


def _preprocess(config, args: argparse.Namespace, context):
    from pipeline.steps import preprocess

    return preprocess.run(config, context=context)


def _tune(config, args: argparse.Namespace, context):
    from pipeline.steps import tune

    return tune.run(config, upstream_run_id=args.upstream_run_id or None, context=context)


def _train(config, args: argparse.Namespace, context):
    from pipeline.steps import train

    return train.run(config, upstream_run_id=args.upstream_run_id or None, context=context)


def _evaluate(config, args: argparse.Namespace, context):
    from pipeline.steps import evaluate

    return evaluate.run(
        config, upstream_run_id=args.upstream_run_id or None, eval_data=args.eval_data or None, context=context
    )


def _rollback(config, args: argparse.Namespace, context):
    from pipeline.steps import rollback

    return rollback.run(config, reason=args.reason, context=context)


def _predict(config, args: argparse.Namespace, context):
    from pipeline.steps import predict

    if not args.input or not args.output:
        raise ConfigError("predict needs --input and --output (-P input=... -P output=...)")
    if args.chunk_rows and (not args.chunk_rows.isdigit() or int(args.chunk_rows) < 1):
        raise ConfigError(f"--chunk-rows must be a positive integer, got '{args.chunk_rows}'")
    return predict.run(
        config,
        input_path=args.input,
        output_path=args.output,
        alias=args.alias or None,
        version=args.version or None,
        chunk_rows=int(args.chunk_rows or 0) or None,
        context=context,
    )


def _lineage(config, args: argparse.Namespace, context) -> dict[str, Any]:
    from pipeline.steps import lineage

    return lineage.run(config, run_id=args.run_id or None, alias=args.alias or None, version=args.version or None)


def _history(config, args: argparse.Namespace, context) -> dict[str, Any]:
    from pipeline.steps import history

    result = history.run(config, name=args.name or None, at=args.at or None)
    if not args.json:  # --json: the JSON line alone, for machines
        print(history.render(result), flush=True)
    return result


def _init_config(args: argparse.Namespace, launcher_run_id: str | None) -> dict[str, Any]:
    """init-config writes a config: no config to load, no tracking store to check."""
    from pipeline.steps import init_config

    if not args.source or not args.target:
        raise ConfigError("init-config needs --source and --target")
    if args.force:
        raise ConfigError("init-config: --force is main's; pass --overwrite to replace an existing config file")
    decided = init_config.run(
        args.source,
        args.target,
        name=args.name or None,
        force=args.overwrite,
        query=args.query or None,
        table=args.table or None,
    )
    print(init_config.summary(decided), flush=True)
    return {"step": "init-config", "status": "FINISHED", **decided}


# Command -> handler(config, args, context): a StepResult (aliases filled in here) or a finished result dict.
COMMANDS: dict[str, Callable[..., Any]] = {
    "main": _main,
    "preprocess": _preprocess,
    "tune": _tune,
    "train": _train,
    "evaluate": _evaluate,
    "rollback": _rollback,
    "predict": _predict,
    "lineage": _lineage,
    "history": _history,
}


def _check_store(args: argparse.Namespace, launcher_run_id: str | None) -> dict[str, Any]:
    """What every command checks first, alone: the tracking store opens (`make run` calls it before `mlflow run`,
    whose launcher would retry a wrong database for about 100 s)."""
    import mlflow

    from pipeline.config import mask_url
    from pipeline.tracking.runs import check_tracking_store

    check_tracking_store()
    logger.success("the tracking store {} answers", mask_url(mlflow.get_tracking_uri()))
    return {"step": "check-store", "status": "FINISHED"}


# Commands that load no config: handler(args, launcher run id) -> result dict.
LOCAL_COMMANDS: dict[str, Callable[[argparse.Namespace, str | None], dict[str, Any]]] = {
    "init-config": _init_config,
    "check-store": _check_store,
}


def _fail_launcher_run(launcher_run_id: str | None, error: str) -> None:
    """A failure before the step opened its run leaves the launcher's run RUNNING: end it FAILED, with the error."""
    if not launcher_run_id:
        return
    from mlflow.tracking import MlflowClient

    from pipeline.contract import ERROR_TAG

    try:
        client = MlflowClient()
        if client.get_run(launcher_run_id).info.status == "RUNNING":
            client.set_tag(launcher_run_id, ERROR_TAG, error.splitlines()[0][:5000] if error else "failed")
            client.set_terminated(launcher_run_id, "FAILED")
    except Exception:  # noqa: BLE001 - the original error is what the user must see
        pass


def configure_console() -> None:
    logger.remove()
    logger.add(
        sys.stderr,
        level=os.environ.get("PIPELINE_LOG_LEVEL", "INFO"),
        format="<green>{time:HH:mm:ss}</green> <level>{level: <7}</level> {message}",
        backtrace=False,
        diagnose=False,
    )


def quiet_libraries() -> None:
    """Keep the console to what the user acts on: no per-download progress bars, no known-harmless warnings,
    and an unreachable tracking server reported in seconds rather than after MLflow's minutes of retries."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
    warnings.filterwarnings("ignore", message=".* is experimental .*supported from v")
    warnings.filterwarnings("ignore", message=".* is an experimental feature")
    # The evaluator hands scikit-learn's log_loss the binary labels as [negative, positive] with probabilities in
    # sorted-label order, which is what log_loss uses (it sorts labels itself); its warning about the order is noise.
    warnings.filterwarnings("ignore", message="Labels passed were .* assumes labels are ordered lexicographically")
    # MLflow's classifier evaluator guesses the model type from the labels and warns about every integer-labelled
    # evaluation it cannot place ("looks like None"); the pipeline always states the type itself.
    logging.getLogger("mlflow.models.evaluation.evaluators.classifier").addFilter(
        lambda record: "the model type looks like" not in record.getMessage()
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_console()
    quiet_libraries()
    interrupts.install()
    from pipeline.results import write_result
    from pipeline.tracking.runs import take_launcher_run_id

    launcher_run_id = take_launcher_run_id()
    try:
        result, code = LOCAL_COMMANDS.get(args.step, _step)(args, launcher_run_id), 0
    except PipelineError as exc:
        logger.error("{}", exc)
        result, code = _failure(args.step, exc, exc.exit_code), exc.exit_code
    except BaseException as exc:
        if interrupts.was_interrupted(exc):
            logger.error("{} interrupted: {}", args.step, interrupts.describe(exc))
            result, code = _failure(args.step, exc, 130), 130
        elif isinstance(exc, Exception):
            logger.opt(exception=exc).error("{} failed unexpectedly: {}", args.step, exc)
            result, code = _failure(args.step, exc, 1), 1
        else:
            raise
    if code:
        _fail_launcher_run(launcher_run_id, str(result.get("error", "")))
    if args.result_file:
        try:
            write_result(result, args.result_file)
        except OSError as exc:
            logger.error("cannot write the result file {}: {}", args.result_file, exc)
            code = code or 2
    if args.json:
        print(json.dumps(result, sort_keys=True), flush=True)
    return code


def _failure(step: str, exc: BaseException, code: int) -> dict[str, Any]:
    """The result of a failed step: which run failed (if one was opened), why, and the exit code."""
    return {
        "step": step,
        "status": "KILLED" if code == 130 else "FAILED",
        "run_id": getattr(exc, "pipeline_run_id", None),
        "error": interrupts.describe(exc) if code == 130 else (str(exc) or type(exc).__name__),
        "exit_code": code,
    }
