"""`python -m pipeline init-config`: a config written from a table, with the pipeline's own rules, that validates."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import cli
from pipeline.config import ThresholdRule, load_config
from pipeline.data import scaffold as scaffold_module
from pipeline.errors import ConfigError, DataError
from pipeline.steps import init_config
from tests.helpers import TEST_CONFIG

ROWS = 60  # >= 20 values: an id column is found


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder: configs/pipeline.yaml (the tests' base config) and a customer table with a text target."""
    (tmp_path / "configs").mkdir()
    shutil.copyfile(TEST_CONFIG, tmp_path / "configs" / "pipeline.yaml")
    rng = np.random.default_rng(0)
    spend = rng.normal(50, 10, ROWS).round(2)
    spend[::7] = np.nan
    pd.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(1, ROWS + 1)],
            "plan": rng.choice(["basic", "plus", "pro"], ROWS),
            "signup_date": pd.date_range("2022-01-03", periods=ROWS, freq="5D").strftime("%Y-%m-%d"),
            "monthly_spend": spend,
            "churned": rng.choice(["yes", "no"], ROWS),
        }
    ).to_csv(tmp_path / "customers.csv", index=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    return tmp_path


def write_table(folder: Path, target) -> Path:
    path = folder / "numbers.csv"
    pd.DataFrame({"x": np.arange(len(target)) % 7, "target": target}).to_csv(path, index=False)
    return path


def test_a_text_target_gives_a_binary_config_that_loads(project: Path):
    decided = init_config.run(str(project / "customers.csv"), "churned", configs_dir=project / "configs")
    path = project / "configs" / "customers.yaml"
    assert decided["path"] == str(path) and decided["name"] == "customers"
    config = load_config(path)  # validates: extends the base, every key known
    assert config.data.task == "binary"
    assert config.data.positive_class == "yes" and isinstance(config.data.positive_class, str)
    assert config.data.id_columns == ["customer_id"]
    assert config.data.datetime_columns == ["signup_date"]
    assert config.data.target == "churned" and config.data.source == str(project / "customers.csv")
    assert config.registry.model_name == "customers-xgb"
    assert config.experiment == "customers"  # each dataset its own experiment, not Default
    gates = config.evaluate.binary.thresholds
    assert gates["roc_auc"].threshold == 0.75 and gates["accuracy_score"].threshold == 0.7
    assert config.tune.n_trials == load_config(project / "configs" / "pipeline.yaml").tune.n_trials  # inherited
    text = path.read_text()
    assert text.startswith("#") and "extends: pipeline.yaml" in text
    assert "positive_class: 'yes'" in text and "raise these once you know what your data allows" in text
    assert "customer_id" in text.split("id_columns:")[0]  # the comment above says why it is an id
    assert not list((project / "configs").glob(".*.tmp"))


def test_the_cli_writes_the_config_and_prints_the_next_command(project: Path, capsys, monkeypatch):
    # It needs no tracking store: an unreachable one would be exit code 4 for a step.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    assert cli.main(["init-config", "--source", "customers.csv", "--target", "churned", "--name", "churn"]) == 0
    out = capsys.readouterr().out
    assert "configs/churn.yaml" in out and "binary" in out and "customer_id" in out and "signup_date" in out
    assert "mlflow run . -e main --env-manager local -P config=configs/churn.yaml" in out
    assert load_config("configs/churn.yaml").registry.model_name == "churn-xgb"


def test_an_existing_file_is_replaced_only_with_overwrite(project: Path):
    arguments = ["init-config", "--source", "customers.csv", "--target", "churned"]
    assert cli.main(arguments) == 0
    written = (project / "configs" / "customers.yaml").read_text()
    (project / "configs" / "customers.yaml").write_text(written + "# mine\n")
    assert cli.main(arguments) == 2
    assert (project / "configs" / "customers.yaml").read_text().endswith("# mine\n")
    assert cli.main([*arguments, "--overwrite"]) == 0
    assert (project / "configs" / "customers.yaml").read_text() == written
    with pytest.raises(ConfigError, match="exists"):
        init_config.run("customers.csv", "churned", configs_dir=project / "configs")
    assert cli.main([*arguments, "--name", "pipeline", "--overwrite"]) == 2  # never the base config


def test_a_missing_source_or_target_column_is_exit_code_2(project: Path):
    assert cli.main(["init-config", "--source", "nope.csv", "--target", "churned"]) == 2
    assert cli.main(["init-config", "--source", "customers.csv", "--target", "nope"]) == 2
    assert cli.main(["init-config", "--source", "customers.csv"]) == 2
    assert sorted(path.name for path in (project / "configs").iterdir()) == ["pipeline.yaml"]
    with pytest.raises(DataError, match="target column 'nope'"):
        init_config.run("customers.csv", "nope", configs_dir=project / "configs")


def test_integer_labels_0_to_2_give_multiclass_with_its_gates(project: Path):
    source = write_table(project, [0, 1, 2] * 20)
    decided = init_config.run(str(source), "target", name="Digits_3", configs_dir=project / "configs")
    config = load_config(decided["path"])
    assert config.data.task == "multiclass" and config.data.positive_class is None
    assert set(config.evaluate.multiclass.thresholds) == {"accuracy_score", "f1_score"}
    assert config.registry.model_name == "Digits_3-xgb"
    assert "positive_class" not in Path(decided["path"]).read_text()


def test_a_float_target_gives_regression(project: Path):
    source = write_table(project, np.linspace(0.5, 99.5, 60))
    config = load_config(init_config.run(str(source), "target", configs_dir=project / "configs")["path"])
    assert config.data.task == "regression"
    assert config.evaluate.regression.thresholds["r2_score"].threshold == 0.2


@pytest.mark.parametrize(
    ("labels", "positive"), [([2, 5] * 30, 5), ([0, 1] * 30, 1), ([True, False] * 30, True), (["no", "on"] * 30, "on")]
)
def test_the_positive_class_keeps_its_type(project: Path, labels, positive):
    source = write_table(project, labels)
    path = init_config.run(str(source), "target", name="labels", force=True, configs_dir=project / "configs")["path"]
    read = load_config(path).data.positive_class
    assert read == positive and type(read) is type(positive)


@pytest.mark.parametrize(
    ("source", "table", "name"),
    [
        ("data/My Customers (2024).csv", None, "my-customers-2024"),
        ("https://example.com/x/Churn.parquet?raw=1", None, "churn"),
        ("s3://bucket/key/customers.csv", None, "customers"),
        ("sklearn:breast_cancer", None, "breast-cancer"),
        ("postgresql://user:secret@db/shop", "public.Orders", "public-orders"),
    ],
)
def test_the_default_name(source, table, name):
    assert init_config.default_name(source, table) == name


def test_odd_values_round_trip_through_the_yaml():
    scaffold = scaffold_module.Scaffold(
        name="x",
        source="a: b #c.csv",
        target="on",
        task="binary",
        task_reason="r",
        n_rows=40,
        label_counts=[("no", 20), ("yes", 20)],
        positive_class="yes",
        positive_reason="r",
        id_columns=["null", "id: 1"],
        query="SELECT *\nFROM t",
    )
    data = yaml.safe_load(scaffold_module.render(scaffold))["data"]
    assert data["source"] == "a: b #c.csv" and data["target"] == "on" and data["positive_class"] == "yes"
    assert data["id_columns"] == ["null", "id: 1"] and data["query"] == "SELECT *\nFROM t"


def test_a_dated_table_is_split_in_time_order_and_two_dates_are_left_to_choose(project: Path):
    def written(path: str) -> str:  # the config's comments as one text (they are wrapped)
        return " ".join(line.strip("# ") for line in Path(path).read_text().splitlines())

    one = init_config.run(str(project / "customers.csv"), "churned", configs_dir=project / "configs")["path"]
    config = load_config(one)
    assert (config.split.method, config.split.time_column) == ("time", "signup_date")
    assert "The table is dated (signup_date): the test split is its latest rows" in written(one)
    table = pd.read_csv(project / "customers.csv")
    table.assign(last_login=table["signup_date"]).to_csv(project / "two_dates.csv", index=False)
    two = init_config.run(str(project / "two_dates.csv"), "churned", configs_dir=project / "configs")["path"]
    assert load_config(two).split.method == "random"
    assert "Dated by signup_date, last_login" in written(two)
    table.assign(signup_date=table["signup_date"].where(table.index != 5)).to_csv(project / "gaps.csv", index=False)
    gaps = init_config.run(str(project / "gaps.csv"), "churned", configs_dir=project / "configs")["path"]
    assert load_config(gaps).split.method == "random"
    assert "1 of 60 rows have no signup_date: a split in time order needs a time on every row" in written(gaps)


def test_a_column_that_gives_the_target_away_is_written_as_a_suspect(project: Path, capsys):
    table = pd.read_csv(project / "customers.csv")
    table["cancel_reason"] = np.where(table["churned"] == "yes", "moved", "none")  # known only once they churned
    table.to_csv(project / "leaky.csv", index=False)
    assert cli.main(["init-config", "--source", "leaky.csv", "--target", "churned"]) == 0
    written = " ".join(line.strip("# ") for line in (project / "configs" / "leaky.yaml").read_text().splitlines())
    assert "Suspected leakage: cancel_reason (roc_auc 1.000)" in written
    assert "leakage    suspected: cancel_reason (roc_auc 1.000)" in capsys.readouterr().out


def rare_table(folder: Path, rows: int = 250, positives: int = 10) -> Path:
    """A binary table whose positive class ('yes') is positives/rows of the rows (4% by default)."""
    rng = np.random.default_rng(1)
    churned = np.full(rows, "no", dtype=object)
    churned[rng.choice(rows, positives, replace=False)] = "yes"
    path = folder / "rare.csv"
    pd.DataFrame({"spend": rng.normal(50, 10, rows).round(2), "churned": churned}).to_csv(path, index=False)
    return path


def comments(path: str | Path) -> str:
    """The config's comments as one text (they are wrapped)."""
    return " ".join(line.strip().lstrip("# ") for line in Path(path).read_text().splitlines())


def test_a_rare_positive_class_is_gated_on_ranking_and_gets_a_threshold_for_f1(project: Path, capsys):
    source = rare_table(project)
    assert cli.main(["init-config", "--source", str(source), "--target", "churned"]) == 0
    path = project / "configs" / "rare.yaml"
    config = load_config(path)
    gates = config.evaluate.binary.thresholds
    assert gates["roc_auc"].threshold == scaffold_module.STARTER_GATES["binary"]["roc_auc"]
    assert gates["average_precision"].threshold == 0.08  # twice the 4% a random ranking scores
    assert set(gates) == {"roc_auc", "average_precision"}  # the base config's accuracy gate removed
    assert config.decision.threshold == ThresholdRule(optimize="f1")
    assert config.evaluate.binary.compare_metric == "roc_auc"  # the rest is the base's
    assert config.decision.calibration == "none" and config.train.class_weight == "none"
    written = comments(path)
    assert "'yes' is 10 of 250 rows with a target (4.0%)" in written
    assert "accuracy rewards answering the majority class" in written and "an accuracy of 0.96" in written
    assert "twice it (0.08)" in written
    assert "out-of-fold predictions of the train split" in written and "rather than 0.5" in written
    assert "{cost: {false_positive: 1, false_negative: 10}}" in written and "{precision_at_least: 0.9}" in written
    out = capsys.readouterr().out
    assert "gates      evaluate.binary: roc_auc >= 0.75, average_precision >= 0.08" in out
    assert "not accuracy_score: the positive class is 4.0% of the rows" in out
    assert "decision   threshold {optimize: f1}" in out


def test_a_balanced_binary_table_keeps_the_accuracy_gate_and_the_threshold_of_0_5(project: Path, capsys):
    source = write_table(project, ["no"] * 27 + ["yes"] * 3)  # 10%: not rare
    assert cli.main(["init-config", "--source", str(source), "--target", "target"]) == 0
    path = project / "configs" / "numbers.yaml"
    config = load_config(path)
    gates = config.evaluate.binary.thresholds
    assert {name: gate.threshold for name, gate in gates.items()} == scaffold_module.STARTER_GATES["binary"]
    assert config.decision.threshold == 0.5
    text = path.read_text()
    assert "decision:" not in text and "average_precision" not in text
    out = capsys.readouterr().out
    assert "gates      evaluate.binary: roc_auc >= 0.75, accuracy_score >= 0.7" in out
    assert "decision" not in out and "not accuracy_score" not in out


@pytest.mark.parametrize(
    ("counts", "rare", "average_precision"),
    [
        ([("no", 90), ("yes", 10)], False, None),  # exactly the share: not rare
        ([("no", 91), ("yes", 9)], True, 0.18),
        ([("no", 10), ("yes", 90)], False, None),  # the negative class is the rare one: accuracy still means something
        ([("no", 3), ("yes", 97)], False, None),
        ([("no", 9990), ("yes", 10)], True, 0.002),
    ],
)
def test_the_rare_share_is_of_the_positive_class(counts, rare, average_precision):
    scaffold = scaffold_module.Scaffold(
        name="x",
        source="x.csv",
        target="y",
        task="binary",
        task_reason="r",
        n_rows=sum(count for _, count in counts),
        label_counts=counts,
        positive_class="yes",
        positive_reason="r",
    )
    assert scaffold.rare_positive is rare
    assert (scaffold.positive_share < scaffold_module.RARE_POSITIVE_SHARE) is rare
    if rare:
        assert scaffold.gates == {"roc_auc": 0.75, "average_precision": average_precision}
        assert scaffold.decision_threshold == {"optimize": "f1"}
        read = yaml.safe_load(scaffold_module.render(scaffold))
        assert read["decision"]["threshold"] == {"optimize": "f1"}
        assert read["evaluate"]["binary"]["thresholds"]["average_precision"] == {"threshold": average_precision}
    else:
        assert scaffold.gates == scaffold_module.STARTER_GATES["binary"]
        assert scaffold.decision_threshold is None and "decision" not in yaml.safe_load(
            scaffold_module.render(scaffold)
        )


def test_multiclass_and_regression_get_no_decision(project: Path):
    for name, labels in (("three", [0, 1, 2] * 20), ("float", np.linspace(0.5, 99.5, 60))):
        source = write_table(project, labels)
        path = init_config.run(str(source), "target", name=name, configs_dir=project / "configs")["path"]
        assert load_config(path).decision.threshold == 0.5 and "decision:" not in Path(path).read_text()


def test_a_decision_that_does_not_read_back_is_refused(project: Path, monkeypatch: pytest.MonkeyPatch):
    render = scaffold_module.render
    monkeypatch.setattr(
        init_config, "render", lambda scaffold, path: render(scaffold, path).replace("{optimize: f1}", "0.3")
    )
    with pytest.raises(ConfigError, match="decision.threshold reads back as 0.3"):
        init_config.run(str(rare_table(project)), "churned", configs_dir=project / "configs")
    assert sorted(path.name for path in (project / "configs").iterdir()) == ["pipeline.yaml"]
