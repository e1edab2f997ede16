"""Exit delivers or counts, whatever exit hooks run after the library's own.

`atexit` runs its handlers last in, first out, and `weakref.finalize` runs every pending
finaliser from one handler of its own, registered when the process made its first finaliser.
Each case runs `scripts/exit_order_child.py` in a fresh interpreter: an instrumented sqlite3
connection left open must have its close log delivered by the exit hook, even when weakref's
handler comes after ours. The library's exit hook is registered when it is imported, so an
`atexit` handler registered after the import runs before it and what it tells is delivered;
events told from one registered before the import (it runs after ours) are counted
(`dropped_without_registry`), never lost uncounted. The exit stays within the shutdown timeout.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from _support import stored_by_session

from actors.tools.local_endpoint import LocalEndpoint

if TYPE_CHECKING:
    from conftest import ChildRun

SHUTDOWN_TIMEOUT_MS = 1000
EXIT_BOUND_S = SHUTDOWN_TIMEOUT_MS / 1000 + 0.5
PROPERTIES = {"shutdown_timeout_ms": SHUTDOWN_TIMEOUT_MS, "flush_interval_ms": 60_000}
LATE_EVENTS = 5
# 3.12.1 refuses new threads once the main thread has returned (gh-113964): no tree can start
# in an exit handler there, so what it tells is counted, not delivered.
THREADS_REFUSED_AT_EXIT = sys.version_info[:3] == (3, 12, 1)


@pytest.fixture
def run_exit_order(
    run_child: Callable[..., ChildRun], make_endpoint: Callable[..., LocalEndpoint], token: str
) -> Callable[..., tuple[ChildRun, LocalEndpoint]]:
    def run(**spec: Any) -> tuple[ChildRun, LocalEndpoint]:
        endpoint = make_endpoint()
        result = run_child(
            "exit_order_child.py", url=endpoint.url, token=token, properties=PROPERTIES, **spec
        )
        assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), result.stderr
        exit_s = result.exit_s()
        print(f"exit took {exit_s:.3f} s (bound {EXIT_BOUND_S} s)")
        assert exit_s <= EXIT_BOUND_S
        return result, endpoint

    return run


def late_events_stored(found: dict[str | None, Counter[str]]) -> int:
    """Events of the late session the endpoint holds (connection 1, statement 3, close 1)."""
    late = found.get("late-session", Counter())
    return late["connection"] + 3 * late["statement"] + late["close"]


@pytest.mark.parametrize("finalize_first", [False, True])
def test_an_open_instrumented_connection_has_its_close_log_delivered_at_exit(
    run_exit_order: Callable[..., tuple[ChildRun, LocalEndpoint]], finalize_first: bool
) -> None:
    _, endpoint = run_exit_order(finalize_first=finalize_first, late="before_import")

    sessions = {
        sid: kinds for sid, kinds in stored_by_session(endpoint).items() if sid != "late-session"
    }
    assert list(sessions.values()) == [Counter({"connection": 1, "statement": 1, "close": 1})]


def test_events_told_from_an_atexit_handler_run_after_ours_are_counted(
    run_exit_order: Callable[..., tuple[ChildRun, LocalEndpoint]],
) -> None:
    result, endpoint = run_exit_order(finalize_first=True, late="before_import")

    late = result.report["late"]
    counted = late["dropped_without_registry"]
    delivered = late_events_stored(stored_by_session(endpoint))
    print(f"handler registered before the import: {delivered} delivered, {counted} counted")
    assert (delivered, counted, late["accepted"]) == (0, LATE_EVENTS, 0)


def test_events_told_from_an_atexit_handler_registered_after_the_import_are_delivered(
    run_exit_order: Callable[..., tuple[ChildRun, LocalEndpoint]],
) -> None:
    result, endpoint = run_exit_order(finalize_first=True, late="after_import")

    late = result.report["late"]
    delivered = late_events_stored(stored_by_session(endpoint))
    accounting = late["accounting"] or {}
    counted = sum(accounting.get("dropped", {}).values()) + late["dropped_without_registry"]
    print(f"handler registered after the import: {delivered} delivered, {counted} counted")
    assert delivered + counted == LATE_EVENTS
    if not THREADS_REFUSED_AT_EXIT:
        assert (delivered, late["accepted"]) == (LATE_EVENTS, LATE_EVENTS)
