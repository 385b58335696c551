"""Errors a user can act on. Each carries the process exit code the CLI returns for it."""

from __future__ import annotations


def first_line(exc: BaseException, limit: int = 5000) -> str:
    """The first line of an exception's message (its type name if empty), for tags and one-line errors."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]


class PipelineError(Exception):
    """A failure with a one-line, actionable message (no traceback is shown for these)."""

    exit_code = 1


class ConfigError(PipelineError):
    """The configuration file or an override is invalid."""

    exit_code = 2


class DataError(PipelineError):
    """Input data is missing, malformed or does not match what the model expects."""

    exit_code = 2


class UpstreamError(PipelineError):
    """No usable upstream run: none finished, or a pinned run is missing, unfinished or of another step."""

    exit_code = 3


class TrackingError(PipelineError):
    """The tracking server or store cannot be reached or refused the request."""

    exit_code = 4


class SourceUnreachable(PipelineError):
    """The data source's server cannot be reached, refused the login or lacks the database (`data.source`)."""

    exit_code = 4


class ClusterError(PipelineError):
    """engine dask: the Dask scheduler cannot be reached, or a worker was lost or failed during the work."""

    exit_code = 4


class GateRejected(PipelineError):
    """The challenger failed evaluation and the user asked a rejection to fail the step."""

    exit_code = 5


class DriftAlert(PipelineError):
    """predict or monitor: the batch drifted from the model's reference profile past `monitor.psi_alert`, with
    `monitor.on_drift: fail` (predict has written its output first). `details["drifted"]` names the columns."""

    exit_code = 6

    def __init__(self, message: str, drifted: list[str]) -> None:
        super().__init__(message)
        self.details = {"drifted": drifted}  # in the failure's result


class NotReproduced(PipelineError):
    """reproduce: the rebuilt version differs from the original (or a step of the rebuild failed); `details` holds
    the comparison."""

    exit_code = 7

    def __init__(self, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.details = details or {}
