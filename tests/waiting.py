"""Polling with a deadline: the one way tests wait for a condition (never sleep-then-assert)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest


def poll_until(condition: Callable[[], Any], timeout_s: float, what: str = "condition") -> Any:
    """Poll `condition` until it returns something truthy (returned), or fail at the deadline."""
    deadline_s = time.monotonic() + timeout_s
    pause = threading.Event()
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline_s:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        pause.wait(0.005)
