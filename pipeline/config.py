"""Pipeline configuration: `configs/pipeline.yaml` validated once by pydantic, with dotted-key overrides.

The YAML is the one place defaults live: the models below hold types and bounds, and a default only where a key is
optional and absent from configs/pipeline.yaml (a SQL source's query/table, a search dimension's `log`), so a key
missing from a config is an error naming it, never a second, silent default (tests/unit/test_config.py checks)."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any, Literal, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.data.source_text import source_kind
from pipeline.errors import ConfigError
from pipeline.masking import mask_source, mask_url

DEFAULT_CONFIG_PATH = Path("configs/pipeline.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LeakageConfig(_Strict):
    """preprocess's single-feature leakage check (pipeline/data/leakage.py)."""

    threshold: float = Field(gt=0, le=1)  # a feature scoring at least this alone (ROC AUC, R²) is suspect
    action: Literal["warn", "fail", "drop"]


class DataConfig(_Strict):
    source: str = Field(min_length=1)
    # A SQL source (`source` a SQLAlchemy URL): the SELECT to run, or a table to read whole (one of the two).
    query: str | None = Field(default=None, min_length=1)
    table: str | None = Field(default=None, min_length=1)
    target: str = Field(min_length=1)
    task: Literal["auto", "binary", "multiclass", "regression"]
    positive_class: str | bool | int | float | None
    # Rows whose target is empty: dropped before the split (counted: metric n_rows_no_target), or refused.
    missing_target: Literal["fail", "drop"]
    id_columns: list[str]
    features: list[str] | None = Field(min_length=1)
    datetime_columns: list[str]
    categorical_columns: list[str]
    # engine: dask: where preprocess writes the splits instead of the run's artifacts (an object-store prefix every
    # worker can reach); the run records the location.
    output_uri: str | None = Field(min_length=1)
    leakage: LeakageConfig

    @classmethod
    def whole_table(cls, source: str, target: str, **settings: Any) -> DataConfig:
        """The source read as it is (every column a feature, no ids, the task inferred), as init-config inspects a
        table before any config exists for it; `settings` set other keys of the section."""
        as_it_is: dict[str, Any] = {
            "task": "auto",
            "positive_class": None,
            "missing_target": "drop",
            "id_columns": [],
            "features": None,
            "datetime_columns": [],
            "categorical_columns": [],
            "output_uri": None,
            "leakage": {"threshold": 0.98, "action": "warn"},
        }
        return cls.model_validate({**as_it_is, "source": source, "target": target, **settings})

    @model_validator(mode="after")
    def _target_is_no_feature(self) -> DataConfig:
        named = [*self.id_columns, *(self.features or []), *self.datetime_columns, *self.categorical_columns]
        if self.target in named:
            raise ValueError(
                f"the target '{self.target}' cannot also be an id, feature, datetime or categorical column"
            )
        if both := sorted(set(self.datetime_columns) & set(self.categorical_columns)):
            raise ValueError(f"column(s) {', '.join(both)} cannot be both datetime and categorical columns")
        return self

    @model_validator(mode="after")
    def _query_or_table_for_sql(self) -> DataConfig:
        given = [f"data.{key}" for key in ("query", "table") if getattr(self, key) is not None]
        database = source_kind(self.source) == "sql"
        if database and len(given) != 1:
            raise ValueError(
                "a database source (data.source is a SQLAlchemy URL) needs exactly one of `data.query` "
                f"and `data.table`{' (both are set)' if given else ''}"
            )
        if not database and given:
            raise ValueError(
                f"`{given[0]}` applies only when data.source is a database URL (postgresql://, sqlite:///, ...)"
            )
        return self


class FeaturesConfig(_Strict):
    derived: bool
    # The feature hook: a Python file defining `derive_features(frame) -> frame`, relative to the project folder
    # (or absolute). It runs in preprocess and travels inside the registered model.
    hook: str = Field(min_length=1)


