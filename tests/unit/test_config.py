import re
from pathlib import Path

import pytest
import yaml

from pipeline.config import apply_overrides, load_config
from pipeline.errors import ConfigError
from tests.helpers import DEFAULT_CONFIG, REPO_ROOT, TEST_CONFIG, TEST_CONFIGS


def test_default_config_is_valid_and_typed():
    config = load_config(DEFAULT_CONFIG)
    assert config.split.test_size == 0.2
    assert config.tune.search_space["max_depth"].is_int
    assert not config.tune.search_space["learning_rate"].is_int
    assert config.tune.search_space["learning_rate"].log


@pytest.mark.parametrize(
    ("overrides", "named_key"),
    [
        ({"split.test_size": "1.5"}, "split.test_size"),
        ({"split.test_size": "0"}, "split.test_size"),
        ({"tune.n_trials": "0"}, "tune.n_trials"),
        ({"tune.n_trials": "many"}, "tune.n_trials"),
        ({"tune.cv": "1"}, "tune.cv"),
        ({"tune.cv": "always"}, "tune.cv"),
        ({"tune.ensemble": "0"}, "tune.ensemble"),
        ({"tune.ensemble": "true"}, "tune.ensemble"),
        ({"tune.unknown_knob": "1"}, "tune.unknown_knob"),
        ({"evaluate.min_relative_improvement": "2"}, "evaluate.min_relative_improvement"),
        ({"tune.search_space.max_depth.low": "9"}, "tune.search_space.max_depth"),
        ({"registry.model_name": 'it\'s "ours"'}, "registry.model_name"),
        ({"tune.start_points": "[{max_depth: 12}]"}, "tune"),
    ],
)
def test_bad_values_name_the_key(overrides, named_key):
    with pytest.raises(ConfigError) as error:
        load_config(DEFAULT_CONFIG, overrides)
    assert f"`{named_key}`" in str(error.value)
    assert "\n" not in str(error.value)


def test_unknown_top_level_key_in_file(tmp_path: Path):
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["trainning"] = {}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="`trainning`: unknown key"):
        load_config(path)


