"""Child program for test_bounded_exit: does a workload, then leaves by one exit path.

The spec names the `case`, the endpoint `url` and `token`, and `telemetry.*` `properties`.
Nothing here calls `actors.shutdown()`: the library's own exit hook must end the process within
`telemetry.shutdown_timeout_ms`. The report's `workload_done_s` (time.monotonic(), comparable
with the parent's on the same machine) marks the moment the child starts leaving.
"""

from __future__ import annotations

import pathlib
import signal
import sys
import threading
import time
from typing import Any

from child_common import (
    connect,
    connect_ready,
    host_state,
    load_spec,
    tell_session,
    wait_until,
    write_report,
)

import actors
from messages import events as ev


def done(spec: dict[str, Any], **facts: Any) -> None:
    """Report that the workload is over; from here on the process only exits."""
    write_report(spec, workload_done_s=time.monotonic(), **facts)


def close_then_return(spec: dict[str, Any]) -> None:
    connection = connect_ready(spec)
    told = tell_session(connection, "closed-session")
    connection.close()
    done(spec, told=told)


def return_without_close(spec: dict[str, Any]) -> None:
    connection = connect_ready(spec)
    told = tell_session(connection, "open-session")
    done(spec, told=told)


def hanging_endpoint(spec: dict[str, Any]) -> None:
    """Leave while the exporter is stuck in a POST the endpoint never answers."""
    connection = connect_ready(spec)
    told = tell_session(connection, "hung-session")

    def exporter_stuck() -> bool:
        state = host_state(connection.host, timeout_s=0.2)
        in_export = state.get("aggregator", {}).get("in_flight_batches", 0) >= 1
        return in_export and "error" in state.get("exporter", {})

    wait_until(exporter_stuck, "the exporter to be stuck in a POST")
    done(spec, told=told)


def breaker_open(spec: dict[str, Any]) -> None:
    """Leave while the breaker is open: one failed POST opened it, later logs wait on it."""
    connection = connect_ready(spec)
    told = tell_session(connection, "failing-session")
    wait_until(
        lambda: (
            host_state(connection.host).get("exporter", {}).get("breaker", {}).get("state")
            == "OPEN"
        ),
        "the breaker to open",
    )
    told += tell_session(connection, "refused-session")
    done(spec, told=told)


def worker_thread(spec: dict[str, Any]) -> None:
    """The main thread returns at once; a non-daemon worker does the work, then sys.exit()s."""

    main_returning = threading.Event()

    def work() -> None:
        # 3.12.1 (gh-113964): no tree can start; the events are counted
        if threads_refused(main_returning):
            connection = connect(spec)
            accepted = sum(connection.tell(event) for event in session_events("worker-session"))
            counted = actors.dump_state(1.0)["dropped_without_registry"]
            done(spec, threads_refused=True, accepted=accepted, counted=counted)
        else:
            connection = connect_ready(spec)
            done(spec, told=tell_session(connection, "worker-session"), threads_refused=False)
        sys.exit(0)  # ends only this thread, silently

    threading.Thread(target=work, name="driver-worker").start()
    main_returning.set()


def threads_refused(main_returning: threading.Event) -> bool:
    """Whether the interpreter refuses new threads once the main thread has returned: probe for
    half a second after it said it would return (3.12.1 does, from its return on)."""
    main_returning.wait(10.0)
    deadline_s = time.monotonic() + 0.5
    pause = threading.Event()
    while time.monotonic() < deadline_s:
        try:
            probe = threading.Thread(target=lambda: None, name="probe")
            probe.start()
        except RuntimeError:
            return True
        probe.join(5.0)
        pause.wait(0.01)
    return False


def session_events(session_id: str) -> list[object]:
    """The five events `tell_session` tells, for telling one by one."""
    statement_id = f"{session_id}/q1"
    return [
        ev.ConnectionOpened(session_id=session_id, latency_ms=3.0),
        ev.StatementStarted(statement_id=statement_id, session_id=session_id),
        ev.OperationPolled(statement_id=statement_id, latency_ms=2.0),
        ev.StatementCompleted(statement_id=statement_id, operation_latency_ms=9),
        ev.ConnectionClosed(session_id=session_id, latency_ms=1.0),
    ]


def sys_exit_in_with(spec: dict[str, Any]) -> None:
    with connect_ready(spec) as connection:
        told = tell_session(connection, "with-session")
        done(spec, told=told)
        sys.exit(3)


def raise_keyboard_interrupt(spec: dict[str, Any]) -> None:
    connection = connect_ready(spec)
    told = tell_session(connection, "interrupted-session")
    done(spec, told=told)
    raise KeyboardInterrupt


def wait_for_sigint(spec: dict[str, Any]) -> None:
    """Signal readiness through a file (stdout stays empty), then idle until SIGINT arrives."""
    # Python keeps SIGINT ignored when it starts with it ignored, as a shell's background job
    # without job control does (pytest run with `&` from a script): the parent's SIGINT would
    # then never arrive. An interactive program's default handler is what this case is about.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    connection = connect_ready(spec)
    told = tell_session(connection, "sigint-session")
    write_report(spec, told=told)
    pathlib.Path(spec["ready"]).touch()
    threading.Event().wait(60.0)  # interrupted by the parent's SIGINT
    raise RuntimeError("no SIGINT within 60 s")


CASES = {
    "close_then_return": close_then_return,
    "return_without_close": return_without_close,
    "hanging_endpoint": hanging_endpoint,
    "breaker_open": breaker_open,
    "worker_thread": worker_thread,
    "sys_exit_in_with": sys_exit_in_with,
    "raise_keyboard_interrupt": raise_keyboard_interrupt,
    "sigint": wait_for_sigint,
}

if __name__ == "__main__":
    spec = load_spec()
    CASES[spec["case"]](spec)
