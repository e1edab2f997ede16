"""Item 7: what `connect()` costs the driver thread: a host's first connect and a later one.

A first connect asks the registry to start the host's tree (four actors and a timer thread) and
returns once the lease is granted; it never waits for the feature flag. A later connect to a live
host only takes a lease. Both are timed on the calling thread with `perf_counter`. Between first
connects the previous tree is closed and its threads are waited for, outside the timing.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from _common import auth_headers, only_registry_left, wait_until
from _endpoint import EndpointProcess

import actors
from messages.sysconfig import DriverInfo

DRIVER = DriverInfo(name="BenchDriver", version="1.0.0")


def _connect(url: str) -> tuple[float, actors.Connection]:
    t0 = time.perf_counter()
    connection = actors.connect(url, driver=DRIVER, auth=auth_headers)
    return (time.perf_counter() - t0) * 1000, connection


def run(quick: bool, **_: Any) -> dict[str, Any]:
    """Median first and live-host connect times (ms), and close times, per repeat."""
    repeats = 3 if quick else 5
    per_repeat = 10 if quick else 20
    runs: list[dict[str, float]] = []
    with EndpointProcess(flag=True) as endpoint:
        actors.connect(endpoint.url, driver=DRIVER, auth=auth_headers).close()  # warm-up
        wait_until(only_registry_left, 10.0)
        for _ in range(repeats):
            first, live, closes = [], [], []
            for _ in range(per_repeat):
                elapsed_ms, keeper = _connect(endpoint.url)
                first.append(elapsed_ms)
                others = []
                for _ in range(5):
                    elapsed_ms, connection = _connect(endpoint.url)
                    live.append(elapsed_ms)
                    others.append(connection)
                for connection in others:
                    t0 = time.perf_counter()
                    connection.close()
                    closes.append((time.perf_counter() - t0) * 1000)
                keeper.close()
                if not wait_until(only_registry_left, 10.0):
                    raise RuntimeError("a tree did not stop within 10 s of its last close")
            runs.append(
                {
                    "first_ms": statistics.median(first),
                    "live_ms": statistics.median(live),
                    "close_ms": statistics.median(closes),
                }
            )
        actors.shutdown(2.0)
    return {"repeats": repeats, "connects_per_repeat": per_repeat, "runs": runs}
