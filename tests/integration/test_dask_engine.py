"""engine: dask on a LocalCluster of 2 worker processes: the same lineage and model as the local engine, a
partitioned Parquet table with text categories and missing values, predict equal to the local engine's, and the
faults (scheduler unreachable, dask extra missing, a worker killed during a fit) as one line and a FAILED run."""

import json
import os
import sys
import threading
import time

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline import cli
from pipeline.contract import STEP_TAG, UPSTREAM_TAG_PREFIX
from pipeline.data.sources import load_source
from pipeline.errors import ClusterError
from pipeline.steps import predict
from pipeline.steps.chain import run_chain
from tests.helpers import DEFAULT_CONFIG, small_config_with
from tests.integration.helpers import free_port

pytestmark = pytest.mark.heavy
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def scheduler():
    """A LocalCluster the tests' steps connect to by address (as to a real cluster): started once for the module."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, memory_limit="1GB", dashboard_address=None, silence_logs=40
    ) as cluster:
        yield cluster.scheduler_address


def on_dask(scheduler: str, **overrides):
    return small_config_with({"engine": "dask", "dask.scheduler": scheduler, **overrides})


def runs_of(client, experiment_id: str) -> dict:
    return {run.data.tags[STEP_TAG]: run for run in client.search_runs([experiment_id]) if STEP_TAG in run.data.tags}


@pytest.fixture(scope="module")
def both_engines(module_store, scheduler):
    """The breast-cancer chain on each engine, in an experiment and under a model name of its own."""
    made = {}
    for engine, config in (
        ("local", small_config_with({"experiment": "on-local", "registry.model_name": "bc-local"})),
        ("dask", on_dask(scheduler, experiment="on-dask", **{"registry.model_name": "bc-dask"})),
    ):
        result = run_chain(config)
        made[engine] = (result, runs_of(MlflowClient(module_store[0]), result.experiment_id))
    return made


def test_both_engines_leave_the_same_lineage_and_a_model_as_good(both_engines, module_client):
    (_, local_runs), (dask, dask_runs) = both_engines["local"], both_engines["dask"]
    assert set(local_runs) == set(dask_runs) == {"main", "preprocess", "tune", "train", "evaluate"}
    for step in ("preprocess", "tune", "train", "evaluate"):
        assert local_runs[step].info.status == dask_runs[step].info.status == "FINISHED"
        ours = {key for key in dask_runs[step].data.tags if key.startswith("pipeline.")}
        assert ours == {key for key in local_runs[step].data.tags if key.startswith("pipeline.")}, step
        upstream = {k: v for k, v in dask_runs[step].data.tags.items() if k.startswith(UPSTREAM_TAG_PREFIX)}
        assert {dask_runs[k.removeprefix(UPSTREAM_TAG_PREFIX)].info.run_id for k in upstream} == set(upstream.values())
    for engine_runs in (local_runs, dask_runs):
        listed = {item.path for item in module_client.list_artifacts(engine_runs["preprocess"].info.run_id, "data")}
        assert listed == {
            f"data/{name}"
            for name in (
                "train.parquet",
                "test.parquet",
                "schema.json",
                "raw_sample.parquet",
                "feature_hook.py",
                "leakage.json",
            )
        }
        plots = {item.path for item in module_client.list_artifacts(engine_runs["train"].info.run_id, "plots")}
        assert plots == {"plots/feature_importance.png", "plots/shap_summary.png", "plots/calibration.png"}
    # On dask the splits are folders of Parquet parts, the dataset inputs references, the cluster recorded.
    split_parts = module_client.list_artifacts(dask_runs["preprocess"].info.run_id, "data/train.parquet")
    assert len(split_parts) >= 2 and all(item.path.endswith(".parquet") for item in split_parts)
    inputs = dask_runs["preprocess"].inputs.dataset_inputs
    assert {i.dataset.name for i in inputs} == {"breast_cancer-train", "breast_cancer-test"}
    sources = [json.loads(i.dataset.source) for i in inputs]  # by reference: where each split is, not its rows
    assert sorted(source["uri"].rsplit("/", 1)[-1] for source in sources) == ["test.parquet", "train.parquet"]
    assert (
        dask_runs["train"].data.params["engine"] == "dask" and dask_runs["train"].data.params["dask.n_workers"] == "2"
    )
    evaluate_metrics = dask_runs["evaluate"].data.metrics
    assert evaluate_metrics["evaluate_sample_rows"] == dask_runs["preprocess"].data.metrics["n_test"]
    assert evaluate_metrics["full_test_roc_auc"] == pytest.approx(evaluate_metrics["roc_auc"])
    local_auc, dask_auc = (r["train"].data.metrics["test_roc_auc"] for r in (local_runs, dask_runs))
    assert dask_auc > 0.95 and abs(local_auc - dask_auc) <= 0.01, (local_auc, dask_auc)
    bags = [r["train"].data.params["train.bag"] for r in (local_runs, dask_runs)]
    assert bags == ["1", "1"]  # bag auto: one after a search of n_trials alone (and on a cluster's table)
    assert dask.steps[-1].verdict == "promoted"


def test_a_step_reads_the_split_of_either_engine(both_engines, module_store):
    """The dask engine's split folders are Parquet datasets the local engine's readers take as they are."""
    from pipeline.contract import TRAIN_ARTIFACT
    from pipeline.tracking.splits import read_split, schema_of_run

    run = both_engines["dask"][1]["preprocess"]
    train = read_split(run, TRAIN_ARTIFACT, schema_of_run(run))
    assert len(train) == run.data.metrics["n_train"]


def test_predict_on_dask_answers_as_on_local(both_engines, tmp_path, scheduler):
    config = on_dask(scheduler, **{"registry.model_name": "bc-dask"})
    rows = load_source(config.data).drop(columns=["target"]).assign(customer_id=range(569))
    folder = tmp_path / "rows.parquet"
    folder.mkdir()
    for number, part in enumerate((rows.iloc[:200], rows.iloc[200:400], rows.iloc[400:])):
        part.to_parquet(folder / f"part.{number}.parquet", index=False)
    rows.to_parquet(tmp_path / "rows-one-file.parquet", index=False)
    local_config = small_config_with({"registry.model_name": "bc-dask"})
    on_local_engine = predict.run(
        local_config, input_path=str(tmp_path / "rows-one-file.parquet"), output_path=str(tmp_path / "a.parquet")
    )
    result = predict.run(config, input_path=str(folder), output_path=str(tmp_path / "b.parquet"))
    on_local, on_dask_ = pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
    assert (tmp_path / "b.parquet").is_dir() and result.metrics["n_rows"] == 569
    pd.testing.assert_frame_equal(on_dask_, on_local)
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".predict-")]
    # The drift of the batch, counted partition by partition on the workers, is the local engine's to the digit.
    client = MlflowClient()
    local_psi, dask_psi = (
        {k: v for k, v in client.get_run(run_id).data.metrics.items() if k.startswith("drift_")}
        for run_id in (on_local_engine.run_id, result.run_id)
    )
    assert local_psi.keys() == dask_psi.keys() and "drift_psi_output" in dask_psi
    assert all(dask_psi[key] == pytest.approx(local_psi[key], rel=1e-9, abs=1e-12) for key in local_psi)
    from pipeline.steps import monitor

    watched = monitor.run(config, input_path=str(folder))
    assert watched.metrics["n_rows"] == 569 and watched.metrics["drift_psi_max"] == pytest.approx(
        dask_psi["drift_psi_max"]
    )


def churn_table(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    usage = rng.gamma(2.0, 10.0, rows)
    plan = rng.choice(["basic", "plus", "pro", None], rows, p=[0.4, 0.3, 0.2, 0.1])
    churned = (usage < 15) ^ (rng.random(rows) < 0.1)
    return pd.DataFrame(
        {
            "customer": [f"c{seed}-{i}" for i in range(rows)],
            "usage": np.where(rng.random(rows) < 0.1, np.nan, usage),
            "plan": pd.Series(plan, dtype="string"),
            "signup": pd.Series(
                pd.date_range("2024-01-01", periods=rows, freq="h").strftime("%Y-%m-%d"), dtype="string"
            ),
            "label": np.where(churned, "churned", "stayed"),
        }
    )


def test_a_partitioned_parquet_table_with_text_categories_and_gaps(tracking_uri, tmp_path, scheduler):
    folder = tmp_path / "customers.parquet"
    folder.mkdir()
    for number in range(3):
        part = churn_table(400, number)
        if number == 2:
            part.loc[399, "plan"] = "enterprise"  # a category only the last file holds
        part.to_parquet(folder / f"part-{number}.parquet", index=False)
    config = on_dask(
        scheduler,
        **{
            "data.source": str(folder),
            "data.target": "label",
            "data.id_columns": "[customer]",
            "data.positive_class": "churned",
            "features.derived": "false",
            "registry.model_name": "churn-dask",
        },
    )
    result = run_chain(config)
    client = MlflowClient(tracking_uri)
    preprocess_run = client.get_run(result.step("preprocess").run_id)
    schema = json.loads(mlflow.artifacts.load_text(f"runs:/{preprocess_run.info.run_id}/data/schema.json"))
    assert schema["classes"] == ["stayed", "churned"] and schema["task"] == "binary"
    assert "enterprise" in schema["categories"]["plan"] and "signup" in schema["datetime_columns"]
    assert preprocess_run.data.metrics["n_rows"] == 1200
    model = mlflow.pyfunc.load_model(f"models:/churn-dask/{result.step('train').model_version}")
    answer = model.predict(churn_table(5, 9).drop(columns=["label"]))
    assert set(answer["prediction"]) <= {"churned", "stayed"} and list(answer.columns)[1:] == [
        "probability_stayed",
        "probability_churned",
    ]


def error_lines(capfd) -> list[str]:
    return [line for line in capfd.readouterr().err.splitlines() if " ERROR " in line]


def test_an_unreachable_scheduler_fails_in_one_line(client, tmp_path, capfd):
    address = f"tcp://127.0.0.1:{free_port()}"
    command = [
        "preprocess",
        "--config",
        str(DEFAULT_CONFIG),
        "--engine",
        "dask",
        "--set",
        f"dask.scheduler={address}",
        "--set",
        "dask.timeout_s=3",
        "--result-file",
        str(tmp_path / "result.json"),
    ]
    started = time.monotonic()
    assert cli.main(command) == 4
    assert time.monotonic() - started < 60
    (error,) = error_lines(capfd)
    assert f"cannot reach the Dask scheduler {address}" in error
    (run,) = client.search_runs(["0"])
    assert run.info.status == "FAILED" and json.loads((tmp_path / "result.json").read_text())["exit_code"] == 4


def test_a_missing_dask_extra_says_what_to_install(client, monkeypatch, capfd):
    monkeypatch.setitem(sys.modules, "distributed", None)  # what `import distributed` meets when it is not installed
    assert cli.main(["preprocess", "--config", str(DEFAULT_CONFIG), "--engine", "dask"]) == 2
    (error,) = error_lines(capfd)
    assert "engine: dask needs the dask extra" in error and "pip install -e '.[dask]'" in error
    assert [run.info.status for run in client.search_runs(["0"])] == ["FAILED"]


# xgboost.dask's training tasks, one per worker: its map_worker_partitions submits a function named `fn`.
TRAIN_TASKS = ("fn-", "do_train")


def test_a_worker_killed_during_a_fit_fails_it_in_one_line_instead_of_hanging():
    from pipeline.engines.dask import boosting

    dd = pytest.importorskip("dask.dataframe")
    config = small_config_with({"engine": "dask", "dask.timeout_s": "10"})
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(20_000, 20)), columns=[f"f{i}" for i in range(20)])
    train = dd.from_pandas(frame.assign(target=(frame.f0 > 0).astype(int)), npartitions=4)
    outcome: dict = {}
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=50
    ) as cluster:
        with distributed.Client(cluster) as dask_client:

            def fit():
                try:
                    outcome["model"] = boosting.fit(
                        dask_client, train, "target", "binary", {"n_estimators": 50_000, "max_depth": 8}, config, 2
                    )
                except BaseException as exc:  # noqa: BLE001 - the test reads what the fit raised
                    outcome["error"] = exc

            worker = threading.Thread(target=fit)
            worker.start()
            # Kill only once both workers train: a worker lost while the data is still being prepared is replaced by
            # dask, and XGBoost then trains on the survivor (a slow or busy machine took over 4 s to get there).
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and "error" not in outcome:
                busy = dask_client.processing()
                if len(busy) == 2 and all(
                    any(str(key).startswith(TRAIN_TASKS) for key in keys) for keys in busy.values()
                ):
                    break
                time.sleep(0.2)
            time.sleep(1)
            victim = sorted(dask_client.scheduler_info()["workers"])[0]
            with pytest.raises(Exception):  # noqa: B017 - the worker dies before it answers
                dask_client.run(os._exit, 1, workers=[victim])
            worker.join(120)
    assert not worker.is_alive(), "the fit hangs after losing a worker"
    assert isinstance(outcome.get("error"), ClusterError), outcome
    assert "a worker was lost or failed" in str(outcome["error"]) and "\n" not in str(outcome["error"])


def test_a_time_split_on_the_cluster_trains_on_the_past_and_tunes_on_it(scheduler, module_client, tmp_path):
    from pipeline.contract import TEST_ARTIFACT, TRAIN_ARTIFACT
    from pipeline.steps import preprocess, tune
    from pipeline.tracking.splits import read_split_rows
    from tests.integration.test_time_split import dated_table, time_split_keys

    config = on_dask(scheduler, **time_split_keys(dated_table(tmp_path)))
    prepared = preprocess.run(config)
    run = module_client.get_run(prepared.run_id)
    params = run.data.params
    assert params["split.method"] == "time" and params["split.train_end"] < params["split.test_start"]
    train, test = read_split_rows(run, TRAIN_ARTIFACT), read_split_rows(run, TEST_ARTIFACT)
    assert len(train) + len(test) == 400 and 60 <= len(test) <= 100  # from Dask's approximate quantile
    assert "date_year" not in train.columns and train["date_day_of_year"].is_monotonic_increasing
    tuned = tune.run(config, upstream_run_id=prepared.run_id)
    assert module_client.get_run(tuned.run_id).info.status == "FINISHED"


@pytest.mark.parametrize("method", ["random", "time"])
def test_the_decision_is_learnt_on_the_cluster_and_evaluated_at_the_models_threshold(
    scheduler, module_client, tmp_path, method
):
    """Out-of-fold predictions of the train split made on the cluster (random folds, or forward folds in time
    order), the threshold and calibration inside the model, evaluate's whole-split metrics at that threshold."""
    from tests.integration.test_decision import credit_keys, credit_table

    path = credit_table(tmp_path)
    keys = credit_keys(
        path,
        **{
            "decision.threshold": {"optimize": "f1"},
            "decision.calibration": "sigmoid",
            "train.class_weight": "balanced",
            "train.bag": 2,  # each fold's model and the final one a bag of two fits on the cluster
        },
    )
    if method == "time":
        frame = pd.read_csv(path)
        frame["day"] = pd.date_range("2020-01-01", periods=len(frame), freq="h").strftime("%Y-%m-%dT%H:%M")
        frame.to_csv(path, index=False)
        keys |= {"split.method": "time", "split.time_column": "day"}
    result = run_chain(on_dask(scheduler, experiment=f"decision-{method}", **keys))
    train_run = module_client.get_run(result.step("train").run_id)
    params, metrics = train_run.data.params, train_run.data.metrics
    threshold = float(params["decision.threshold"])
    assert params["decision.calibration"] == "sigmoid" and 0 < threshold < 0.5 and metrics["held_out_f1"] > 0
    assert params["train.bag"] == "2"
    evaluated = module_client.get_run(result.step("evaluate").run_id).data.metrics
    assert evaluated["full_test_f1_score"] == pytest.approx(metrics["test_f1"], abs=1e-6)
    assert evaluated["full_test_brier_score"] == pytest.approx(metrics["test_brier_score"], abs=1e-6)
    model = mlflow.pyfunc.load_model(result.step("train").outputs["model_uri"])
    answer = model.predict(pd.read_csv(path).drop(columns=["default"]).head(500))
    assert ((answer["prediction"] == "yes") == (answer["probability_yes"] >= threshold)).all()
