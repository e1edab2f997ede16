"""Encoding one frontend log to JSON: the cattrs converter (`messages.wire`) beside the generated
encoder (`messages.encode`), on the same statement logs, interleaved, one thread, no actors.

The logs are what the aggregator builds for a statement of five events (as in `statement_cpu`'s
component rows). Before timing, every log is encoded both ways and the strings compared: a
difference fails the section rather than report a speed of wrong output.
"""

from __future__ import annotations

import time
from typing import Any

from _common import ids, quiet_gc
from statement_cpu import DRIVER


def _logs(count: int) -> list[Any]:
    from actors._aggregate.statements import StatementAggregate, build_log
    from messages import events as ev
    from messages.commands import ConnectionContext
    from messages.privacy import LogKind
    from messages.sysconfig import system_configuration

    context = ConnectionContext(
        connection_id=1,
        host="bench",
        auth=None,
        user_agent=DRIVER.user_agent,
        system_configuration=system_configuration(DRIVER),
    )
    logs = []
    for sid in ids(count):
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


def run(quick: bool, **_: Any) -> dict[str, Any]:
    """µs per log for both encoders, per repeat."""
    from messages import encode, wire

    repeats = 5 if quick else 9
    logs = _logs(2000)
    mismatches = sum(wire.encode_frontend_log(g) != encode.encode_frontend_log(g) for g in logs)
    if mismatches:
        raise RuntimeError(f"{mismatches} logs encode differently: not measured")
    runs = []
    for _ in range(repeats):
        result = {}
        for name, fn in (
            ("converter_us", wire.encode_frontend_log),
            ("generated_us", encode.encode_frontend_log),
        ):
            with quiet_gc():
                t0 = time.perf_counter()
                for log in logs:
                    fn(log)
                result[name] = (time.perf_counter() - t0) / len(logs) * 1e6
        result["ratio"] = result["generated_us"] / result["converter_us"]
        runs.append(result)
    size = sum(len(wire.encode_frontend_log(g).encode()) for g in logs) / len(logs)
    return {"logs": len(logs), "log_bytes": size, "runs": runs}
