"""The dask engine's table functions against the local engine's, on Dask's synchronous scheduler (no cluster)."""

import dask
import numpy as np
import pandas as pd
import pytest

from pipeline.config import DataConfig
from pipeline.data.schema import report_columns
from pipeline.data.sources import digest
from pipeline.data.splitting import split_rows
from pipeline.engines.dask import tables
from pipeline.engines.dask.boosting import booster_params
from pipeline.engines.dask.profile import column_facts
from pipeline.tracking.cache import source_digest

dd = pytest.importorskip("dask.dataframe")


@pytest.fixture(autouse=True)
def synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


def table(rows: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "gap": np.where(rng.random(rows) < 0.3, np.nan, rng.normal(size=rows)),
            "empty": np.full(rows, np.nan),
            "same": np.ones(rows),
            "city": pd.Series(rng.choice(["Oslo", "Lima", None], rows), dtype="string"),
            "code": pd.Series([f"id-{i}" for i in range(rows)], dtype="string"),
            "target": rng.integers(0, 2, rows),
        }
    )


def test_the_split_is_seeded_disjoint_and_complete():
    frame = dd.from_pandas(table().assign(row=range(1000)), npartitions=4)
    train, test = split_rows(frame, 0.2, seed=7)
    train_rows, test_rows = set(train["row"].compute()), set(test["row"].compute())
    assert not train_rows & test_rows and train_rows | test_rows == set(range(1000))
    assert 150 <= len(test_rows) <= 250  # 20 % in expectation
    again = split_rows(frame, 0.2, seed=7)[1]["row"].compute()
    assert set(again) == test_rows
    assert set(split_rows(frame, 0.2, seed=8)[1]["row"].compute()) != test_rows


@pytest.mark.parametrize(("partitions", "seen"), [(1, [0]), (3, [0, 1, 2]), (10, [0, 2, 4, 7, 9])])
def test_spread_rows_come_from_partitions_across_the_frame(partitions, seen):
    frame = dd.from_pandas(table().assign(row=range(1000)), npartitions=partitions)
    rows = tables.spread_rows(frame, 50)
    assert len(rows) == 50 and rows["row"].is_unique
    divisions = frame.divisions  # a partition's rows lie between two divisions
    assert sorted({sum(row >= d for d in divisions[1:-1]) for row in rows["row"]}) == seen


@pytest.mark.parametrize("partitions", [1, 3, 7])
def test_the_digest_equals_the_local_engines_whatever_the_partitioning(partitions):
    local = table()
    assert tables.digest(dd.from_pandas(local, npartitions=partitions)).compute() == digest(local)


def test_the_profile_finds_what_the_local_schema_finds_with_every_category():
    local = table().drop(columns=["target"])
    local.loc[999, "city"] = "Quito"  # only in the last partition: the category set must still hold it
    frame = dd.from_pandas(local, npartitions=4)
    facts = column_facts(frame, local.head(50), DataConfig.whole_table("x.parquet", "target"), "test data")
    assert facts.report == report_columns(local, DataConfig.whole_table("x.parquet", "target"))
    assert facts.report == {"all_missing": ["empty"], "constant": ["same"], "id_like": ["code"]}
    assert facts.categories == {"city": ["Lima", "Oslo", "Quito"]}


def test_booster_params_say_what_the_scikit_learn_estimator_would():
    params = booster_params("multiclass", {"max_depth": 3, "n_estimators": 40}, {"n_jobs": 2, "tree_method": "hist"}, 3)
    assert params == {
        "max_depth": 3,
        "nthread": 2,
        "tree_method": "hist",
        "objective": "multi:softprob",
        "num_class": 3,
    }
    assert booster_params("binary", {}, {}, 2)["objective"] == "binary:logistic"


def test_a_folder_dataset_has_a_content_digest_that_survives_a_move(tmp_path):
    folder = tmp_path / "table.parquet"
    folder.mkdir()
    table().iloc[:500].to_parquet(folder / "part.0.parquet")
    table().iloc[500:].to_parquet(folder / "part.1.parquet")
    first = source_digest(DataConfig.whole_table(str(folder), "target"))
    assert first and first.startswith("files:")
    moved = folder.rename(tmp_path / "elsewhere.parquet")
    assert source_digest(DataConfig.whole_table(str(moved), "target")) == first
    assert source_digest(DataConfig.whole_table(str(tmp_path / "*.parquet/*.parquet"), "target")) is not None
    table().iloc[:10].to_parquet(moved / "part.1.parquet")
    assert source_digest(DataConfig.whole_table(str(moved), "target")) != first


def test_workers_dying_on_a_task_are_one_line_naming_the_memory_limit():
    from distributed.scheduler import KilledWorker

    from pipeline.engines.dask.cluster import cluster_faults
    from pipeline.errors import ClusterError

    with pytest.raises(
        ClusterError, match=r"^tune's trial 3 failed on the Dask cluster: .*dask\.memory_limit"
    ) as caught:
        with cluster_faults("tune's trial 3"):
            raise KilledWorker("fn-1", "tcp://127.0.0.1:1", allowed_failures=3)
    assert caught.value.exit_code == 4 and "\n" not in str(caught.value)


def test_a_worker_replaced_under_xgboost_is_one_line_and_other_value_errors_pass_through():
    from pipeline.engines.dask.cluster import cluster_faults
    from pipeline.errors import ClusterError

    replaced = (
        "Invalid worker address: tcp://127.0.0.1:2, expecting tcp://127.0.0.1:1. Resilience is not yet supported."
    )
    with pytest.raises(ClusterError, match="a worker went over dask.memory_limit and was restarted"):
        with cluster_faults("train's fit"):
            raise ValueError(replaced)
    with pytest.raises(ValueError, match="not a cluster's"):
        with cluster_faults("train's fit"):
            raise ValueError("not a cluster's")


class _Scheduler:
    """A client's view of the scheduler's event log (Client.get_events)."""

    def __init__(self, events: list[tuple[float, dict]]) -> None:
        self.events = events

    def get_events(self, topic: str) -> list[tuple[float, dict]]:
        return self.events if topic == "worker-restart-memory" else []


def test_a_collective_failure_after_a_memory_restart_names_the_limit_and_the_size(monkeypatch):
    import time

    from xgboost.core import XGBoostError

    from pipeline.engines.dask import cluster
    from pipeline.errors import ClusterError

    monkeypatch.setattr(cluster, "MEMORY_REPORT_WAIT_S", 0.0)
    broken = "[12:48:35] result.cc:83: \n- [allreduce.cc:135|12:48:35]: Ring Allreduce failed.\n"
    old = (time.time() - 3600, {"worker": "tcp://127.0.0.1:1", "pid": 1, "rss": 5 * 2**30})
    with pytest.raises(ClusterError, match=r"Ring Allreduce failed.*see the workers' logs"):  # an old restart: not ours
        with cluster.cluster_faults("tune's trial 0", _Scheduler([old])):
            raise XGBoostError(broken)
    restart = (time.time() + 1, {"worker": "tcp://127.0.0.1:2", "pid": 2, "rss": 1825 * 2**20})
    with pytest.raises(ClusterError) as caught:
        with cluster.cluster_faults("tune's trial 0", _Scheduler([old, restart])):
            raise XGBoostError(broken)
    message = str(caught.value)
    assert message.startswith("tune's trial 0 failed on the Dask cluster: a worker went over dask.memory_limit")
    assert "1,825 MiB" in message and "\n" not in message and caught.value.exit_code == 4
