"""One nested MLflow run per Optuna trial, written after the trial ends in three calls (create, batch, end).

Used as an Optuna callback directly (inline) or inside the writer process of `trial_writer.py`; a writer thread
was measured no faster (the writes need the GIL that XGBoost's Python callbacks need too).
"""

from __future__ import annotations

import threading

import optuna
from mlflow.entities import Metric, Param, RunStatus
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

_STATUS = {
    optuna.trial.TrialState.COMPLETE: RunStatus.FINISHED,
    optuna.trial.TrialState.PRUNED: RunStatus.KILLED,
    optuna.trial.TrialState.FAIL: RunStatus.FAILED,
}


def _millis(moment) -> int:
    return int(moment.timestamp() * 1000)


class TrialRunLogger:
    """Optuna callback: mirror each finished trial of this process as a child run of the tune run."""

    def __init__(self, client: MlflowClient, experiment_id: str, parent_run_id: str, metric: str) -> None:
        self._client = client
        self._experiment_id = experiment_id
        self._parent_run_id = parent_run_id
        self._metric = metric
        self._lock = threading.Lock()  # trials may finish in parallel threads (tune.n_jobs > 1)
        self.logged = 0

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        with self._lock:
            self.write(study.study_name, trial)
            self.logged += 1

    def write(self, study_name: str, trial: optuna.trial.FrozenTrial) -> None:
        """Create, fill and end the child run of one trial."""
        start = _millis(trial.datetime_start)
        end = _millis(trial.datetime_complete) if trial.datetime_complete else start
        name = f"trial-{trial.number}"
        tags = {
            MLFLOW_PARENT_RUN_ID: self._parent_run_id,
            MLFLOW_RUN_NAME: name,
            "optuna.trial_number": str(trial.number),
            "optuna.trial_state": trial.state.name,
            "optuna.study_name": study_name,
        }
        if trial.state == optuna.trial.TrialState.PRUNED and trial.intermediate_values:
            tags["optuna.pruned_at_round"] = str(max(trial.intermediate_values) + 1)
        metrics = [
            Metric(key, float(value), end, 0)
            for key, value in trial.user_attrs.items()
            if isinstance(value, (int, float))
        ]
        if trial.value is not None:
            metrics.append(Metric(f"valid_{self._metric}", float(trial.value), end, 0))
        params = [Param(key, str(value)) for key, value in trial.params.items()]
        child = self._client.create_run(self._experiment_id, start_time=start, tags=tags, run_name=name)
        self._client.log_batch(child.info.run_id, metrics=metrics, params=params)
        status = RunStatus.to_string(_STATUS.get(trial.state, RunStatus.FAILED))
        self._client.set_terminated(child.info.run_id, status=status, end_time=end)
