"""Helpers shared by the integration tests."""

from __future__ import annotations

import time


def wait_for(predicate, timeout: float = 120.0):
    """Poll `predicate` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")
