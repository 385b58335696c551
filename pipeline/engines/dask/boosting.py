"""XGBoost on the cluster (`xgboost.dask`): train's fit, the learning API's parameters, and predictions of a model
on a split (tune's objective is pipeline/engines/dask/tune.py).

A fitted Booster becomes the same scikit-learn-style model the local engine fits (saved and loaded in XGBoost's
own format), so the registered model, serving and predict do not know which engine trained it."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from loguru import logger
from xgboost import XGBClassifier, XGBModel, XGBRegressor

from pipeline.config import PipelineConfig
from pipeline.engines.dask.cluster import cluster_faults
from pipeline.modeling.decision import weights_of_counts

OBJECTIVES = {"binary": "binary:logistic", "multiclass": "multi:softprob", "regression": "reg:squarederror"}
# scikit-learn wrapper settings that are no Booster parameters (the DMatrix or the fit takes care of them).
_NOT_BOOSTER_PARAMS = {"n_estimators", "enable_categorical", "early_stopping_rounds", "eval_metric", "callbacks"}


def booster_params(task: str, params: dict[str, Any], fixed: dict[str, Any], n_classes: int) -> dict[str, Any]:
    """The learning API's parameters of what `modeling.model.build_model` gives the scikit-learn estimator."""
    merged = {key: value for key, value in {**fixed, **params}.items() if key not in _NOT_BOOSTER_PARAMS}
    if "n_jobs" in merged:
        merged["nthread"] = merged.pop("n_jobs")
    merged["objective"] = OBJECTIVES[task]
    if task == "multiclass":
        merged["num_class"] = n_classes
    return merged


def as_estimator(booster: Any, task: str) -> XGBModel:
    """The Booster as the scikit-learn estimator the local engine fits (what the registered model wraps)."""
    estimator = XGBRegressor() if task == "regression" else XGBClassifier()
    with tempfile.TemporaryDirectory(prefix="dask-booster-") as tmp:
        path = Path(tmp) / "model.ubj"
        booster.save_model(path)
        estimator.load_model(path)
    return estimator


def _as_float32(part: pd.DataFrame) -> pd.DataFrame:
    return part.astype({name: "float32" for name in part.columns if part[name].dtype == "float64"})


def _features(frame, target: str):
    features = frame.drop(columns=[target])
    return features.map_partitions(_as_float32, meta=_as_float32(features._meta))


def _labels(frame, target: str):
    return frame[target].astype("float32")  # what XGBoost keeps labels as: half the memory of class indexes


def _weights(labels, table: dict[int, float]):
    return labels.map_partitions(lambda part: part.map(table).astype("float32"), meta=labels._meta)


def matrices(client: Any, target: str, *frames, class_weights: dict[int, float] | None = None) -> list:
    """The splits as XGBoost's quantised matrices on the workers, the first the one the others are binned by (the
    fit's). Their partitions stay in the workers' memory for every fit (xgboost.dask builds each worker's matrix
    from them), so numbers are held as float32, what XGBoost computes in anyway: half the memory of the float64
    split, the same model. Every matrix's features and labels are computed in one pass (splits of one table share
    reading and typing it), then the workers hand back the memory that pass freed. `class_weights` (class index ->
    weight, `train.class_weight: balanced`) weighs each row by its class."""
    import distributed
    from xgboost import dask as dxgb

    with cluster_faults("reading the splits onto the workers", client):
        wanted = [part for frame in frames for part in (_features(frame, target), _labels(frame, target))]
        parts = client.persist(wanted)
        distributed.wait(parts)
    release_freed_memory(client)
    _log_placement(client, parts)
    built: list = []
    for features, labels in zip(parts[::2], parts[1::2], strict=True):
        reference = built[0] if built else None
        weight = _weights(labels, class_weights) if class_weights else None
        built.append(
            dxgb.DaskQuantileDMatrix(client, features, labels, weight=weight, enable_categorical=True, ref=reference)
        )
    return built


def _log_placement(client: Any, parts: list) -> None:
    """How much of the splits each worker holds (XGBoost trains each worker on what it holds)."""
    from distributed import futures_of

    held: dict[str, float] = {}
    sizes = client.nbytes(summary=False)
    for key, workers in client.who_has(futures_of(parts)).items():
        for worker in workers:
            held[worker] = held.get(worker, 0.0) + sizes.get(key, 0) / 2**20
    logger.info("the splits on the workers: {}", ", ".join(f"{mib:,.0f} MiB" for mib in sorted(held.values())))


def _trim_heap() -> None:
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to ask
        pass


def release_freed_memory(client: Any) -> None:
    """Ask every worker's C heap to return freed memory to the OS, as Dask's docs advise ("Memory not released back
    to the OS"): typing a table's partitions leaves small freed blocks glibc keeps (240 MB a worker for 1.6M rows),
    which count against `dask.memory_limit` while XGBoost builds its matrices. A no-op where the C library is not
    glibc."""
    client.run(_trim_heap)


def collective(config: PipelineConfig) -> Any:
    """XGBoost's collective settings: a worker silent for `dask.timeout_s` (killed, or cut off) fails the fit
    instead of leaving the others waiting for ever."""
    from xgboost.collective import Config

    timeout = int(config.dask.timeout_s)
    return Config(timeout=timeout, tracker_timeout=timeout)


def class_weight_table(
    client: Any, config: PipelineConfig, train, target: str, n_classes: int
) -> dict[int, float] | None:
    """`train.class_weight: balanced`'s weight per class index, from the train split's class counts (one pass)."""
    if config.train.class_weight == "none" or n_classes < 2:
        return None
    with cluster_faults("counting the classes", client):
        counts = train[target].astype("int64").value_counts().compute()
    return weights_of_counts({k: int(counts.get(k, 0)) for k in range(n_classes)})


def fit(
    client: Any,
    train,
    target: str,
    task: str,
    params: dict[str, Any],
    config: PipelineConfig,
    n_classes: int,
    class_weights: dict[int, float] | None = None,
    what: str = "train's fit",
):
    """train: the final model on `train` (the whole train split, or a fold's rows), `params["n_estimators"]`
    rounds, each row weighed by `class_weights` when given."""
    from xgboost import dask as dxgb

    (train_matrix,) = matrices(client, target, train, class_weights=class_weights)
    with cluster_faults(what, client):
        fitted = dxgb.train(
            client,
            booster_params(task, params, config.train.fixed_params, n_classes),
            train_matrix,
            num_boost_round=int(params["n_estimators"]),
            verbose_eval=False,
            coll_cfg=collective(config),
        )
    return as_estimator(fitted["booster"], task)


def predict(client: Any, model: XGBModel, frame, target: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions of `model` on every partition of `frame` (class probabilities, n x k, or values), gathered
    here with the target column when `target` is given: 8 bytes per row and class."""
    import dask
    from xgboost import dask as dxgb

    features = frame.drop(columns=[target]) if target else frame
    with cluster_faults("scoring on the cluster", client):
        scores = dxgb.inplace_predict(client, model.get_booster(), features)
        predicted, truth = dask.compute(scores, frame[target] if target else None)
    values = np.asarray(predicted, dtype="float64")
    if isinstance(model, XGBClassifier) and values.ndim == 1:
        values = np.column_stack([1 - values, values])
    return values, None if truth is None else np.asarray(truth)
