"""Calling a step from option values, as the CLI and `main` do: the step's contract entry (`pipeline.contract`)
says which options it takes, which are required and how each is read; its module's `run(...)` gets them as
keywords. "" or None means "not given" (what MLproject passes for a parameter the user did not set)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.contract import STEPS, Option, Step
from pipeline.errors import ConfigError
from pipeline.results import StepResult
from pipeline.tracking.runs import RunContext


def _read(option: Option, text: Any) -> Any:
    if option.kind == "positive_int":
        if not str(text).isdigit() or int(text) < 1:
            raise ConfigError(f"{option.flag} must be a positive integer, got '{text}'")
        return int(text)
    return text


def step_keywords(step: Step, values: Mapping[str, Any]) -> dict[str, Any]:
    """`run(...)`'s keywords from option values by keyword (missing or "" -> None); a required option not given is
    a ConfigError naming every required option of the step."""
    given = {option.keyword: values.get(option.keyword) for option in step.all_options}
    given = {keyword: None if value in ("", None) else value for keyword, value in given.items()}
    required = [option for option in step.options if option.required]
    if any(given[option.keyword] is None for option in required):
        flags = " and ".join(option.flag for option in required)
        mlproject = " ".join(f"-P {option.flag.removeprefix('--')}=..." for option in required)
        raise ConfigError(f"{step.name} needs {flags} ({mlproject})")
    return {
        option.keyword: _read(option, given[option.keyword])
        for option in step.all_options
        if given[option.keyword] is not None
    }


def call_step(name: str, config: PipelineConfig, values: Mapping[str, Any], context: RunContext) -> StepResult:
    """Run the step `name` with these option values (its module imported only now: a command that does not run a
    step never imports XGBoost or Optuna)."""
    step = STEPS[name]
    keywords = step_keywords(step, values)
    return importlib.import_module(step.module).run(config, context=context, **keywords)
