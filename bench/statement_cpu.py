"""Item 2: total CPU of this process per exported statement, until the endpoint accepted it.

Each run connects a fresh tree (shipped defaults, flag fetched from the endpoint), tells
`statements` statements of five events from one driver thread, flushes, and waits until the
endpoint (a child process, so its CPU is not counted) has acknowledged every log. The main figure
uses a light endpoint (it parses each body and counts its logs), so that the endpoint's own
validation, about 60 µs of CPU per log on the same 2-core machine, does not run in parallel
with the measured threads; the same run against the fully validating endpoint is reported
beside it. CPU is `time.process_time()` over all threads of this process; per-thread figures
come from Linux schedstat. The component rows time the same work on one thread without actors:
folding five events into a log, and encoding one log for the wire.
"""

from __future__ import annotations

import time
from typing import Any

from _common import (
    auth_headers,
    ids,
    only_registry_left,
    quiet_gc,
    threads_cpu_ns,
    wait_flags,
    wait_until,
)
from _endpoint import EndpointProcess
from _statement_events import EVENTS_PER_STATEMENT, tell_statement

import actors
from messages.sysconfig import DriverInfo

DRIVER = DriverInfo(name="BenchDriver", version="1.0.0")
_PREFIXES = ("AggregatorActor-", "ExporterActor-", "telemetry-timer-", "FeatureFlagActor-")


def _exported(host_key: str) -> int:
    host = actors.dump_state(timeout_s=2.0)["hosts"].get(host_key, {})
    return int(host.get("accounting", {}).get("exported", 0))


def _one_run(endpoint: EndpointProcess, statements: int) -> dict[str, float]:
    connection = actors.connect(endpoint.url, driver=DRIVER, auth=auth_headers)
    try:
        if not wait_flags({endpoint.host_port: True}, 10.0):
            raise RuntimeError("feature flag not fetched within 10 s")
        sids = ids(statements)
        tell = connection.tell
        accepted_before = endpoint.stats()["logs_accepted"]
        with quiet_gc():
            threads_before = threads_cpu_ns(_PREFIXES)
            wall0, cpu0, driver0 = time.perf_counter(), time.process_time(), time.thread_time()
            for sid in sids:
                tell_statement(tell, sid)
            driver1 = time.thread_time()
            actors.flush(timeout_s=10.0)
            done = wait_until(
                lambda: endpoint.stats()["logs_accepted"] - accepted_before >= statements,
                20.0,
                0.002,
            )
            wall1, cpu1 = time.perf_counter(), time.process_time()
            threads_after = threads_cpu_ns(_PREFIXES)
        exported = wait_until(
            lambda: _exported(endpoint.host_port) >= statements * EVENTS_PER_STATEMENT, 5.0
        )
        if not done or not exported:
            raise RuntimeError(f"not every one of {statements} statements was exported")
        per = 1e6 / statements
        return {
            "process_cpu_us": (cpu1 - cpu0) * per,
            "driver_thread_us": (driver1 - driver0) * per,
            "aggregator_us": (threads_after[_PREFIXES[0]] - threads_before[_PREFIXES[0]])
            / 1000
            / statements,
            "exporter_us": (threads_after[_PREFIXES[1]] - threads_before[_PREFIXES[1]])
            / 1000
            / statements,
            "wall_ms": (wall1 - wall0) * 1000,
        }
    finally:
        connection.close()
        wait_until(only_registry_left, 5.0)


def statement_context() -> Any:
    """The connection context the statement logs of `statement_logs` are built in."""
    from messages.commands import ConnectionContext
    from messages.sysconfig import system_configuration

    return ConnectionContext(
        connection_id=1,
        host="bench",
        auth=None,
        user_agent=DRIVER.user_agent,
        system_configuration=system_configuration(DRIVER),
    )


def statement_logs(context: Any, sids: list[str]) -> list[Any]:
    """The logs the aggregator builds for statements of five events, one per id."""
    from actors._aggregate.statements import StatementAggregate, build_log
    from messages import events as ev
    from messages.privacy import LogKind

    logs = []
    for sid in sids:
        st = StatementAggregate(context, sid)
        st.session_id = "s"
        st.polls += 1
        st.poll_ms += 1.5
        st.add_chunk(ev.ChunkDownloaded(statement_id=sid, chunk_index=0, latency_ms=3.0))
        st.add_chunk(ev.ChunkDownloaded(statement_id=sid, chunk_index=1, latency_ms=2.0))
        st.done = ev.StatementCompleted(statement_id=sid, operation_latency_ms=12.0)
        _, log = st.driver_log()
        logs.append(build_log(context, LogKind.STATEMENT, log, 1_755_000_000_000))
    return logs


def _components(count: int) -> dict[str, float]:
    """Folding and encoding without threads: the aggregator's and exporter's per-log work."""
    from messages.wire import encode_frontend_log, encode_request

    context = statement_context()
    statement_logs(context, [])  # its imports, before timing
    sids = ids(count)
    with quiet_gc():
        t0 = time.perf_counter()
        logs = statement_logs(context, sids)
        t1 = time.perf_counter()
        encoded = [encode_frontend_log(log) for log in logs]
        t2 = time.perf_counter()
        for start in range(0, count, 100):
            encode_request(encoded[start : start + 100], 1_755_000_000_000)
        t3 = time.perf_counter()
    return {
        "build_log_us": (t1 - t0) / count * 1e6,
        "encode_log_us": (t2 - t1) / count * 1e6,
        "encode_request_per_log_us": (t3 - t2) / count * 1e6,
        "log_bytes": sum(len(e.encode()) for e in encoded) / count,
    }


def run(quick: bool, **_: Any) -> dict[str, Any]:
    """Repeat the measured run (light and validating endpoint) and the component timings."""
    repeats = 3 if quick else 7
    statements = 1000 if quick else 2000
    runs: dict[str, list[dict[str, float]]] = {"exported": [], "validated": [], "components": []}
    with EndpointProcess(flag=True, validate=False) as light, EndpointProcess(flag=True) as full:
        for endpoint in (light, full):
            _one_run(endpoint, 200)  # warm-up: imports, first connection, HTTP pool
        for _ in range(repeats):
            runs["exported"].append(_one_run(light, statements))
            runs["validated"].append(_one_run(full, statements))
            runs["components"].append(_components(2000))
        actors.shutdown(2.0)
    return {"repeats": repeats, "statements_per_run": statements, "runs": runs}
