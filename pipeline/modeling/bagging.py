"""train's bag: the final model as the average of `train.bag` models of the tuned params that differ only in the
seed of the rows and columns XGBoost samples (subsample, colsample_*), merged into one XGBoost model, so the
registered model, serving, predict and the plots see a single booster as before. When tune chose an ensemble of
trials (`tune.ensemble`, pipeline/tuning/ensemble.py), the bag's fits are shared out among them by weight
(`fit_plan`) and the average is weighted.

Why: one refit carries the luck of its row and column draws; averaging several cuts that variance at no cost to
the search. Over four public tables and split seeds 1-5 (benchmarks/equal_budget.py's, 10 s of tuning), ten
models beat the single refit on every table's mean (docs/benchmarks.md, "Bagging the final model").

The merge is exact on the margin scale: every member's trees are kept, each leaf scaled by its weight (1/n in a
bag of one trial), so the merged model's raw score is the members' weighted mean raw score (log-odds for
classification, the value for regression). Members fitted on the same rows share XGBoost's estimated intercept
(base_score), which the merge keeps once, unless their params change it (scale_pos_weight, an objective's
settings): tune's ensemble only joins trials of the same intercept, and the merge refuses others."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from loguru import logger
from xgboost import XGBModel

from pipeline.contract import AUTO_FINAL_MODEL_MAX_ROWS, TIMED_SEARCH_PARAM

if TYPE_CHECKING:
    from mlflow.entities import Run

    from pipeline.config import PipelineConfig

# bag auto: this many models after a search against the clock on a train split of at most BAG_AUTO_MAX_ROWS rows,
# else one.
BAG_AUTO_MODELS, BAG_AUTO_MAX_ROWS = 10, AUTO_FINAL_MODEL_MAX_ROWS
# bag auto for an ensemble of trials (tune.ensemble): one fit per selection round of tune.ensemble auto, so every fit
# weighs 1/20. Ten shared out lost half the ensemble's gain on two of four public tables, where a trial chosen once
# was a single fit; forty did no better than twenty (docs/benchmarks.md, "Ensemble selection over the trials").
BAG_AUTO_ENSEMBLE_MODELS = 20


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


def bag_size(
    bag: int | str, params: dict[str, Any], fixed: dict[str, Any], rows: int | None, ensemble: bool = False
) -> int:
    """How many models train averages: `train.bag` (after `for_search`), where `auto` is BAG_AUTO_MODELS on a train
    split of at most BAG_AUTO_MAX_ROWS rows (BAG_AUTO_ENSEMBLE_MODELS for an `ensemble` of trials; `rows` None, a
    table on a cluster: one); one whenever the params sample no rows and no columns, since every member would then
    be the same model, and for boosters other than gbtree (gblinear, dart: the merge reads trees only)."""
    merged = {**fixed, **params}
    samples = any(merged.get(name) is not None and float(merged[name]) < 1.0 for name in SAMPLING_PARAMS)
    if not samples or merged.get("booster", "gbtree") != "gbtree":
        return 1
    if bag == "auto":
        if rows is None or rows > BAG_AUTO_MAX_ROWS:
            return 1
        return BAG_AUTO_ENSEMBLE_MODELS if ensemble else BAG_AUTO_MODELS
    return int(bag)


@dataclass(frozen=True)
class Fit:
    """One model train fits and averages: its params, its seed, and its weight in the average."""

    params: dict[str, Any]
    seed: int
    weight: float


def fit_plan(
    bag: int | str, trials: list[tuple[dict[str, Any], float]], fixed: dict[str, Any], rows: int | None
) -> list[Fit]:
    """The models train averages, for the trials `tune.ensemble` chose (params, weight; the best trial alone, weight
    1, without an ensemble): each trial gets its weight's share of `bag_size` fits, at least one, seeded from the
    configured random_state (XGBoost's default 0) up, and its fits share its weight. A lone trial gets `bag_size`
    fits, seeds random_state, random_state + 1, ... (a bag of one is the single model of before)."""
    plan: list[Fit] = []
    for params, weight in trials:
        first = int({**fixed, **params}.get("random_state") or 0)
        count = max(1, round(weight * bag_size(bag, params, fixed, rows, ensemble=len(trials) > 1)))
        plan += [Fit(params, first + offset, weight / count) for offset in range(count)]
    return plan


def describe(trials: list[tuple[dict[str, Any], float]], plan: list[Fit]) -> str:
    """The plan in a log line: the best trial's params and what is averaged (both engines' train)."""
    if len(trials) > 1:
        averaged = f"averaging {len(plan)} models of {len(trials)} trials (tune.ensemble, train.bag)"
        return f"{averaged}; the best with {trials[0][0]}"
    bagged = f", averaging {len(plan)} models (train.bag)" if len(plan) > 1 else ""
    return f"with {trials[0][0]}{bagged}"


def fit_bag(fit_one: Callable[[Fit], XGBModel], plan: list[Fit], what: str = "train") -> XGBModel:
    """`fit_one(fit)` for each fit of the plan, averaged by their weights into one model (the first model, its
    booster replaced)."""
    models = []
    for number, fit in enumerate(plan, start=1):
        models.append(fit_one(fit))
        if len(plan) > 1:
            logger.debug(
                "{}: model {}/{} (seed {}, weight {:.3f}) fitted", what, number, len(plan), fit.seed, fit.weight
            )
    return average(models, [fit.weight for fit in plan])


def average(models: list[XGBModel], weights: list[float] | None = None) -> XGBModel:
    """One model whose raw score is the members' raw scores averaged by `weights` (summing to 1; None: equal): all
    their trees, each member's leaves scaled by its weight. Members must share the intercept (base_score): models
    of one objective fitted on the same rows do, unless their params change it (scale_pos_weight, an objective's
    settings), which is refused."""
    if len(models) == 1:
        return models[0]
    weights = weights or [1.0 / len(models)] * len(models)
    documents = [json.loads(model.get_booster().save_raw("json")) for model in models]
    intercepts = [_intercept(document) for document in documents]
    if any(not np.allclose(intercept, intercepts[0], rtol=1e-6, atol=1e-9) for intercept in intercepts):
        raise ValueError(f"the models to average have different intercepts (base_score {intercepts})")
    merged = documents[0]
    trees: list[dict[str, Any]] = []
    tree_info: list[int] = []
    iteration_starts = [0]
    for document, weight in zip(documents, weights, strict=True):
        booster = document["learner"]["gradient_booster"]["model"]
        starts = booster["iteration_indptr"][: _rounds_used(document) + 1]
        offset = len(trees)
        for tree in booster["trees"][: starts[-1]]:
            trees.append(_scaled(tree, weight, len(trees)))
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


def _intercept(document: dict[str, Any]) -> list[float]:
    """A model's base_score, one value or one per class (XGBoost writes it as text: '5E-1' or '[1E-1,2E-1]')."""
    return [
        float(value) for value in np.atleast_1d(json.loads(document["learner"]["learner_model_param"]["base_score"]))
    ]


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
