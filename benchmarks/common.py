"""Helpers shared by the benchmark scripts: a fresh tracking store, a child process's wall time and peak memory."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "PIPELINE_LOG_LEVEL": "WARNING",
}


@dataclass
class Measured:
    seconds: float
    peak_mb: float
    stdout: str


# Runs a command and writes the peak RSS (KiB) of its largest process: a fresh parent, so that earlier children
# do not count (RUSAGE_CHILDREN keeps the maximum over every child a process ever waited for).
_PEAK_WRAPPER = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
    "sys.exit(code)"
)


def run_measured(command: list[str], env: dict[str, str], cwd: Path = ROOT) -> Measured:
    """Run a command to its end: its wall time, the peak RSS of its largest process, its standard output."""
    with tempfile.NamedTemporaryFile(suffix=".peak") as peak:
        started = time.perf_counter()
        # The environment's own bin folder first, as `make` does: `mlflow run` starts `python -m pipeline`.
        path = f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        done = subprocess.run(
            [PYTHON, "-c", _PEAK_WRAPPER, peak.name, *command],
            cwd=cwd,
            env={**os.environ, **QUIET_ENV, "PATH": path, **env},
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        peak_kb = int(Path(peak.name).read_text() or 0)
    return Measured(seconds, peak_kb / 1024, done.stdout)


@contextmanager
def fresh_store() -> tuple[str, Path]:
    """A temporary folder holding an empty SQLite tracking store whose schema is already created."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        subprocess.run(
            [PYTHON, "-c", f"from mlflow.tracking import MlflowClient; MlflowClient('{uri}').search_experiments()"],
            check=True,
            capture_output=True,
            env={**os.environ, **QUIET_ENV},
        )
        yield uri, Path(tmp)


def machine(utc: bool = False) -> str:
    """The machine a figure was measured on, for a benchmark's "how measured" line: host (CPU model), cores, date."""
    import os
    import platform
    import subprocess

    date = subprocess.run(["date", *(["-u"] if utc else [])], capture_output=True, text=True).stdout.strip()
    cpu = platform.processor() or platform.machine()
    try:
        names = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{platform.node()} ({cpu}), {os.cpu_count()} cores (shared), {date}"
