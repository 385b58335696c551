"""train's plots, for people looking at the run: XGBoost's gain per feature (`plots/feature_importance.png`),
the reliability diagram of the test split (`plots/calibration.png`, classification; evaluate draws one too) and,
when the `shap` extra is installed, a SHAP summary of held-out rows (`plots/shap_summary.png`).

The numbers come from XGBoost in train's process (gain, and its own TreeSHAP: `pred_contribs`). The drawing, which
costs about a second of importing matplotlib (and shap), runs in a process forked when train starts, while train
reads, fits and logs the model; the pictures are logged once both are done. A plot that cannot be drawn is a
warning, never a failed train run. Where the OS does not fork (macOS, Windows), they are drawn in train's process."""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from loguru import logger

from pipeline.contract import CALIBRATION_ARTIFACT, FEATURE_IMPORTANCE_ARTIFACT, SHAP_SUMMARY_ARTIFACT

# Held-out rows the SHAP summary explains: XGBoost computes their contributions in about a second for a model of
# 500 trees; a bag of n models (train.bag) has n times the trees, so it explains 1/n of the rows, at least the
# minimum (the bag's SHAP values are the mean of its members': it is explained exactly, on fewer rows).
SHAP_ROWS, SHAP_MIN_ROWS = 1000, 200
MAX_FEATURES = 20  # the largest ones per plot
_JOIN_TIMEOUT_S = 120.0
_PLOTS_FOLDER = str(Path(FEATURE_IMPORTANCE_ARTIFACT).parent)  # both plots' folder in the run's artifacts


# A reliability curve: (label, mean predicted probability per bin, observed share of the label per bin).
Curve = tuple[str, np.ndarray, np.ndarray]


@dataclass
class _Figures:
    """What the plots show, computed before the drawing starts."""

    gain: dict[str, float]
    contributions: np.ndarray | None  # rows x features (x classes first for multiclass), the bias column dropped
    rows: pd.DataFrame | None  # the explained rows, numbers only (category codes), colouring the SHAP dots
    classes: list[str]
    curves: list[Curve] | None = None  # the reliability diagram of the test split (classification)
    n_rows: int = 0  # the test split's rows the curves are of


def reliability(truth: np.ndarray, probabilities: np.ndarray, classes: list[Any]) -> list[Curve]:
    """Reliability curves of held-out predictions (class indexes, probabilities in the model's class order): binary,
    the positive class; multiclass, each class against the rest. Ten bins of equal row counts."""
    from sklearn.calibration import calibration_curve

    shown = [1] if probabilities.shape[1] == 2 else range(probabilities.shape[1])
    curves = []
    for k in shown:
        observed, predicted = calibration_curve(truth == k, probabilities[:, k], n_bins=10, strategy="quantile")
        curves.append((str(classes[k]), predicted, observed))
    return curves


def draw_calibration(curves: list[Curve], path: Path, rows: int) -> None:
    """The reliability diagram: observed share against predicted probability, per class, and the diagonal."""
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 6))
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for label, predicted, observed in curves:
        axes.plot(predicted, observed, marker="o", label=f"{label}")
    axes.set(
        xlabel="mean predicted probability",
        ylabel="observed share",
        xlim=(0, 1),
        ylim=(0, 1),
        title=f"calibration on {rows} held-out rows (10 bins of equal rows)",
    )
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def shap_installed() -> bool:
    return importlib.util.find_spec("shap") is not None


