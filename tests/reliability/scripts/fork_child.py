"""Child program for test_fork: a process with a live telemetry tree forks, and both sides tell.

The process (the "parent" here) opens a connection, tells the first half of its session and
forks. The forked child tells a session of its own, by the spec's `case`:

- `os_fork`: `os.fork()`; the child connects, tells, calls `actors.shutdown()`, `os._exit(0)`.
- `mp_fork`: a `multiprocessing` fork-context `Process` connects and tells, and just returns.
- `mp_inherited_connection`: such a `Process` tells through the parent's own `Connection`.

Then the parent tells the rest of its session, closes, reports and exits through the exit
hook. The child reports to `<report>.child.json`. Nothing is printed.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import traceback
import warnings
from typing import Any

from child_common import (
    connect_ready,
    host_state,
    load_spec,
    tell_session,
    tell_statement,
    tree_threads,
    wait_flag_on,
    wait_until,
    write_report,
)

import actors
from messages import events as ev

JOIN_TIMEOUT_S = 20.0


def child_facts(connection: actors.Connection) -> dict[str, Any]:
    """What the child sees of its own telemetry: its pid, threads, registry and host tree."""
    state = actors.dump_state(1.0)
    return {
        "pid": os.getpid(),
        "threads": tree_threads(),
        "registry_connects": state["registry"]["connects"],
        "host": state["hosts"].get(connection.host, {}),
    }


def child_report(spec: dict[str, Any], **facts: Any) -> None:
    write_report({"report": spec["report"] + ".child.json"}, **facts)


def child_connects_and_tells(spec: dict[str, Any]) -> None:
    """The child's own connection and session; leaves without shutdown (mp exits it)."""
    connection = connect_ready(spec)
    told = tell_session(connection, "child-session")
    child_report(spec, told=told, **child_facts(connection))


def child_uses_inherited(connection: actors.Connection, spec: dict[str, Any]) -> None:
    """Tell through a connection opened before the fork: it must rebind to a tree of our own."""
    told = tell_session(connection, "child-session")
    wait_flag_on(connection)  # logs held for the flag would be dropped at exit
    child_report(spec, told=told, **child_facts(connection))


def run_os_fork(spec: dict[str, Any]) -> int:
    # Forking a process with live threads is what this case tests; 3.12+ warns about it.
    warnings.filterwarnings(
        "ignore", r"This process .* is multi-threaded, use of fork\(\)", DeprecationWarning
    )
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            child_connects_and_tells(spec)
            code = 0 if actors.shutdown(5.0) else 2
        except BaseException:
            child_report(spec, error=traceback.format_exc())
        finally:
            os._exit(code)
    deadline_s = time.monotonic() + JOIN_TIMEOUT_S
    pause = threading.Event()
    while time.monotonic() < deadline_s:
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped:
            return os.waitstatus_to_exitcode(status)
        pause.wait(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -999


def run_mp(target: Any, *args: Any) -> int:
    process = multiprocessing.get_context("fork").Process(target=target, args=args)
    process.start()
    process.join(JOIN_TIMEOUT_S)
    if process.exitcode is None:
        process.kill()
        process.join(5.0)
        return -999
    return process.exitcode


def main() -> None:
    spec = load_spec()
    parent = connect_ready(spec)
    sid = "parent-session"
    told = int(parent.tell(ev.ConnectionOpened(session_id=sid, latency_ms=3.0)))
    told += tell_statement(parent, sid, "before-fork")
    threads_before = tree_threads()

    if spec["case"] == "os_fork":
        exitcode = run_os_fork(spec)
    elif spec["case"] == "mp_fork":
        exitcode = run_mp(child_connects_and_tells, spec)
    else:
        exitcode = run_mp(child_uses_inherited, parent, spec)

    threads_after = tree_threads()
    alive_after = all(t.is_alive() for t in threading.enumerate() if t.name in set(threads_before))
    told += tell_statement(parent, sid, "after-fork")
    told += int(parent.tell(ev.ConnectionClosed(session_id=sid, latency_ms=1.0)))
    account = wait_until(
        lambda: (
            (host_state(parent.host).get("accounting") or {}).get("told") == told
            and host_state(parent.host)["accounting"]
        ),
        "the parent's events to be counted",
    )
    parent.close()
    write_report(
        spec,
        pid=os.getpid(),
        told=told,
        child_exitcode=exitcode,
        threads_before=threads_before,
        threads_after=threads_after,
        alive_after=alive_after,
        account=account,
    )


if __name__ == "__main__":
    main()