# An ISO 8601 duration of fixed length: weeks, days, hours, minutes, seconds (P7D, PT12H, P1W2D); no years or months.
_DURATION = re.compile(r"^P(?=\d|T\d)(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")


class SplitConfig(_Strict):
    method: Literal["random", "time"]
    # method time: the date/time column that orders the rows; the test split is its latest rows.
    time_column: str | None = Field(min_length=1)
    test_start: str | None  # method time: rows at or after this time (ISO 8601) are the test split
    gap: str | None  # method time: an ISO 8601 duration (P7D) of rows left out before the test split
    test_size: float = Field(gt=0, lt=1)
    validation_size: float = Field(gt=0, lt=1)
    seed: int
    stratify: bool

    @field_validator("test_start", mode="before")
    @classmethod
    def _iso_time(cls, value: Any) -> Any:
        if isinstance(value, datetime.date):  # YAML reads an unquoted 2015-01-01 as a date
            return value.isoformat()
        if value is not None:
            try:
                datetime.datetime.fromisoformat(str(value))
            except ValueError:
                raise ValueError(f"'{value}' is not an ISO 8601 date or time (e.g. 2015-01-01)") from None
        return value

    @field_validator("gap")
    @classmethod
    def _fixed_duration(cls, value: str | None) -> str | None:
        if value is not None and not _DURATION.match(value):
            raise ValueError(f"'{value}' is not an ISO 8601 duration in weeks, days or hours (e.g. P7D, PT12H)")
        return value

    @model_validator(mode="after")
    def _time_keys_with_time_method(self) -> SplitConfig:
        if self.method == "time" and self.time_column is None:
            raise ValueError("split.method: time needs `split.time_column`, the date/time column that orders rows")
        given = [f"split.{key}" for key in ("time_column", "test_start", "gap") if getattr(self, key) is not None]
        if self.method != "time" and given:
            raise ValueError(f"`{given[0]}` applies only with split.method: time")
        return self


class SearchDimension(_Strict):
    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    choices: list[Any] | None = None
    # Drawn only when each named dimension (one with `choices` and no `when` of its own) drew that value (or one of a
    # list), e.g. max_leaves only for grow_policy lossguide; otherwise XGBoost's default applies.
    when: dict[str, list[Any]] | None = None

    @field_validator("when", mode="before")
    @classmethod
    def _wanted_as_lists(cls, value: Any) -> Any:
        # `{grow_policy: lossguide}` means `{grow_policy: [lossguide]}`: one form for the checks and the draw.
        if isinstance(value, dict):
            return {name: wanted if isinstance(wanted, list) else [wanted] for name, wanted in value.items()}
        return value

    @model_validator(mode="after")
    def _range_or_choices(self) -> SearchDimension:
        if self.choices is not None:
            if self.low is not None or self.high is not None or not self.choices:
                raise ValueError("give either non-empty `choices` or `low`/`high`, not both")
        elif self.low is None or self.high is None or self.low >= self.high:
            raise ValueError("needs `low` < `high` (or `choices`)")
        elif self.log and self.low <= 0:
            raise ValueError("a log-scaled range needs `low` > 0")
        return self

    @property
    def is_int(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int) and not isinstance(self.low, bool)


class PrunerConfig(_Strict):
    type: Literal["none", "median", "successive_halving", "hyperband"]
    startup_trials: int = Field(ge=0)
    warmup_rounds: int = Field(ge=0)
    report_every: int = Field(ge=1)


