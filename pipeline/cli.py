"""Command line: `python -m pipeline <command> [options]`, the command behind every MLproject entry point.

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

# Options that override one config key: (flag, dotted key, help). A step takes those of its config sections
# (pipeline.contract); `--engine` every command that loads a config.
OVERRIDES = (
    ("--engine", "engine", "override engine (local or dask)"),
    ("--test-size", "split.test_size", "override split.test_size"),
    ("--n-trials", "tune.n_trials", "override tune.n_trials (finished trials the study must hold)"),
    ("--n-jobs", "tune.n_jobs", "override tune.n_jobs (trials in parallel threads)"),
    ("--timeout", "tune.timeout_s", "override tune.timeout_s (seconds of tuning at most)"),
    ("--storage", "tune.storage", "override tune.storage (Optuna RDB URL or journal:PATH)"),
    ("--fail-on-reject", "evaluate.fail_on_reject", "override evaluate.fail_on_reject (true/false)"),
)
# Commands without a run of their own, and main: (help, loads a config).
TOOLS = {
    "lineage": "print the chain of runs behind a run or a registered model version",
    "history": "every promotion and rollback of the registered model, or the champion at a time",
    "reproduce": "rebuild a registered version from its record (commit, config, seeds, data) and compare",
    "init-config": "write configs/<name>.yaml for a table (needs no config and no tracking store)",
    "check-store": "check that the tracking store answers",
}


def _dest(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def _output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--result-file", default="", help="write the result as JSON to this path")
    parser.add_argument(
        "--json",
        nargs="?",
        const=True,
        default=False,
        type=_flag,
        metavar="true|false",
        help="print the result as JSON, as the last line of output (a bare --json means true; '' false)",
    )


def _config_options(parser: argparse.ArgumentParser, sections: tuple[str, ...] = ()) -> None:
    """--config, --set and the override options of these config sections (--engine always)."""
    parser.add_argument("--config", default="", help="config file (default configs/pipeline.yaml)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set tune.seed=7 (repeatable)",
    )
    for flag, key, help_text in OVERRIDES:
        if key == "engine" or key.split(".")[0] in sections:
            parser.add_argument(flag, default="", help=help_text)
    _output_options(parser)


def _step_options(parser: argparse.ArgumentParser, options) -> None:
    for option in options:
        metavar = _dest(option.flag).upper()
        parser.add_argument(
            option.flag, *option.also, dest=option.keyword, default="", metavar=metavar, help=option.help
        )


def _chain_id_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chain-id", default="", help="tag the run(s) with this pipeline.chain_id (orchestrators)")


def _add_steps(commands) -> None:
    """main and every step of the contract, each with its own options only."""
    from pipeline.contract import CHAIN, CHAIN_OPTIONS, MAIN_STEP, STEPS

    main = commands.add_parser(MAIN_STEP, help="the whole chain in one process, reusing finished steps")
    _config_options(main, tuple(section for step in CHAIN for section in step.config_sections))
    _step_options(main, CHAIN_OPTIONS)
    main.add_argument(
        "--force",
        default="",
        help="recompute these steps (comma-separated, or all) instead of reusing finished runs with the same "
        "fingerprint",
    )
    _chain_id_option(main)
    for step in STEPS.values():
        parser = commands.add_parser(step.name, help=step.help, description=step.help)
        _config_options(parser, step.config_sections)
        _step_options(parser, step.all_options)
        _chain_id_option(parser)


def _add_tools(commands) -> None:
    lineage = commands.add_parser("lineage", help=TOOLS["lineage"], description=TOOLS["lineage"])
    _config_options(lineage)
    lineage.add_argument("--run-id", default="", help="show the chain behind this run")
    lineage.add_argument("--alias", default="", help="model alias (default: the champion alias)")
    lineage.add_argument("--version", default="", help="model version instead of an alias")
    history = commands.add_parser("history", help=TOOLS["history"], description=TOOLS["history"])
    _config_options(history)
    history.add_argument("--name", default="", help="the registered model (default: registry.model_name)")
    history.add_argument("--at", default="", help="the champion at this time (ISO 8601; no zone = UTC)")
    reproduce = commands.add_parser("reproduce", help=TOOLS["reproduce"], description=TOOLS["reproduce"])
    _config_options(reproduce)
    reproduce.add_argument("--model", default="", help="the registered model (default: registry.model_name)")
    reproduce.add_argument("--version", default="", help="the version to rebuild")
    reproduce.add_argument("--run-id", default="", help="a train run to rebuild, instead of a version")
    for flag, said in (
        ("--allow-dirty", "run the current tree when the recorded commit is missing or was dirty"),
        ("--register", "register the rebuilt model under the model itself (default: not registered)"),
    ):
        reproduce.add_argument(flag, nargs="?", const=True, default=False, type=_flag, metavar="true|false", help=said)
    init = commands.add_parser("init-config", help=TOOLS["init-config"], description=TOOLS["init-config"])
    init.add_argument("--source", default="", help="the table (CSV/Parquet, URL, s3://, SQL)")
    init.add_argument("--target", default="", help="the column to predict")
    init.add_argument("--name", default="", help="config name (default: the source file's stem)")
    init.add_argument("--query", default="", help="SQL source: the SELECT to run")
    init.add_argument("--table", default="", help="SQL source: the table to read")
    init.add_argument("--overwrite", action="store_true", help="replace an existing config file")
    _output_options(init)
    _output_options(commands.add_parser("check-store", help=TOOLS["check-store"], description=TOOLS["check-store"]))


def build_parser() -> argparse.ArgumentParser:
    """`python -m pipeline COMMAND [options]`: one sub-command per step (from the contract), main and the tools;
    `python -m pipeline COMMAND --help` lists that command's options only."""
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_steps(commands)
    _add_tools(commands)
    for command in commands.choices.values():  # `predict --model x` is an error, not `--model-version x`
        command.allow_abbrev = False
    return parser


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def command_names(parser: argparse.ArgumentParser) -> list[str]:
    return list(_commands(parser))


