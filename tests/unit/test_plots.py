"""train's plots (pipeline/modeling/plots.py): both pictures drawn from XGBoost's own numbers, for binary and
multiclass models with categories and gaps; drawn in a forked process and logged to the active run; a drawing that
fails is a warning and the run goes on."""

from __future__ import annotations

import time

import mlflow
import numpy as np
import pandas as pd
import pytest
from xgboost import XGBClassifier

from pipeline.contract import CALIBRATION_ARTIFACT, FEATURE_IMPORTANCE_ARTIFACT, SHAP_SUMMARY_ARTIFACT
from pipeline.modeling import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def table(rows: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "calls": rng.poisson(2, rows).astype(float),
            "spend": rng.normal(50, 10, rows),
            "plan": pd.Categorical(rng.choice(["basic", "plus", "pro", None], rows)),
        }
    )
    frame.loc[rng.random(rows) < 0.1, "calls"] = np.nan
    score = frame["spend"] + 8 * frame["calls"].fillna(0)
    classes = (score > 66).astype(int) + (frame["plan"] == "pro").astype(int)
    return frame, classes.to_numpy()


def fitted(frame: pd.DataFrame, labels: np.ndarray) -> XGBClassifier:
    model = XGBClassifier(n_estimators=10, max_depth=3, enable_categorical=True, tree_method="hist")
    return model.fit(frame, labels)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_both_plots_are_drawn_from_xgboost_numbers(tmp_path, n_classes):
    frame, labels = table()
    labels = np.minimum(labels, n_classes - 1)
    model = fitted(frame, labels)
    curves = plots.reliability(labels, model.predict_proba(frame), list(range(n_classes)))
    assert len(curves) == (1 if n_classes == 2 else n_classes)  # binary: the positive class's curve alone
    figures = plots._figures(model, frame, list(range(n_classes)), curves, members=1)
    assert set(figures.gain) == {"calls", "spend", "plan"}
    expected_shape = (len(frame), n_classes, 3) if n_classes > 2 else (len(frame), 3)
    assert figures.contributions.shape == expected_shape
    assert figures.rows["plan"].dtype == "float64" and figures.rows["plan"].isna().any()  # codes, gaps kept
    plots.draw(figures, tmp_path)
    for artifact in (FEATURE_IMPORTANCE_ARTIFACT, SHAP_SUMMARY_ARTIFACT, CALIBRATION_ARTIFACT):
        assert (tmp_path / artifact.split("/")[-1]).read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize(("members", "explained"), [(1, 1000), (2, 500), (10, plots.SHAP_MIN_ROWS)])
def test_a_bag_is_explained_on_fewer_rows(members, explained):
    frame, labels = table(rows=1500)
    figures = plots._figures(fitted(frame, np.minimum(labels, 1)), frame, [0, 1], None, members=members)
    assert figures.contributions.shape == (explained, 3) and figures.n_rows == 1500


def test_the_plots_are_drawn_aside_and_logged_to_the_run(tracking_uri):
    frame, labels = table()
    model = fitted(frame, np.minimum(labels, 1))
    with mlflow.start_run() as run, plots.Drawer() as drawer:
        assert drawer.process.is_alive()  # forked on Linux, loading matplotlib before there is anything to draw
        drawer.draw(model, frame, [0, 1])
        logged = drawer.finish()
    assert logged == sorted([FEATURE_IMPORTANCE_ARTIFACT, SHAP_SUMMARY_ARTIFACT])
    listed = {item.path for item in mlflow.MlflowClient().list_artifacts(run.info.run_id, "plots")}
    assert listed == set(logged) and not drawer.folder.exists()


def test_a_drawer_given_nothing_to_draw_stops_with_train():
    with plots.Drawer() as drawer:
        pass  # train failed before its model was fitted
    assert not drawer.process.is_alive() and not drawer.folder.exists()


def test_a_plot_that_cannot_be_drawn_is_a_warning(tracking_uri, monkeypatch):
    frame, labels = table()

    def broken(figures, folder):
        raise RuntimeError("no fonts here")

    monkeypatch.setattr(plots, "draw", broken)
    with mlflow.start_run() as run, plots.Drawer() as drawer:
        drawer.draw(fitted(frame, np.minimum(labels, 1)), frame, [0, 1])
        assert drawer.finish() == []
    assert mlflow.MlflowClient().get_run(run.info.run_id).info.status == "FINISHED"
    assert drawer.process.exitcode == 1


def test_plots_still_drawing_after_the_wait_are_left_out(tracking_uri, monkeypatch):
    frame, labels = table()

    def slow(figures, folder):
        (folder / "feature_importance.png").write_bytes(PNG_SIGNATURE)  # half written when the wait ends
        time.sleep(60)

    monkeypatch.setattr(plots, "draw", slow)
    monkeypatch.setattr(plots, "_JOIN_TIMEOUT_S", 1.0)
    with mlflow.start_run() as run, plots.Drawer() as drawer:
        drawer.draw(fitted(frame, np.minimum(labels, 1)), frame, [0, 1])
        assert drawer.finish() == []
        assert not drawer.process.is_alive()
    assert mlflow.MlflowClient().list_artifacts(run.info.run_id, "plots") == []
