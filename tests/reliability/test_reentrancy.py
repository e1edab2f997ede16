"""Reentrancy never deadlocks: the facade called back from inside itself answers, boundedly.

Each case is a child interpreter (`scripts/reentry_child.py`) whose application calls
`connect`, `tell`, `close`, the instrumented driver, `flush`, `dump_state` and `shutdown` from a
place the facade itself set off: a DEBUG logging handler on root, `pykka`, `urllib3` or our own
logger (writing each record to a database through the instrumented driver), a signal handler,
`__del__` or `weakref.finalize` run while the facade starts actors, the auth callable on the
exporter's thread, and `atexit` handlers registered before and after the library's exit hook.
All children run side by side; each must exit on its own, cleanly and quietly, having called
back at least once and seen nothing raised.
"""

from __future__ import annotations

import pathlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from _support import DRIVER

import actors
from actors._runtime import process
from actors.tools.local_endpoint import LocalEndpoint
from messages import events as ev

if TYPE_CHECKING:
    from conftest import ChildRun

TOKEN = "reentry-token"
TRIGGERS = [
    "log:",
    "log:pykka",
    "log:urllib3",
    "log:actors",
    "signal",
    "del",
    "finalize",
    "auth",
    "atexit_before",
    "atexit_after",
]
CHILD_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def runs(
    child_program: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ChildRun | None]]:
    """Every trigger's child, started at once against one endpoint, run to its end."""
    folder: pathlib.Path = tmp_path_factory.mktemp("reentry")
    with LocalEndpoint(token=TOKEN, stop_timeout_s=2.0) as endpoint:
        children = {
            trigger: child_program(
                "reentry_child.py",
                {"trigger": trigger, "url": endpoint.url, "token": TOKEN},
                folder / f"report-{n}.json",
            )
            for n, trigger in enumerate(TRIGGERS)
        }
        results: dict[str, ChildRun | None] = {}
        deadline_s = time.monotonic() + CHILD_TIMEOUT_S
        try:
            for trigger, child in children.items():
                try:
                    results[trigger] = child.finish(max(1.0, deadline_s - time.monotonic()))
                except pytest.fail.Exception:  # it hung: killed, and its test says so
                    results[trigger] = None
        finally:
            for child in children.values():
                child.kill()
        yield results


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_the_facade_called_back_from_inside_itself_never_deadlocks_or_raises(
    runs: dict[str, ChildRun | None], trigger: str
) -> None:
    run = runs[trigger]
    assert run is not None, f"{trigger}: the child hung (killed after {CHILD_TIMEOUT_S} s)"
    assert (run.returncode, run.stdout, run.stderr) == (0, "", ""), run.stderr
    report = run.report
    assert "main_done_s" in report, report
    assert report["errors"] == []
    assert report["calls"] >= 1, f"{trigger}: the callback never ran"
    assert all(report["balanced"]), report["balanced"]  # what could not be delivered is counted
    print(f"{trigger}: {report['calls']} callbacks, main done in {report['main_done_s']:.2f} s")


def test_a_callback_run_while_the_facade_publishes_its_handles_never_waits_for_its_lock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A signal handler can run between any two bytecodes, also while this thread holds the
    facade's lock to publish the registry or pool; what it calls must not wait for that lock."""
    monkeypatch.setattr(process.state, "pool", None)  # the next connect creates the pool
    done = threading.Event()
    outcome: list[object] = []

    def interrupted() -> None:
        with process.guarded(lock=True):  # as if interrupted inside the publishing
            connection = actors.connect("example.com", driver=DRIVER)
            outcome.append(connection.tell(ev.ConnectionOpened(session_id="s")))
            connection.close()
            outcome.extend([actors.flush(0.5), actors.shutdown(0.5)])
            outcome.append(isinstance(actors.dump_state(0.5), dict))
        done.set()

    threading.Thread(target=interrupted, daemon=True).start()
    assert done.wait(10.0), "a callback inside the publishing waited for the facade's lock"
    assert outcome == [False, True, True, True]  # no tree (counted), nothing left to flush
