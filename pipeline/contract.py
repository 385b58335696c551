"""The pipeline's contract, declared once: the steps, what each reads and writes, and every tag it sets.

A step run is found by its `pipeline.step` tag, reads the newest FINISHED run of its upstream step (or a pinned
one) and records every run it consumed as `pipeline.upstream.<step>`. Its fingerprint hashes its code, its
`config_sections` and those upstream run ids. docs/design.md explains the rules; this module is what the code (chain,
cache, CLI, lineage view, registry) and the doc-consistency tests derive from. A new step, tag or artifact is added
here first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# --- tags on runs ---------------------------------------------------------------------------------------------------
STEP_TAG = "pipeline.step"  # the step (or `main`) that made the run: the lookup key
UPSTREAM_TAG_PREFIX = "pipeline.upstream."  # + step name: the run of that step this run consumed
CHAIN_TAG = "pipeline.chain_id"  # the chain (main run, or an orchestrator's id) the run belongs to
FINGERPRINT_TAG = "pipeline.fingerprint"  # code + config sections + upstream runs + input data: reuse key of `main`
CLAIM_TICKET_TAG = "pipeline.claim_ticket"  # under `main`: the order in which chains claimed the same fingerprint
DATA_DIGEST_TAG = "pipeline.data_digest"  # preprocess: content digest of the splits
TASK_TAG = "pipeline.task"  # preprocess: binary, multiclass or regression
SOURCE_DIGEST_TAG = "pipeline.source_digest"  # preprocess: data.source's content digest (when it can be known)
REPRODUCES_TAG = "pipeline.reproduces"  # a run `reproduce` made: the id of the run it rebuilt
VERDICT_TAG = "pipeline.verdict"  # evaluate: promoted / rejected / ...
VERDICT_REASON_TAG = "pipeline.verdict_reason"
PROMOTION_TAG = "pipeline.promotion"  # evaluate, when it moved @champion: JSON from, to, by, at (the promotion log)
ERROR_TAG = "pipeline.error"  # a failed run: the one-line error
GIT_DIRTY_TAG = "pipeline.git_dirty"  # every step run from a git checkout: true when tracked files differ from HEAD
MODEL_NAME_TAG = "pipeline.model.name"  # train, evaluate, predict, rollback: the registered model made or used
MODEL_VERSION_TAG = "pipeline.model.version"

# --- tags on registered model versions and models -------------------------------------------------------------------
PREVIOUS_CHAMPION_TAG = "pipeline.previous_champion"  # version: the champion it replaced (rollback's target)
ROLLED_BACK_TAG = "pipeline.rolled_back"  # version: why it stopped being the champion
LAST_ROLLBACK_TAG = "pipeline.last_rollback"  # registered model: the last rollback, as JSON
MODEL_CARD_TAG = "pipeline.model_card"  # version: where its current model card is (runs:/<run id>/model_card.md)


# train's test metric that the chain's summary, the registered version's description and the README quote, by task.
HEADLINE_METRIC = {"binary": "test_roc_auc", "multiclass": "test_roc_auc", "regression": "test_rmse"}
# preprocess's params on suspected leaks (the features named, and data.leakage.action), which its run note and the
# description train gives the model version read back.
SUSPECT_FEATURES_PARAM = "data.suspect_features"
LEAKAGE_ACTION_PARAM = "data.leakage.action"
# tune's param giving its time budget, logged only when it had one: train's `bag: auto` reads it.
TIMED_SEARCH_PARAM = "tune.timeout_s"
# train.bag auto and tune.ensemble auto average models only on train splits up to this many rows: beyond it a fit
# costs more than the luck an average removes (the variance shrinks with the rows, the cost grows with them).
AUTO_FINAL_MODEL_MAX_ROWS = 100_000

# preprocess on engine dask with data.output_uri: + split name (train, test): where that split was written.
SPLIT_URI_TAG_PREFIX = "pipeline.split_uri."


def split_uri_tag(split: str) -> str:
    return f"{SPLIT_URI_TAG_PREFIX}{split}"


def upstream_tag(step: str) -> str:
    return f"{UPSTREAM_TAG_PREFIX}{step}"


def version_run_tag(step: str) -> str:
    """Tag of a registered version naming the `step` run behind it (`pipeline.train_run`, `pipeline.evaluate_run`)."""
    return f"pipeline.{step}_run"


# --- artifacts ------------------------------------------------------------------------------------------------------
RESOLVED_CONFIG_ARTIFACT = "config/resolved.yaml"  # every run: the config it ran with, secrets masked
LOGS_DIR = "logs"  # every step run: logs/<step>.log
TRAIN_ARTIFACT = "data/train.parquet"
TEST_ARTIFACT = "data/test.parquet"
SCHEMA_ARTIFACT = "data/schema.json"
RAW_SAMPLE_ARTIFACT = "data/raw_sample.parquet"  # raw rows: the registered model's input example
HOOK_ARTIFACT = "data/feature_hook.py"  # the feature hook preprocess ran, packed into the model by train
PROFILE_ARTIFACT = "data/profile.json"  # train: the reference profile also stored inside the model
DRIFT_REPORT_ARTIFACT = "drift/report.json"  # predict and monitor: the batch's drift from the profile
DRIFT_PLOT_ARTIFACT = "plots/drift.png"  # predict and monitor: the worst columns, reference against batch
LEAKAGE_ARTIFACT = "data/leakage.json"  # preprocess: each feature's score alone, the suspects, test rows in train
BEST_PARAMS_ARTIFACT = "best_params.json"
ENSEMBLE_ARTIFACT = "ensemble.json"  # tune: the trials train averages, with weights and params (tune.ensemble)
OPTIMIZATION_HISTORY_ARTIFACT = "plots/optimization_history.png"
PARAM_IMPORTANCES_ARTIFACT = "plots/param_importances.png"  # when two or more trials completed
FEATURE_IMPORTANCE_ARTIFACT = "plots/feature_importance.png"  # train: XGBoost's gain per feature (when it split)
SHAP_SUMMARY_ARTIFACT = "plots/shap_summary.png"  # train, with the shap extra: TreeSHAP values of held-out rows
CALIBRATION_ARTIFACT = "plots/calibration.png"  # train and evaluate, classification: the reliability diagram
MODEL_ARTIFACT = "model"  # train: the name of its logged pyfunc model (raw rows in), registered as a version
LINEAGE_CARD_ARTIFACT = "lineage.md"
MODEL_CARD_ARTIFACT = "model_card.md"  # train (the card), evaluate (the card with its verdict appended)
PREDICTIONS_DIR = "predictions"
CHAIN_RECORD_ARTIFACT = "chain.json"  # main: every step's result


@dataclass(frozen=True)
class Option:
    """A command-line option of a step (`--eval-data`), passed to the step's `run(...)` as keyword `keyword`.

    "" (what MLproject passes for a parameter the user did not set) means "not given": `run` gets None."""

    flag: str
    help: str
    param: str = ""  # run()'s keyword when it is not the flag's name (`--input` -> input_path)
    kind: Literal["text", "positive_int"] = "text"
    required: bool = False  # the step refuses to start without it (one line naming every required option)
    chain: bool = False  # `main` takes it too and hands it to this step
    input_file: bool = False  # names a file whose content is part of the step's fingerprint (a data digest)
    also: tuple[str, ...] = ()  # other spellings of the flag (`--model-version` for `--version`)

    @property
    def keyword(self) -> str:
        return self.param or self.flag.removeprefix("--").replace("-", "_")


@dataclass(frozen=True)
class Output:
    """One entry of a step's result `outputs`, read back from its finished run: computed and reused results both
    come from here, so they are the same. Exactly one of the sources is set."""

    name: str
    artifact: str = ""  # `<artifact URI>/<path>`, or the location in `location_tag` when the run has that tag
    location_tag: str = ""
    run_artifact: str = ""  # `runs:/<run id>/<path>`
    param: str = ""  # the value of one of the run's params
    registered_model: bool = False  # the source of the version named by the run's model tags (`models:/m-...`)


@dataclass(frozen=True)
class Step:
    """A step that opens a run. `reads` is the upstream step it looks up (pinned or newest finished); `records`
    every step whose run it tags as `pipeline.upstream.<step>` (and whose run ids feed its fingerprint);
    `config_sections` the config it depends on (its fingerprint, and which override options it accepts), less the
    `unused_keys` it never reads (dotted, e.g. `train.bag`: left out of its fingerprint, so changing one does not
    recompute the step);
    `options` its own command-line options; `outputs` what its result lists; `key_params` / `key_metrics` what the
    lineage view shows of its run. Its module (`pipeline.steps.<name>`) holds `run(config, *, <options>,
    context)` and `note(run)`, the lines of its run's Description."""

    name: str
    reads: str | None
    records: tuple[str, ...]
    config_sections: tuple[str, ...]
    artifacts: tuple[str, ...]
    unused_keys: tuple[str, ...] = ()
    run_tags: tuple[str, ...] = ()
    version_tags: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    outputs: tuple[Output, ...] = ()
    key_params: tuple[str, ...] = ()
    key_metrics: tuple[str, ...] = ()
    source_input: bool = False  # reads `data.source`: its digest is part of the fingerprint
    help: str = ""

    @property
    def module(self) -> str:
        """The module whose `run(...)` does the step (and whose imports make the code part of its fingerprint)."""
        return f"pipeline.steps.{self.name}"

    @property
    def all_options(self) -> tuple[Option, ...]:
        """Every option its `run(...)` takes: the pinned upstream run for a step that reads one, then its own."""
        return ((UPSTREAM_OPTION,) if self.reads else ()) + self.options