def command_options(parser: argparse.ArgumentParser, command: str) -> set[str]:
    """The option flags of one sub-command (for the documents' checks)."""
    return {flag for action in _commands(parser)[command]._actions for flag in action.option_strings}


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
    for flag, key, _ in OVERRIDES:
        if (value := getattr(args, _dest(flag), "")) != "":
            overrides[key] = value
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
    context = RunContext(launcher_run_id=launcher_run_id, chain_id=getattr(args, "chain_id", "") or None)
    handler = COMMANDS.get(args.command, _run_step)
    result = handler(config, args, context)
    if isinstance(result, dict):  # main, lineage and history report for themselves
        return result
    fill_model_aliases(MlflowClient(), [result])
    logger.success("{} run {} finished", result.step, result.run_id)
    return result.to_dict()


def _main(config, args: argparse.Namespace, context) -> dict[str, Any]:
    from pipeline.contract import CHAIN_OPTIONS
    from pipeline.steps import chain

    force = [step.strip() for step in args.force.split(",") if step.strip()]
    values = {option.keyword: getattr(args, option.keyword) or None for option in CHAIN_OPTIONS}
    result = chain.run_chain(
        config, launcher_run_id=context.launcher_run_id, chain_id=args.chain_id or None, force=force, **values
    )
    logger.success(chain.summary(result))
    return result.to_dict()


def _run_step(config, args: argparse.Namespace, context):
    """Any step of the contract: its options, as parsed, handed to its module's `run(...)`."""
    from pipeline.steps.calls import call_step

    return call_step(args.command, config, vars(args), context)


def _lineage(config, args: argparse.Namespace, context) -> dict[str, Any]:
    from pipeline.steps import lineage

    return lineage.run(config, run_id=args.run_id or None, alias=args.alias or None, version=args.version or None)


def _history(config, args: argparse.Namespace, context) -> dict[str, Any]:
    from pipeline.steps import history

    result = history.run(config, name=args.name or None, at=args.at or None)
    if not args.json:  # --json: the JSON line alone, for machines
        print(history.render(result), flush=True)
    return result


def _reproduce(config, args: argparse.Namespace, context) -> dict[str, Any]:
    from pipeline.steps import reproduce

    return reproduce.run(
        config,
        model=args.model or None,
        version=args.version or None,
        run_id=args.run_id or None,
        allow_dirty=bool(args.allow_dirty),
        register=bool(args.register),
    )


def _init_config(args: argparse.Namespace, launcher_run_id: str | None) -> dict[str, Any]:
    """init-config writes a config: no config to load, no tracking store to check."""
    from pipeline.steps import init_config

    if not args.source or not args.target:
        raise ConfigError("init-config needs --source and --target")
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


# Commands that load a config and are not a step of the contract (a step goes through `_run_step`):
# handler(config, args, context) -> a finished result dict.
COMMANDS: dict[str, Callable[..., Any]] = {
    "main": _main,
    "lineage": _lineage,
    "history": _history,
    "reproduce": _reproduce,
}


def _check_store(args: argparse.Namespace, launcher_run_id: str | None) -> dict[str, Any]:
    """What every command checks first, alone: the tracking store opens (`make run` calls it before `mlflow run`,
    whose launcher would retry a wrong database for about 100 s)."""
    import mlflow

    from pipeline.masking import mask_url
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
        result, code = LOCAL_COMMANDS.get(args.command, _step)(args, launcher_run_id), 0
    except PipelineError as exc:
        logger.error("{}", exc)
        result, code = _failure(args.command, exc, exc.exit_code), exc.exit_code
    except BaseException as exc:
        if interrupts.was_interrupted(exc):
            logger.error("{} interrupted: {}", args.command, interrupts.describe(exc))
            result, code = _failure(args.command, exc, 130), 130
        elif isinstance(exc, Exception):
            logger.opt(exception=exc).error("{} failed unexpectedly: {}", args.command, exc)
            result, code = _failure(args.command, exc, 1), 1
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
        **getattr(exc, "details", {}),  # what the error adds (DriftAlert: the columns that drifted)
    }