def test_missing_file_and_bad_yaml(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("split: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


def test_override_into_a_non_section_is_an_error():
    with pytest.raises(ConfigError, match="`experiment` is not a section"):
        load_config(DEFAULT_CONFIG, {"experiment.name": "x"})


def test_overrides_take_yaml_types_and_do_not_touch_the_input():
    raw = {"split": {"test_size": 0.2, "stratify": True}}
    merged = apply_overrides(raw, {"split.test_size": "0.3", "split.stratify": "false"})
    assert merged["split"] == {"test_size": 0.3, "stratify": False}
    assert raw["split"]["test_size"] == 0.2


def test_a_variant_config_states_only_what_differs(tmp_path: Path):
    (tmp_path / "base.yaml").write_text(DEFAULT_CONFIG.read_text())
    (tmp_path / "variant.yaml").write_text(
        "extends: base.yaml\ndata: {source: 'sklearn:wine', task: multiclass}\nregistry: {model_name: wine-xgb}\n"
    )
    config = load_config(tmp_path / "variant.yaml")
    assert config.data.source == "sklearn:wine" and config.data.target == "target"  # sections merge key by key
    assert config.registry.model_name == "wine-xgb" and config.registry.champion_alias == "champion"
    assert config.tune == load_config(DEFAULT_CONFIG).tune


def test_an_extends_loop_and_a_missing_base_are_errors(tmp_path: Path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="`extends` makes a loop"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: nope.yaml\n")
    with pytest.raises(ConfigError, match="nope.yaml not found"):
        load_config(tmp_path / "c.yaml")


@pytest.mark.parametrize("name", ["wine", "diabetes", "churn"])
def test_example_configs_extend_the_base_and_differ_from_it(name):
    config = load_config(TEST_CONFIGS / f"{name}.yaml")
    assert config.registry.model_name != load_config(DEFAULT_CONFIG).registry.model_name
    assert config.tune == load_config(DEFAULT_CONFIG).tune  # the rest comes from the base


def test_the_projects_configs_are_valid():
    """configs/ is the user's to edit (this is a template): whatever it holds must load, whatever it says."""
    shipped = sorted((REPO_ROOT / "configs").glob("*.yaml"))
    assert REPO_ROOT / "configs" / "pipeline.yaml" in shipped  # the config the CLI and MLproject default to
    for path in shipped:
        load_config(path)


def test_the_target_cannot_be_a_feature():
    with pytest.raises(
        ConfigError, match="`data`: the target 'target' cannot also be an id, feature, datetime or categorical column"
    ):
        load_config(DEFAULT_CONFIG, {"data.id_columns": "[target]"})


def _defaults(model, prefix=""):
    """Dotted keys of every field of a config model (and the models inside it) that has a default."""
    from pydantic import BaseModel

    found = set()
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        if not field.is_required():
            found.add(key)
        kind = field.annotation
        for inner in (kind, *getattr(kind, "__args__", ())):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                found |= _defaults(inner, f"{key}.")
    return found


def test_the_yaml_is_the_only_place_with_default_values():
    # A default in the models may only stand for a key that configs/pipeline.yaml does not have: optional keys of
    # a SQL source, a search dimension, a gate and a threshold rule (exactly one of its keys is given). Any other
    # default would silently repeat (or contradict) the YAML.
    from pipeline.config import PipelineConfig

    assert _defaults(PipelineConfig) == {
        "data.query",
        "data.table",
        "tune.search_space.low",
        "tune.search_space.high",
        "tune.search_space.log",
        "tune.search_space.choices",
        "tune.search_space.when",
        "evaluate.binary.thresholds.greater_is_better",
        "evaluate.multiclass.thresholds.greater_is_better",
        "evaluate.regression.thresholds.greater_is_better",
        "decision.threshold.optimize",
        "decision.threshold.cost",
        "decision.threshold.precision_at_least",
        "decision.threshold.recall_at_least",
    }


@pytest.mark.parametrize("key", ["tune.seed", "split.stratify", "registry.champion_alias", "cache.enabled"])
def test_a_key_missing_from_the_config_is_an_error_naming_it(tmp_path, key):
    raw = yaml.safe_load(TEST_CONFIG.read_text())
    section, leaf = key.split(".")
    del raw[section][leaf]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=f"`{key}`: Field required"):
        load_config(path)


def test_a_config_written_from_scratch_is_told_every_key_it_lacks(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("experiment: x\ndata: {source: sklearn:wine, target: target}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert "\n" not in message and "every key is required" in message
    for key in ("`data.task`", "`split`", "`tune`", "`registry`", "`cache`"):
        assert key in message


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"split.method": "time"}, "split.method: time needs `split.time_column`"),
        ({"split.gap": "P7D"}, "`split.gap` applies only with split.method: time"),
        ({"split.method": "time", "split.time_column": "d", "split.gap": "P1M"}, "`split.gap`: 'P1M' is not an ISO"),
        ({"split.method": "time", "split.time_column": "d", "split.test_start": "2015-13-01"}, "`split.test_start`"),
        ({"split.method": "time", "split.time_column": "target"}, "split.time_column cannot be the target"),
        ({"split.method": "sometimes"}, "`split.method`"),
    ],
)
def test_a_time_split_is_checked_at_start_up(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(DEFAULT_CONFIG, overrides)


def test_a_time_split_reads_an_unquoted_date():
    keys = {"split.method": "time", "split.time_column": "day", "split.test_start": "2015-01-01", "split.gap": "P7D"}
    split = load_config(DEFAULT_CONFIG, keys).split
    assert (split.method, split.time_column, split.test_start, split.gap) == ("time", "day", "2015-01-01", "P7D")


def test_null_in_a_variant_removes_a_gate_or_dimension_of_its_base(tmp_path):
    (tmp_path / "pipeline.yaml").write_text(TEST_CONFIG.read_text())
    variant = tmp_path / "variant.yaml"
    variant.write_text(
        "extends: pipeline.yaml\n"
        "evaluate: {binary: {thresholds: {accuracy_score: null, average_precision: {threshold: 0.1}}}}\n"
        "tune: {search_space: {reg_alpha: null}, timeout_s: null}\n"
    )
    config = load_config(variant)
    assert set(config.evaluate.binary.thresholds) == {"roc_auc", "average_precision"}
    assert "reg_alpha" not in config.tune.search_space and config.tune.timeout_s is None  # a plain null is a value


@pytest.mark.parametrize(
    ("point", "message"),
    [
        ("{max_depth: 12}", "start_points[0].max_depth: 12 is not a whole number from 2 to 8"),
        ("{max_depth: 4.5}", "start_points[0].max_depth: 4.5 is not a whole number from 2 to 8"),
        ("{learning_rate: fast}", "start_points[0].learning_rate: 'fast' is not a number"),
        ("{gamma: 1.0}", "start_points[0].gamma: not a dimension of tune.search_space"),
    ],
)
def test_a_start_point_outside_the_search_space_is_named(point, message):
    with pytest.raises(ConfigError) as error:
        load_config(DEFAULT_CONFIG, {"tune.start_points": f"[{point}]"})
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_variant_that_narrows_the_space_is_told_to_set_its_own_start_points(tmp_path):
    base = yaml.safe_load(TEST_CONFIG.read_text())  # a base like the shipped one: leaf-wise trees and points of them
    base["tune"]["search_space"]["grow_policy"] = {"choices": ["depthwise", "lossguide"]}
    base["tune"]["search_space"]["max_leaves"] = {"low": 4, "high": 64, "when": {"grow_policy": "lossguide"}}
    base["tune"]["start_points"] = [{"grow_policy": "lossguide", "max_leaves": 4}]
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(base))
    assert load_config(tmp_path / "pipeline.yaml").tune.start_points == [{"grow_policy": "lossguide", "max_leaves": 4}]
    variant = tmp_path / "variant.yaml"
    depth_wise = "extends: pipeline.yaml\ntune:\n  search_space: {grow_policy: null, max_leaves: null}\n"
    variant.write_text(depth_wise)
    with pytest.raises(ConfigError) as error:
        load_config(variant)
    message = str(error.value)
    assert "start_points[0].grow_policy: not a dimension of tune.search_space" in message and "\n" not in message
    assert "tune.start_points takes points of this search space, or [] for none" in message
    variant.write_text(depth_wise + "  start_points: []\n")
    assert "grow_policy" not in load_config(variant).tune.search_space


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("{grow_policy: leafwise}", "search_space.max_leaves.when.grow_policy: 'leafwise' is not one of its choices"),
        ("{max_depth: 4}", "max_leaves.when.max_depth: needs a dimension of tune.search_space with `choices`"),
        ("{booster: gbtree}", "search_space.max_leaves.when.booster: needs a dimension of tune.search_space"),
    ],
)
def test_a_condition_on_a_dimension_that_cannot_meet_it_is_named(when, message):
    overrides = {
        "tune.search_space.grow_policy": {"choices": ["depthwise", "lossguide"]},
        "tune.search_space.max_leaves": f"{{low: 4, high: 64, when: {when}}}",
    }
    with pytest.raises(ConfigError) as error:
        load_config(DEFAULT_CONFIG, overrides)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_xgboosts_seed_in_fixed_params_becomes_random_state():
    """The bag's members count up from random_state: a `seed` (XGBoost's other name) would pin them all."""
    config = load_config(DEFAULT_CONFIG, {"train.fixed_params.seed": 7})
    assert config.train.fixed_params == {"tree_method": "hist", "random_state": 7}
    with pytest.raises(ConfigError, match=r"train\.fixed_params.*seed or random_state") as error:
        load_config(DEFAULT_CONFIG, {"train.fixed_params.seed": 7, "train.fixed_params.random_state": 8})
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("value", [0, 101, "many", True])
def test_a_bad_bag_size_is_refused_naming_the_key(tmp_path, value):
    raw = yaml.safe_load(TEST_CONFIG.read_text())
    raw["train"]["bag"] = value
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"train\.bag.*auto or a number of models from 1 to 100"):
        load_config(path)