UPSTREAM_OPTION = Option("--upstream-run-id", "pin the upstream run instead of the newest one")


EVAL_DATA_OPTION = Option(
    "--eval-data", "evaluate on this CSV/Parquet file instead of the test split", chain=True, input_file=True
)
CHAIN = (
    Step(
        "preprocess",
        reads=None,
        records=(),
        config_sections=("engine", "data", "features", "split"),
        artifacts=(
            TRAIN_ARTIFACT,
            TEST_ARTIFACT,
            SCHEMA_ARTIFACT,
            RAW_SAMPLE_ARTIFACT,
            HOOK_ARTIFACT,
            LEAKAGE_ARTIFACT,
        ),
        run_tags=(DATA_DIGEST_TAG, TASK_TAG, SOURCE_DIGEST_TAG),
        outputs=(
            Output("train", artifact=TRAIN_ARTIFACT, location_tag=split_uri_tag("train")),
            Output("test", artifact=TEST_ARTIFACT, location_tag=split_uri_tag("test")),
        ),
        key_params=("data.source", "data.task", "split.test_size", "split.seed"),
        key_metrics=("n_rows", "n_features", "n_train", "n_test"),
        source_input=True,
        help="load data.source, split it, type the columns and log the splits",
    ),
    Step(
        "tune",
        reads="preprocess",
        records=("preprocess",),
        config_sections=("engine", "data", "split", "tune", "train"),  # train: fixed_params and class_weight
        unused_keys=("train.bag",),
        artifacts=(BEST_PARAMS_ARTIFACT, ENSEMBLE_ARTIFACT, OPTIMIZATION_HISTORY_ARTIFACT, PARAM_IMPORTANCES_ARTIFACT),
        outputs=(
            Output("best_params", run_artifact=BEST_PARAMS_ARTIFACT),
            Output("ensemble", run_artifact=ENSEMBLE_ARTIFACT),
        ),
        key_params=("optuna.study_name", "n_estimators", "max_depth", "learning_rate"),
        key_metrics=("best_valid_logloss", "best_valid_rmse", "n_complete", "n_pruned"),
        help="Optuna search over XGBoost's hyper-parameters, one nested run per trial",
    ),
    Step(
        "train",
        reads="tune",
        records=("tune", "preprocess"),
        config_sections=("engine", "data", "train", "decision", "registry"),
        artifacts=(
            MODEL_ARTIFACT,
            FEATURE_IMPORTANCE_ARTIFACT,
            CALIBRATION_ARTIFACT,
            PROFILE_ARTIFACT,
            MODEL_CARD_ARTIFACT,
        ),
        run_tags=(MODEL_NAME_TAG, MODEL_VERSION_TAG),
        version_tags=(
            version_run_tag("train"),
            version_run_tag("tune"),
            version_run_tag("preprocess"),
            MODEL_CARD_TAG,
        ),
        outputs=(Output("model_uri", registered_model=True),),
        key_params=("n_estimators", "max_depth", "learning_rate", "decision.threshold"),
        key_metrics=("test_roc_auc", "test_accuracy", "test_rmse", "test_r2"),
        help="fit the final model with the tuned params, log it and register it as the challenger",
    ),
    Step(
        "evaluate",
        reads="train",
        records=("train", "preprocess"),
        config_sections=("engine", "data", "registry", "evaluate"),
        artifacts=(LINEAGE_CARD_ARTIFACT, CALIBRATION_ARTIFACT, MODEL_CARD_ARTIFACT),
        run_tags=(VERDICT_TAG, VERDICT_REASON_TAG, MODEL_NAME_TAG, MODEL_VERSION_TAG, PROMOTION_TAG),
        version_tags=(VERDICT_TAG, version_run_tag("evaluate"), PREVIOUS_CHAMPION_TAG, MODEL_CARD_TAG),
        options=(EVAL_DATA_OPTION,),
        key_metrics=(
            "roc_auc",
            "accuracy_score",
            "f1_score",
            "root_mean_squared_error",
            "r2_score",
            "champion_roc_auc",
            "champion_root_mean_squared_error",
        ),
        help="evaluate the challenger, gate it and promote it to champion when it passes",
    ),
)
# Commands that act on the registry rather than extend the chain (their runs carry a fingerprint too).
SIDE_STEPS = (
    Step(
        "predict",
        reads=None,
        records=(),
        config_sections=("engine", "features", "registry", "monitor"),
        artifacts=(PREDICTIONS_DIR, DRIFT_REPORT_ARTIFACT, DRIFT_PLOT_ARTIFACT),
        run_tags=(MODEL_NAME_TAG, MODEL_VERSION_TAG),
        options=(
            Option("--input", "CSV/Parquet file to score", param="input_path", required=True),
            Option("--output", "where to write the predictions (.csv/.parquet)", param="output_path", required=True),
            Option("--alias", "model alias (default: the champion alias)"),
            Option("--version", "model version instead of an alias", also=("--model-version",)),
            Option("--chunk-rows", "rows scored at a time (default 100000)", kind="positive_int"),
        ),
        outputs=(Output("predictions", param="predict.output"),),
        key_metrics=("n_rows", "drift_psi_max", "drift_n_alert"),
        help="score a file with a registered model version (the champion by default)",
    ),
    Step(
        "monitor",
        reads=None,
        records=(),
        config_sections=("engine", "features", "registry", "monitor"),
        artifacts=(DRIFT_REPORT_ARTIFACT, DRIFT_PLOT_ARTIFACT),
        run_tags=(MODEL_NAME_TAG, MODEL_VERSION_TAG),
        options=(
            Option("--input", "CSV/Parquet file of rows to compare", param="input_path", required=True),
            Option("--alias", "model alias (default: the champion alias)"),
            Option("--version", "model version instead of an alias", also=("--model-version",)),
            Option("--chunk-rows", "rows read at a time (default 100000)", kind="positive_int"),
        ),
        outputs=(Output("drift_report", run_artifact=DRIFT_REPORT_ARTIFACT),),
        key_metrics=("n_rows", "drift_psi_max", "drift_n_warn", "drift_n_alert"),
        help="compare a file's rows with a model version's reference profile (drift), without scoring to a file",
    ),
    Step(
        "rollback",
        reads=None,
        records=(),
        config_sections=("registry",),
        artifacts=(),
        run_tags=(MODEL_NAME_TAG, MODEL_VERSION_TAG),
        version_tags=(ROLLED_BACK_TAG, LAST_ROLLBACK_TAG),
        options=(Option("--reason", "why the champion is moved back (recorded)"),),
        outputs=(Output("rolled_back_from", param="rollback.from"),),
        help="move the champion alias back to the version it replaced",
    ),
)
MAIN_STEP = "main"  # the chain's own run (`pipeline.step` = main), artifacts CHAIN_RECORD_ARTIFACT
# The options of the chain's steps that `main` takes too and hands to them (evaluate's `--eval-data`).
CHAIN_OPTIONS = tuple(option for step in CHAIN for option in step.options if option.chain)

STEPS = {step.name: step for step in CHAIN + SIDE_STEPS}
CHAIN_STEPS = tuple(step.name for step in CHAIN)


def step(name: str) -> Step:
    return STEPS[name]
