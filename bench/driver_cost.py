"""Item 1: what telling an event costs the driver's own thread, against the floor.

Every event is constructed and told on the driver thread and timed on its own with
`perf_counter_ns` (the timer's own overhead, measured in the same run, is subtracted). Statements
are paced (five events, then the driver waits ~0.2 ms, as it would on the network), so the tree's
threads run between statements as they would under a real driver; "back-to-back" rows tell
without pause and divide the loop's wall time by its events, which also bills the GIL time the
aggregator takes meanwhile.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from _common import (
    auth_headers,
    ids,
    pc_ns,
    percentile,
    quiet_gc,
    timer_overhead_ns,
    wait_flags,
)
from _endpoint import EndpointProcess
from _statement_events import (
    EVENTS_PER_STATEMENT,
    tell_statement,
    timed_construct_only,
    timed_statement,
)

import actors
from messages.events import OperationPolled
from messages.sysconfig import DriverInfo

DRIVER = DriverInfo(name="BenchDriver", version="1.0.0")
_PACE_S = 0.0002


class Floor:
    """The least any tell could cost: build a tuple and put it on a C SimpleQueue."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._put = self._queue.put
        self._context = object()
        self._thread = threading.Thread(target=self._drain, name="bench-floor", daemon=True)
        self._thread.start()

    def tell(self, event: object) -> bool:
        """Tuple plus put, nothing else."""
        self._put((self._context, event))
        return True

    def _drain(self) -> None:
        while self._queue.get() is not None:
            pass

    def close(self) -> None:
        """Stop the consumer thread."""
        self._queue.put(None)
        self._thread.join(2.0)


def _per_call(tell: Any, sids: list[str], overhead_ns: float, paced: bool) -> dict[str, float]:
    samples: list[int] = []
    pause = threading.Event()
    with quiet_gc():
        for sid in sids:
            timed_statement(tell, sid, samples)
            if paced:
                pause.wait(_PACE_S)
    return _stats(samples, overhead_ns)


def _stats(samples: list[int], overhead_ns: float) -> dict[str, float]:
    samples.sort()
    return {
        "median_us": max(0.0, percentile(samples, 0.5) - overhead_ns) / 1000,
        "p99_us": max(0.0, percentile(samples, 0.99) - overhead_ns) / 1000,
        "mean_us": max(0.0, sum(samples) / len(samples) - overhead_ns) / 1000,
    }


def _back_to_back(tell: Any, sids: list[str]) -> dict[str, float]:
    with quiet_gc():
        t0, c0 = time.perf_counter(), time.thread_time()
        for sid in sids:
            tell_statement(tell, sid)
        t1, c1 = time.perf_counter(), time.thread_time()
    events = len(sids) * EVENTS_PER_STATEMENT
    return {"wall_us": (t1 - t0) / events * 1e6, "thread_cpu_us": (c1 - c0) / events * 1e6}


def _guarded(connection: Any, count: int) -> list[int]:
    """`if conn.enabled: conn.tell(...)`: what a driver pays when telemetry is disabled."""
    out = [0] * count
    with quiet_gc():
        for i in range(count):
            t0 = pc_ns()
            if connection.enabled:
                connection.tell(OperationPolled(statement_id="s", latency_ms=1.0))
            out[i] = pc_ns() - t0
    return out


def _tell_only(connection: Any, count: int) -> list[int]:
    event = OperationPolled(statement_id="s", latency_ms=1.0)
    tell = connection.tell
    out = [0] * count
    with quiet_gc():
        for i in range(count):
            t0 = pc_ns()
            tell(event)
            out[i] = pc_ns() - t0
    return out


def run(quick: bool, **_: Any) -> dict[str, Any]:
    """Measure every configuration `repeats` times, interleaved, in this one process."""
    repeats = 3 if quick else 5
    statements = 1000 if quick else 4000
    loop_statements = 2000 if quick else 10000
    runs: dict[str, list[dict[str, float]]] = {}

    def add(name: str, value: dict[str, float]) -> None:
        runs.setdefault(name, []).append(value)

    with EndpointProcess(flag=True) as on, EndpointProcess(flag=False) as off:
        enabled = actors.connect(on.url, driver=DRIVER, auth=auth_headers)
        flag_off = actors.connect(off.url, driver=DRIVER, auth=auth_headers)
        disabled = actors.connect(
            on.url, {"telemetry.enabled": "false"}, driver=DRIVER, auth=auth_headers
        )
        flag_known = wait_flags({on.host_port: True, off.host_port: False}, 10.0)
        floor = Floor()
        try:
            if not flag_known:
                raise RuntimeError("the feature flags were not fetched within 10 s")
            for sid in ids(2000):  # warm up every path
                for target in (floor.tell, enabled.tell, flag_off.tell, disabled.tell):
                    tell_statement(target, sid)
            for _ in range(repeats):
                overhead = timer_overhead_ns()
                add("timer_overhead_ns", {"value": overhead})
                add("floor", _per_call(floor.tell, ids(statements), overhead, paced=True))
                samples: list[int] = []
                with quiet_gc():
                    for sid in ids(statements):
                        timed_construct_only(sid, samples)
                add("construct_only", _stats(samples, overhead))
                add("enabled", _per_call(enabled.tell, ids(statements), overhead, paced=True))
                add("flag_off", _per_call(flag_off.tell, ids(statements), overhead, paced=True))
                add("disabled", _per_call(disabled.tell, ids(statements), overhead, paced=False))
                add("disabled_tell_only", _stats(_tell_only(disabled, 20000), overhead))
                add("disabled_guarded", _stats(_guarded(disabled, 20000), overhead))
                add("floor_back_to_back", _back_to_back(floor.tell, ids(loop_statements)))
                add("enabled_back_to_back", _back_to_back(enabled.tell, ids(loop_statements)))
        finally:
            floor.close()
            for connection in (enabled, flag_off, disabled):
                connection.close()
            actors.shutdown(2.0)
    return {"repeats": repeats, "events_per_run": statements * EVENTS_PER_STATEMENT, "runs": runs}
