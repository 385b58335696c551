"""train's bag: the final model as the average of `train.bag` models of the tuned params that differ only in the
seed of the rows and columns XGBoost samples (subsample, colsample_*), merged into one XGBoost model, so the
registered model, serving, predict and the plots see a single booster as before.

Why: one refit carries the luck of its row and column draws; averaging several cuts that variance at no cost to
the search. Over four public tables and split seeds 1-5 (benchmarks/equal_budget.py's, 10 s of tuning), ten
models beat the single refit on every table's mean (docs/benchmarks.md, "Bagging the final model").

The merge is exact on the margin scale: every member's trees are kept, each leaf scaled by 1/n, so the merged
model's raw score is the members' mean raw score (log-odds for classification, the value for regression). Members
fitted on the same rows share XGBoost's estimated intercept (base_score), which the merge keeps once."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loguru import logger
from xgboost import XGBModel

from pipeline.contract import TIMED_SEARCH_PARAM

if TYPE_CHECKING:
    from mlflow.entities import Run

    from pipeline.config import PipelineConfig

# bag auto: this many models after a search against the clock on a train split of at most BAG_AUTO_MAX_ROWS rows,
# else one (the variance a bag removes shrinks with the rows, while its cost grows with them).
BAG_AUTO_MODELS, BAG_AUTO_MAX_ROWS = 10, 100_000


def for_search(config: PipelineConfig, tune_run: Run) -> PipelineConfig:
    """The config with `train.bag: auto` made one model when the tune run searched without a time budget (a count
    of trials alone, as the shipped breast-cancer chain): there the bag's n fits would lengthen a chain whose user
    asked for no trade of time for quality, as `tune.cv: auto` keeps the holdout there. Read from the tune run, not
    this config, so a train run is the same whatever tune section it is given."""
    if config.train.bag != "auto" or TIMED_SEARCH_PARAM in tune_run.data.params:
        return config
    return config.model_copy(update={"train": config.train.model_copy(update={"bag": 1})})


# The parameters by which XGBoost draws rows or columns at random (1.0, the default: no draw).
SAMPLING_PARAMS = ("subsample", "colsample_bytree", "colsample_bylevel", "colsample_bynode")


def bag_size(bag: int | str, params: dict[str, Any], fixed: dict[str, Any], rows: int | None) -> int:
    """How many models train averages: `train.bag` (after `for_search`), where `auto` is BAG_AUTO_MODELS on a train
    split of at most BAG_AUTO_MAX_ROWS rows (`rows` None, a table on a cluster: one); one whenever the params
    sample no rows and no columns, since every member would then be the same model, and for boosters other than
    gbtree (gblinear, dart: the merge reads trees only)."""
    merged = {**fixed, **params}
    samples = any(merged.get(name) is not None and float(merged[name]) < 1.0 for name in SAMPLING_PARAMS)
    if not samples or merged.get("booster", "gbtree") != "gbtree":
        return 1
    if bag == "auto":
        return BAG_AUTO_MODELS if rows is not None and rows <= BAG_AUTO_MAX_ROWS else 1
    return int(bag)


def member_seeds(bag: int | str, params: dict[str, Any], fixed: dict[str, Any], rows: int | None) -> list[int]:
    """The seeds of the models train averages, as many as `bag_size` gives: the configured random_state (XGBoost's
    default 0) and the next ones, so a bag of one is the single model of before."""
    first = int({**fixed, **params}.get("random_state") or 0)
    return [first + offset for offset in range(bag_size(bag, params, fixed, rows))]


def fit_bag(fit_one: Callable[[int], XGBModel], seeds: list[int], what: str = "train") -> XGBModel:
    """`fit_one(seed)` for each seed, averaged into one model (the first member, its booster replaced)."""
    models = []
    for number, seed in enumerate(seeds, start=1):
        models.append(fit_one(seed))
        if len(seeds) > 1:
            logger.debug("{}: bag model {}/{} fitted (seed {})", what, number, len(seeds), seed)
    return average(models)


def average(models: list[XGBModel]) -> XGBModel:
    """One model whose raw score is the mean of the members' raw scores: all their trees, leaves scaled by 1/n."""
    if len(models) == 1:
        return models[0]
    documents = [json.loads(model.get_booster().save_raw("json")) for model in models]
    merged = documents[0]
    trees: list[dict[str, Any]] = []
    tree_info: list[int] = []
    iteration_starts = [0]
    for document in documents:
        booster = document["learner"]["gradient_booster"]["model"]
        starts = booster["iteration_indptr"][: _rounds_used(document) + 1]
        offset = len(trees)
        for tree in booster["trees"][: starts[-1]]:
            trees.append(_scaled(tree, 1.0 / len(models), len(trees)))
        tree_info += booster["tree_info"][: starts[-1]]
        iteration_starts += [offset + start for start in starts[1:]]
    for attribute in ("best_iteration", "best_score"):  # the merged model predicts with all its trees
        merged["learner"].get("attributes", {}).pop(attribute, None)
    booster = merged["learner"]["gradient_booster"]["model"]
    booster.update(trees=trees, tree_info=tree_info, iteration_indptr=iteration_starts)
    booster["gbtree_model_param"]["num_trees"] = str(len(trees))
    result = models[0]
    result.load_model(bytearray(json.dumps(merged).encode()))  # keeps the estimator's settings, swaps its booster
    return result


def _rounds_used(document: dict[str, Any]) -> int:
    """The boosting rounds a member predicts with: up to its best iteration when it was early-stopped (XGBoost's
    scikit-learn predict stops there), else all."""
    best = document["learner"].get("attributes", {}).get("best_iteration")
    rounds = len(document["learner"]["gradient_booster"]["model"]["iteration_indptr"]) - 1
    return rounds if best is None else int(best) + 1


def _scaled(tree: dict[str, Any], factor: float, tree_id: int) -> dict[str, Any]:
    """A copy of a tree (XGBoost's JSON model) with its leaf values times `factor`, renumbered `tree_id`. A scalar
    leaf keeps its value in `split_conditions`; a vector-leaf tree (multi_strategy multi_output_tree) keeps its
    leaves in `leaf_weights` and a leaf's index where a scalar leaf keeps its value. Nodes' `base_weights` scale
    alike."""
    scaled = {**tree, "id": tree_id, "base_weights": [value * factor for value in tree["base_weights"]]}
    if int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
        scaled["leaf_weights"] = [value * factor for value in tree["leaf_weights"]]
        return scaled
    leaves = {node for node, left in enumerate(tree["left_children"]) if left == -1}
    scaled["split_conditions"] = [
        value * factor if node in leaves else value for node, value in enumerate(tree["split_conditions"])
    ]
    return scaled