def _word_or_count(value: Any, words: tuple[str, ...], low: int, high: int, what: str) -> Any:
    """One message for both members of a union of words and a whole number from low to high."""
    if value in words or (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
        return value
    raise ValueError(f"{value!r}: give {', '.join(words)} or a number of {what} from {low} to {high}")


START_POINTS_HINT = "tune.start_points takes points of this search space, or [] for none"


def _outside(space: dict[str, SearchDimension], name: str, value: object) -> str | None:
    """Why a start point's value for `name` is not in that dimension of the search space, or None when it is."""
    dimension = space.get(name)
    if dimension is None:
        return f"not a dimension of tune.search_space ({', '.join(space)})"
    if dimension.choices is not None:
        return None if value in dimension.choices else f"{value!r} is not one of its choices {dimension.choices}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{value!r} is not a number"
    if not cast(float, dimension.low) <= value <= cast(float, dimension.high) or (
        dimension.is_int and value != int(value)
    ):
        kind = "a whole number" if dimension.is_int else "a number"
        return f"{value!r} is not {kind} from {dimension.low} to {dimension.high}"
    return None


class TuneConfig(_Strict):
    n_trials: int = Field(ge=1)
    timeout_s: float | None = Field(gt=0)
    n_jobs: int = Field(ge=1)
    threads_per_trial: int | None = Field(ge=1)
    seed: int
    # auto = logloss for classification, rmse for regression (pipeline.tuning.study.resolve_metric).
    metric: Literal["auto", "logloss", "auc", "aucpr", "error", "rmse", "mae", "mape", "rmsle"]
    max_boosting_rounds: int = Field(ge=1)
    early_stopping_rounds: int = Field(ge=1)
    pruner: PrunerConfig
    storage: str | None
    study_name: str | None
    heartbeat_s: int = Field(ge=1)
    # engine: dask: trials train on a random sample of this many rows of the train split (null: all of it).
    sample_rows: int | None = Field(ge=100)
    # Folds each trial validates on (engine local): auto (5 with a timeout_s on a train split of at most 10,000
    # rows, else the holdout), none (the split.validation_size holdout), or a number of folds.
    cv: Literal["auto", "none"] | int
    # The final model as an ensemble of the best trials chosen on their held-out predictions
    # (pipeline/tuning/ensemble.py): auto (20 selection rounds after a search with tune.timeout_s on a train split of
    # at most 100,000 rows, else the best trial alone), none (the best trial alone), or a number of rounds.
    ensemble: Literal["auto", "none"] | int
    search_space: dict[str, SearchDimension] = Field(min_length=1)
    # Points of the search space tried first, in order (a fresh study only); a dimension a point leaves out is
    # sampled as usual.
    start_points: list[dict[str, int | float | str | bool]]

    @field_validator("cv", mode="before")
    @classmethod
    def _fold_count(cls, value: Any) -> Any:
        return _word_or_count(value, ("auto", "none"), 2, 20, "folds")

    @field_validator("ensemble", mode="before")
    @classmethod
    def _selection_rounds(cls, value: Any) -> Any:
        return _word_or_count(value, ("auto", "none"), 1, 100, "selection rounds")

    @model_validator(mode="after")
    def _conditions_on_choices(self) -> TuneConfig:
        for name, dimension in self.search_space.items():
            for other, wanted in (dimension.when or {}).items():
                where = f"search_space.{name}.when.{other}"
                parent = self.search_space.get(other)
                if parent is None or parent.choices is None or parent.when is not None:
                    raise ValueError(f"{where}: needs a dimension of tune.search_space with `choices` and no `when`")
                for value in wanted:
                    if value not in parent.choices:
                        raise ValueError(f"{where}: {value!r} is not one of its choices {parent.choices}")
        return self

    @model_validator(mode="after")
    def _start_points_in_space(self) -> TuneConfig:
        for number, point in enumerate(self.start_points):
            for name, value in point.items():
                problem = _outside(self.search_space, name, value)
                if problem:
                    # The shipped points reach configs that extend pipeline.yaml and narrow its space.
                    raise ValueError(f"start_points[{number}].{name}: {problem} ({START_POINTS_HINT})")
                if self.search_space[name].is_int:
                    point[name] = int(value)  # 4.0 from YAML: Optuna's int dimension wants 4
        return self


class TrainConfig(_Strict):
    fixed_params: dict[str, Any]
    # balanced: sample weights by inverse class frequency in tune's trials and train's fits (classification).
    class_weight: Literal["none", "balanced"]
    # Models of the tuned params, each with its own sampling seed, averaged into the registered model
    # (pipeline/modeling/bagging.py): auto (10 after a search with tune.timeout_s on a train split of at most 100,000
    # rows on engine local, 20 shared out among the trials of an ensemble (tune.ensemble), else 1) or a number.
    bag: Literal["auto"] | int

    @field_validator("bag", mode="before")
    @classmethod
    def _bag_size(cls, value: Any) -> Any:
        return _word_or_count(value, ("auto",), 1, 100, "models")

    @field_validator("fixed_params")
    @classmethod
    def _one_seed_name(cls, value: dict[str, Any]) -> dict[str, Any]:
        # XGBoost reads `seed` as another name for `random_state`, the one the pipeline varies (train.bag's members
        # count up from it): kept under one name, or every member would get the same fixed seed.
        if "seed" not in value:
            return value
        if "random_state" in value:
            raise ValueError("give seed or random_state (the same XGBoost setting), not both")
        return {("random_state" if key == "seed" else key): item for key, item in value.items()}


class CostConfig(_Strict):
    false_positive: float = Field(gt=0)
    false_negative: float = Field(gt=0)


class ThresholdRule(_Strict):
    """How the binary threshold is chosen on held-out predictions: exactly one of the keys."""

    optimize: Literal["f1", "balanced_accuracy", "youden"] | None = None
    cost: CostConfig | None = None  # minimise expected cost
    precision_at_least: float | None = Field(default=None, gt=0, le=1)  # the best recall under the constraint
    recall_at_least: float | None = Field(default=None, gt=0, le=1)  # the best precision under the constraint

    @model_validator(mode="after")
    def _one_rule(self) -> ThresholdRule:
        given = [key for key in type(self).model_fields if getattr(self, key) is not None]
        if len(given) != 1:
            keys = ", ".join(type(self).model_fields)
            raise ValueError(f"give exactly one of {keys} ({', '.join(given) or 'none'} given)")
        return self

    @property
    def kind(self) -> str:
        return next(key for key in type(self).model_fields if getattr(self, key) is not None)


class DecisionConfig(_Strict):
    """The operating point stored inside the registered model (pipeline/modeling/decision.py)."""

    # binary: a probability (the positive label when the positive class's probability reaches it), or a rule
    # choosing it on held-out predictions of the train split.
    threshold: float | ThresholdRule
    calibration: Literal["none", "isotonic", "sigmoid"]
    folds: int = Field(ge=2, le=20)  # the held-out predictions: out-of-fold, this many folds of the train split

    @field_validator("threshold", mode="before")
    @classmethod
    def _number_or_rule(cls, value: Any) -> Any:
        # One message naming the rule's own key, rather than pydantic's errors for each member of the union.
        if isinstance(value, dict):
            try:
                return ThresholdRule.model_validate(value)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
                raise ValueError(f"{where + ': ' if where else ''}{message.removeprefix('Value error, ')}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float, ThresholdRule)):
            raise ValueError(
                f"{value!r} is neither a probability (0.5) nor a rule ({{optimize: f1 | balanced_accuracy | youden}}, "
                "{cost: {false_positive: 1, false_negative: 10}}, {precision_at_least: 0.9}, {recall_at_least: 0.8})"
            )
        return value

    @field_validator("threshold")
    @classmethod
    def _probability(cls, value: float | ThresholdRule) -> float | ThresholdRule:
        if isinstance(value, float) and not 0 < value < 1:
            raise ValueError(f"{value} is no probability strictly between 0 and 1")
        return value

    @property
    def needs_held_out(self) -> bool:
        """Whether the threshold or the calibration is learnt from held-out predictions."""
        return isinstance(self.threshold, ThresholdRule) or self.calibration != "none"


class RegistryConfig(_Strict):
    model_name: str = Field(min_length=1)
    challenger_alias: str = Field(min_length=1)
    champion_alias: str = Field(min_length=1)
    previous_champion_alias: str = Field(min_length=1)
    description: str | None = Field(min_length=1)  # the model card's intended use

    @field_validator("model_name")
    @classmethod
    def _name_is_searchable(cls, name: str) -> str:
        if "'" in name and '"' in name:  # see tracking.lookup.quoted
            raise ValueError("a name holding both ' and \" cannot be matched by MLflow's search filters")
        return name


def lower_is_better(metric: str) -> bool:
    """Errors, losses and Brier scores go down, scores go up (MLflow's metric names: mean_absolute_error, log_loss,
    r2_score; brier_score)."""
    return any(word in metric for word in ("error", "loss", "brier"))


class MetricGate(_Strict):
    threshold: float
    greater_is_better: bool | None = None  # None: inferred from the name (errors and losses: lower is better)

    def higher_is_better(self, metric: str) -> bool:
        return self.greater_is_better if self.greater_is_better is not None else not lower_is_better(metric)


class TaskGates(_Strict):
    """Gates for one task, on metrics of mlflow.models.evaluate."""

    thresholds: dict[str, MetricGate]
    compare_metric: str = Field(min_length=1)


class EvaluateConfig(_Strict):
    binary: TaskGates
    multiclass: TaskGates
    regression: TaskGates
    min_relative_improvement: float = Field(ge=0, le=1)
    fail_on_reject: bool
    # engine: dask: rows of the test split mlflow.models.evaluate scores for its plots (the gates use metrics of the
    # whole split, computed on the cluster).
    sample_rows: int = Field(ge=100)

    def gates(self, task: str) -> TaskGates:
        return getattr(self, task)


class MonitorConfig(_Strict):
    """Drift of a batch from the model's reference profile (pipeline/modeling/profile.py): predict and monitor."""

    psi_warn: float = Field(gt=0)
    psi_alert: float = Field(gt=0)
    on_drift: Literal["warn", "fail"]  # fail: exit 6 (DriftAlert) when a column reaches psi_alert
    min_rows: int = Field(ge=1)  # fewer rows in the batch: no verdict

    @model_validator(mode="after")
    def _warn_below_alert(self) -> MonitorConfig:
        if self.psi_warn > self.psi_alert:
            raise ValueError(f"psi_warn {self.psi_warn} must not exceed psi_alert {self.psi_alert}")
        return self


class CacheConfig(_Strict):
    enabled: bool
    claim_wait_s: float = Field(ge=0)


class DaskConfig(_Strict):
    scheduler: str | None = Field(min_length=1)  # None: a LocalCluster the step starts and stops
    n_workers: int = Field(ge=1)
    threads_per_worker: int = Field(ge=1)
    memory_limit: str = Field(min_length=1)
    timeout_s: float = Field(gt=0)


class PipelineConfig(_Strict):
    experiment: str = Field(min_length=1)
    engine: str  # one of pipeline.engines.ENGINES (the packages of pipeline/engines/)
    dask: DaskConfig
    data: DataConfig
    features: FeaturesConfig
    split: SplitConfig
    tune: TuneConfig
    train: TrainConfig
    decision: DecisionConfig
    registry: RegistryConfig
    evaluate: EvaluateConfig
    monitor: MonitorConfig
    cache: CacheConfig

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, engine: str) -> str:
        from pipeline.engines import ENGINES

        if engine not in ENGINES:
            raise ValueError(f"unknown engine '{engine}' (choose from {', '.join(ENGINES)})")
        return engine

    @model_validator(mode="after")
    def _time_column_is_no_target(self) -> PipelineConfig:
        if self.split.time_column is not None and self.split.time_column == self.data.target:
            raise ValueError(f"split.time_column cannot be the target '{self.data.target}'")
        return self


def _describe(error: ValidationError) -> str:
    missing = [".".join(str(part) for part in item["loc"]) for item in error.errors() if item["type"] == "missing"]
    if len(missing) > 1:  # e.g. a config written from scratch: name every key it lacks at once
        return (
            f"missing keys {', '.join(f'`{key}`' for key in missing)}: every key is required (copy them from "
            "the shipped configs/pipeline.yaml, or start the file with `extends: pipeline.yaml`)"
        )
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "<root>"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"`{key}`: {message}{more}"


def _parse_scalar(text: str) -> Any:
    # YAML rules so that `--set split.test_size=0.3` and `--set features.derived=false` get their types.
    if text == "":
        return ""
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, ValueError):  # ValueError: a date-like text YAML cannot read (2015-13-01)
        return text  # not YAML: keep the string, validation names the key if a string does not fit


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `raw` with each dotted key (e.g. `tune.n_trials`) set to its value."""
    merged = yaml.safe_load(yaml.safe_dump(raw))
    for dotted, value in overrides.items():
        node = merged
        *parents, leaf = dotted.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"config override `{dotted}`: `{part}` is not a section of the config")
            node = node[part]
        node[leaf] = _parse_scalar(value) if isinstance(value, str) else value
    return merged


def _read_yaml(config_path: Path) -> dict[str, Any]:
    if not config_path.is_file():
        raise ConfigError(f"config file {config_path} not found (pass --config / -P config=PATH)")
    try:
        raw = yaml.safe_load(config_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {config_path} is not valid YAML: {exc}".splitlines()[0]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {config_path} is not a text file") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {config_path} must hold a mapping of sections")
    return raw


# Mappings a variant replaces whole rather than merges into: a threshold rule holds exactly one key, so a variant's
# {cost: ...} over a base's {optimize: f1} is the variant's rule, not both.
_REPLACED_WHOLE = {("decision", "threshold")}


def _deep_merge(base: dict[str, Any], changes: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if value is None and isinstance(base.get(key), dict):  # `gate: null` removes the base's gate (or dimension)
            merged.pop(key)
            continue
        both_sections = isinstance(value, dict) and isinstance(base.get(key), dict)
        if both_sections and (*path, key) not in _REPLACED_WHOLE:
            merged[key] = _deep_merge(base[key], value, (*path, key))
        else:
            merged[key] = value
    return merged


def read_config_file(config_path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file as a mapping; `extends: <file>` (relative to it) takes that file's values as the base, so a
    variant config states only what differs. Sections merge key by key; other values replace the base's, and null
    in place of a mapping of the base removes it (`accuracy_score: null` under a task's `thresholds` drops that
    gate, `max_depth: null` under `tune.search_space` that dimension)."""
    raw = _read_yaml(config_path)
    base_name = raw.pop("extends", None)
    if base_name is None:
        return raw
    base_path = (config_path.parent / str(base_name)).resolve()
    if base_path in seen or base_path == config_path.resolve():
        raise ConfigError(f"config file {config_path}: `extends` makes a loop through {base_path.name}")
    return _deep_merge(read_config_file(base_path, (*seen, config_path.resolve())), raw)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Read, override and validate the config; every problem is a ConfigError naming the key."""
    config_path = Path(path) if path else DEFAULT_CONFIG_PATH
    raw = read_config_file(config_path)
    try:
        return PipelineConfig.model_validate(apply_overrides(raw, overrides or {}))
    except ValidationError as exc:
        raise ConfigError(f"invalid config {config_path}: {_describe(exc)}") from exc


def config_as_dict(config: PipelineConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")


def loggable_config(config: PipelineConfig) -> dict[str, Any]:
    """The resolved config with secrets masked, for run artifacts."""
    resolved = config_as_dict(config)
    resolved["tune"]["storage"] = mask_url(resolved["tune"]["storage"])
    resolved["data"]["source"] = mask_source(resolved["data"]["source"])
    resolved["dask"]["scheduler"] = mask_source(resolved["dask"]["scheduler"] or "") or None
    return resolved