def _figures(
    model: Any, held_out: pd.DataFrame | None, classes: list[Any], curves: list[Curve] | None, members: int
) -> _Figures:
    import xgboost

    booster = model.get_booster()
    gain = booster.get_score(importance_type="gain")
    contributions = rows = None
    if held_out is not None and len(held_out) and shap_installed():
        explained = max(SHAP_MIN_ROWS, SHAP_ROWS // members)
        sample = held_out.sample(n=min(explained, len(held_out)), random_state=0)
        matrix = xgboost.DMatrix(sample, enable_categorical=True)
        contributions = booster.predict(matrix, pred_contribs=True)[..., :-1]  # the last column is the bias
        rows = sample.apply(_as_numbers)
    n_rows = len(held_out) if held_out is not None else 0
    return _Figures(gain, contributions, rows, [str(label) for label in classes], curves, n_rows)


def _as_numbers(column: pd.Series) -> pd.Series:
    """Category codes for a categorical column (missing stays missing): what colours a SHAP dot."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.where(column.notna()).astype("float64")
    return column


def _draw_importance(gain: dict[str, float], path: Path) -> None:
    from matplotlib import pyplot
    from xgboost import plot_importance

    axes = plot_importance(gain, importance_type="gain", max_num_features=MAX_FEATURES, show_values=False)
    axes.set_title("feature importance (gain)")
    axes.figure.tight_layout()
    axes.figure.savefig(path, dpi=100)
    pyplot.close(axes.figure)


def _draw_shap(values: np.ndarray, rows: pd.DataFrame, classes: list[str], path: Path) -> None:
    import shap
    from matplotlib import pyplot

    if values.ndim == 3:  # multiclass: one array per class, shown as stacked bars
        per_class = [values[:, k, :] for k in range(values.shape[1])]
        shap.summary_plot(per_class, rows, class_names=classes, max_display=MAX_FEATURES, show=False)
    else:
        shap.summary_plot(values, rows, max_display=MAX_FEATURES, show=False)
    figure = pyplot.gcf()
    figure.suptitle(f"SHAP values on {len(rows)} held-out rows (XGBoost's TreeSHAP, margin scale)", y=1.04)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    pyplot.close(figure)


def draw(figures: _Figures, folder: Path) -> None:
    """Both plots as PNG files in `folder` (the importance one only when the model split on some feature)."""
    _load_drawing_libraries()
    if figures.gain:
        _draw_importance(figures.gain, folder / Path(FEATURE_IMPORTANCE_ARTIFACT).name)
    if figures.contributions is not None and figures.rows is not None:
        _draw_shap(figures.contributions, figures.rows, figures.classes, folder / Path(SHAP_SUMMARY_ARTIFACT).name)
    if figures.curves:
        draw_calibration(figures.curves, folder / Path(CALIBRATION_ARTIFACT).name, figures.n_rows)


def _load_drawing_libraries() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # loaded ahead of the figures: the slow part

    if shap_installed():
        import shap  # noqa: F401


def _draw_safely(figures: _Figures, folder: Path) -> bool:
    try:
        draw(figures, folder)
        return True
    except Exception as exc:  # noqa: BLE001 - a plot is never worth a failed train run
        logger.warning("train's plots could not be drawn: {}: {}", type(exc).__name__, exc)
        return False


def _draw_when_sent(connection: Any, folder: Path) -> None:
    """The forked drawer: load the libraries, wait for the figures (none: train stopped first), draw them."""
    os.nice(10)  # train's own work (the fit above all) comes first on a busy machine
    with contextlib.suppress(Exception):  # `draw` loads them again and reports what fails
        _load_drawing_libraries()
    try:
        figures = connection.recv()
    except EOFError:
        return
    if not _draw_safely(figures, folder):
        sys.exit(1)


class Drawer:
    """Draws train's plots in a process forked when train starts, which loads matplotlib (and shap) while train
    reads and fits; `finish` logs what it drew to the active run. Where the OS does not fork, it draws here."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="train-plots-"))
        self.process: Any = None
        self._connection: Any = None
        if sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("fork")
            self._connection, child_end = context.Pipe()
            self.process = context.Process(target=_draw_when_sent, args=(child_end, self.folder), daemon=True)
            self.process.start()
            child_end.close()

    def __enter__(self) -> Drawer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def draw(
        self,
        model: Any,
        held_out: pd.DataFrame | None,
        classes: list[Any],
        curves: list[Curve] | None = None,
        members: int = 1,
    ) -> None:
        """Compute what the plots show and have them drawn (aside, where there is a drawer process); `curves`, the
        test split's reliability curves, make `plots/calibration.png`; `members`, the models averaged into `model`
        (fewer rows for the SHAP summary of a bigger model)."""
        figures = _figures(model, held_out, classes, curves, members)
        if not figures.gain:
            logger.info("no feature importance plot: the model has no split")
        if self._connection is None:
            _draw_safely(figures, self.folder)
            return
        self._connection.send(figures)

    def finish(self) -> list[str]:
        """Wait for the drawing and log what was drawn under `plots/` of the active run; the artifact paths."""
        import mlflow

        if self.process is not None:
            self.process.join(_JOIN_TIMEOUT_S)
            if self.process.is_alive():  # a picture may be half written: none is logged
                logger.warning("train's plots took over {:.0f} s and were left out", _JOIN_TIMEOUT_S)
                self.close()
                return []
            if self.process.exitcode:
                logger.warning("train goes on without the plots it could not draw")
        drawn = sorted(path.name for path in self.folder.glob("*.png"))
        if drawn:
            mlflow.log_artifacts(str(self.folder), _PLOTS_FOLDER)
        return [f"{_PLOTS_FOLDER}/{name}" for name in drawn]

    def close(self) -> None:
        """Stop the drawer if it still loads, waits or draws (train failed first), and remove its folder."""
        import shutil

        if self._connection is not None:
            self._connection.close()
        if self.process is not None and self.process.is_alive():
            self.process.kill()  # a throwaway process: nothing of it is kept
            self.process.join()
        shutil.rmtree(self.folder, ignore_errors=True)


DRIFT_COLUMNS = 6  # the worst columns drawn


def draw_drift(report: dict[str, Any], path: Path) -> None:
    """The drift report's worst columns: each one's reference and batch shares per bin (value bins, then missing,
    then unseen categories), titled with its PSI."""
    from matplotlib import pyplot

    worst = list(report["columns"].items())[:DRIFT_COLUMNS]
    figure, axes_grid = pyplot.subplots(len(worst), 1, figsize=(8, 2.2 * max(len(worst), 1)), squeeze=False)
    for axes, (name, entry) in zip(axes_grid[:, 0], worst, strict=False):
        bins = np.arange(len(entry["reference_shares"]))
        axes.bar(bins - 0.2, entry["reference_shares"], width=0.4, label="reference (training)")
        axes.bar(bins + 0.2, entry["batch_shares"], width=0.4, label="batch")
        tail = ["missing", "unseen"] if entry["kind"] == "categorical" else ["missing"]
        axes.set_xticks(bins, [*(str(i + 1) for i in range(len(bins) - len(tail))), *tail], fontsize=7)
        axes.set_title(f"{name}: PSI {entry['psi']:.3f} ({entry['level']})", fontsize=9)
        axes.set_ylabel("share")
    axes_grid[0, 0].legend(fontsize=7)
    figure.suptitle(f"drift of {report['rows']} rows: {report['verdict']}")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    pyplot.close(figure)


def log_drawn(draw: Callable[[Path], None], artifact: str, what: str) -> None:
    """Draw one figure here with `draw(path)` and log it to the active run as `artifact`; a figure that cannot be
    drawn is a warning naming `what`, never a failed step."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="plot-") as tmp:
        path = Path(tmp) / Path(artifact).name
        try:
            import matplotlib

            matplotlib.use("Agg")  # no screen; shap is not needed here, so not loaded
            draw(path)
        except Exception as exc:  # noqa: BLE001 - a plot is never worth a failed step
            logger.warning("{} could not be drawn: {}: {}", what, type(exc).__name__, exc)
            return
        mlflow.log_artifact(str(path), str(Path(artifact).parent))


def log_calibration(curves: list[Curve] | None, rows: int) -> None:
    """evaluate's reliability diagram of the rows it evaluated, drawn here and logged to the active run."""
    if curves:
        log_drawn(lambda path: draw_calibration(curves, path, rows), CALIBRATION_ARTIFACT, "the calibration plot")
