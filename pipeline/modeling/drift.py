"""A scored batch's drift from the model's reference profile, as predict and monitor record it: the report
(pipeline/modeling/profile.py) logged as metrics and `drift/report.json`, the worst columns drawn in
`plots/drift.png`, a log line, and with `monitor.on_drift: fail` a DriftAlert (exit 6) naming the columns."""

from __future__ import annotations

from typing import Any

import mlflow
from loguru import logger

from pipeline.config import MonitorConfig
from pipeline.contract import DRIFT_PLOT_ARTIFACT, DRIFT_REPORT_ARTIFACT
from pipeline.errors import DriftAlert
from pipeline.modeling import profile
from pipeline.modeling.profile import Tally


def new_tally(served: Any, what: str) -> Tally | None:
    """An empty tally of the model's profile; None (with one line saying so) for a model logged without one."""
    reference = getattr(served, "profile", None)
    if reference is None:
        logger.info("{}: the model carries no reference profile (logged before drift checks): no drift check", what)
        return None
    return Tally(reference)


def record(tally: Tally, monitor: MonitorConfig, what: str) -> dict[str, Any]:
    """Compare the counted batch with the profile; log the metrics, the report and the plot to the active run."""
    report = profile.compare(tally, monitor.psi_warn, monitor.psi_alert, monitor.min_rows)
    mlflow.log_metrics(profile.metrics(report))
    mlflow.log_dict(report, DRIFT_REPORT_ARTIFACT)
    from pipeline.modeling import plots  # matplotlib is loaded only once there is a report to draw

    plots.log_drawn(lambda path: plots.draw_drift(report, path), DRIFT_PLOT_ARTIFACT, "the drift plot")
    line = f"{what}: {profile.summary(report)}"
    (logger.warning if report["verdict"] in ("warn", "alert") else logger.info)("{}", line)
    return report


def enforce(report: dict[str, Any], monitor: MonitorConfig, what: str) -> None:
    """`monitor.on_drift: fail` and an alert: a DriftAlert naming the columns (exit 6)."""
    if report["verdict"] == "alert" and monitor.on_drift == "fail":
        raise DriftAlert(
            f"{what}: {profile.summary(report)}, at least monitor.psi_alert {monitor.psi_alert} "
            "(monitor.on_drift: fail); see the run's drift/report.json",
            report["alerted"],
        )
