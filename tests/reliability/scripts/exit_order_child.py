"""Child program for test_exit_order: exit hooks around the library's own.

This process registers a "late" `atexit` handler before importing the library (`late` is
`before_import`: it runs after the library's exit hook, atexit being last in, first out) or
after (`after_import`: it runs before it), and, with `finalize_first`, creates a
`weakref.finalize` before telemetry starts (so weakref's one exit hook runs after ours). Then it
opens an instrumented sqlite3 connection, runs a statement and leaves the connection open: its
close log is told only at exit. The late handler connects, tells a session of five events,
closes, and reports what `tell` answered and what `dump_state()` counts. Nothing is printed.
"""

from __future__ import annotations

import atexit
import json
import sys

if json.loads(sys.argv[1])["late"] == "before_import":
    atexit.register(lambda: late_handler())

import sqlite3
import time
import warnings
import weakref
from typing import Any

from child_common import (
    DRIVER,
    bearer,
    connect,
    host_state,
    load_spec,
    wait_until,
    write_report,
)

import actors
from messages import events as ev

SPEC = load_spec()
FACTS: dict[str, Any] = {}


class Target:
    """Something to finalise."""


def late_handler() -> None:
    """Tells a whole session at exit, then reports what `tell` said and what is counted."""
    FACTS["late_started_s"] = time.monotonic()
    connection = connect(SPEC)
    sid = "late-session"
    statement_id = f"{sid}/q1"
    told = [
        connection.tell(ev.ConnectionOpened(session_id=sid, latency_ms=3.0)),
        connection.tell(ev.StatementStarted(statement_id=statement_id, session_id=sid)),
        connection.tell(ev.OperationPolled(statement_id=statement_id, latency_ms=2.0)),
        connection.tell(ev.StatementCompleted(statement_id=statement_id, operation_latency_ms=9)),
        connection.tell(ev.ConnectionClosed(session_id=sid, latency_ms=1.0)),
    ]
    connection.close()
    state = actors.dump_state(1.0)
    host = state["hosts"].get(connection.host, {})
    FACTS["late"] = {
        "accepted": sum(told),
        "dropped_without_registry": state["dropped_without_registry"],
        "live": host.get("live"),
        "accounting": host.get("accounting"),
    }
    write_report(SPEC, **FACTS)


def main() -> None:
    # The database is left open on purpose; 3.13 warns about that as the interpreter ends.
    warnings.filterwarnings("ignore", "unclosed database", ResourceWarning)
    if SPEC["late"] == "after_import":
        atexit.register(late_handler)
    if SPEC.get("finalize_first"):
        kept = Target()
        FACTS["kept"] = weakref.finalize(kept, lambda: None).alive
    props = {f"telemetry.{key}": value for key, value in SPEC["properties"].items()}
    db = sqlite3_connect(props)
    db.execute("SELECT 1").fetchall()
    wait_until(
        lambda: host_state(db_host()).get("feature_flags", {}).get("enabled") is True,
        "the feature flag to be on",
    )
    globals()["open_db"] = db  # left open: its close log is told at exit
    FACTS["workload_done_s"] = time.monotonic()
    write_report(SPEC, **FACTS)


def sqlite3_connect(props: dict[str, Any]) -> Any:
    module = actors.instrument(
        sqlite3, host=SPEC["url"], driver=DRIVER, auth=bearer(SPEC["token"]), properties=props
    )
    return module.connect(":memory:")


def db_host() -> str:
    return next(iter(actors.dump_state(0.5)["hosts"]), "")


if __name__ == "__main__":
    main()
