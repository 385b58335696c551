"""Helpers shared by the integration tests."""

from __future__ import annotations

import subprocess
import time


def wait_for(predicate, timeout: float = 120.0, process: subprocess.Popen | None = None):
    """Poll `predicate` until it returns something truthy; fail the test after `timeout` seconds, or at once, with
    its output, when `process` (the one expected to make it true) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        if process is not None and process.poll() is not None:
            output = "".join(stream or "" for stream in process.communicate())
            raise AssertionError(f"the process exited ({process.returncode}) first:\n{output[-3000:]}")
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
