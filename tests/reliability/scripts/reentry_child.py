"""Child program for test_reentrancy: the facade called back from inside itself.

The spec's `trigger` says where the application's code calls back into the facade:

- `log:<logger>`: a DEBUG handler on that logger ("" for root) that, for every record, writes it
  to a database through the instrumented driver and calls the facade (the classic "log to the
  database" handler);
- `signal`, `del`, `finalize`: a handler on pykka's logger that, on a record logged in the main
  thread (while the facade is starting actors), raises SIGUSR1 / drops the last reference to an
  object with `__del__` / to one with a `weakref.finalize`, whose code calls the facade;
- `auth`: the connection's auth callable calls the facade on the exporter's thread;
- `atexit_before` / `atexit_after`: an `atexit` handler registered before / after the library's
  exit hook calls the facade.

Each callback runs `connect`, `tell`, `close`, the instrumented driver, `flush`, `dump_state`
and `shutdown` (at most `MAX_CALLS` times), records anything they raise, and the report (JSON)
is rewritten after each. Nothing is printed: a "--- Logging error ---" on stderr fails the test.
"""

from __future__ import annotations

import atexit
import json
import logging
import signal
import sqlite3
import sys
import threading
import time
import traceback
import weakref
from typing import Any

# The library registers its exit hook when imported; a handler registered earlier runs after it.
if json.loads(sys.argv[1])["trigger"] == "atexit_before":
    atexit.register(lambda: call_back("atexit before"))

import actors
from messages import events as ev

MAX_CALLS = 30
DRIVER = actors.DriverInfo(name="ReentryChild", version="1.0.0")
SPEC: dict[str, Any] = json.loads(sys.argv[1])
FACTS: dict[str, Any] = {"calls": 0, "errors": [], "results": []}
_busy = threading.local()


def report(**facts: Any) -> None:
    FACTS.update(facts)
    with open(SPEC["report"], "w", encoding="utf-8") as out:
        json.dump(FACTS, out)


def auth() -> dict[str, str]:
    if SPEC["trigger"] == "auth":
        call_back("auth")
    return {"Authorization": f"Bearer {SPEC['token']}"}


def call_back(where: str) -> None:
    """What the application's callback does: the whole facade, and the instrumented driver."""
    if getattr(_busy, "on", False) or FACTS["calls"] >= MAX_CALLS:
        return  # the application's own guard against its own recursion
    _busy.on = True
    FACTS["calls"] += 1
    try:
        connection = actors.connect(SPEC["url"], driver=DRIVER, auth=None)
        told = connection.tell(ev.ConnectionOpened(session_id=f"callback-{FACTS['calls']}"))
        connection.close()
        db = actors.instrument(sqlite3, host=SPEC["url"]).connect(":memory:")
        db.execute("CREATE TABLE log (message TEXT)")
        db.execute("INSERT INTO log VALUES (?)", (where,))
        db.close()
        flushed = actors.flush(0.5)
        dumped = isinstance(actors.dump_state(0.5), dict)
        stopped = actors.shutdown(0.5) if SPEC.get("shutdown", True) else None
        FACTS["results"].append([where, told, flushed, dumped, stopped])
    except BaseException:
        FACTS["errors"].append(traceback.format_exc())
    finally:
        _busy.on = False
        report()


class CallingHandler(logging.Handler):
    """A DEBUG handler that calls back into the facade for every record."""

    def emit(self, record: logging.LogRecord) -> None:
        call_back(f"log {record.name}")


class InterruptingHandler(logging.Handler):
    """On pykka's first record in the main thread, interrupt it the way the trigger says."""

    armed: Any = None

    def emit(self, record: logging.LogRecord) -> None:
        if threading.current_thread() is not threading.main_thread() or self.armed is None:
            return
        fire, self.armed = self.armed, None
        fire()


class Target:
    """Something to finalise."""


class Finalised:
    def __del__(self) -> None:
        call_back("__del__")


def arm(trigger: str) -> None:
    kind, _, name = trigger.partition(":")
    if kind == "log":
        logger = logging.getLogger(name)
        logger.addHandler(CallingHandler(logging.DEBUG))
        logger.setLevel(logging.DEBUG)
    elif kind in ("signal", "del", "finalize"):
        handler = InterruptingHandler(logging.DEBUG)
        if kind == "signal":
            signal.signal(signal.SIGUSR1, lambda *_: call_back("signal"))
            handler.armed = lambda: signal.raise_signal(signal.SIGUSR1)
        elif kind == "del":
            held = [Finalised()]
            handler.armed = held.clear
        else:
            holder = [Target()]
            weakref.finalize(holder[0], call_back, "weakref.finalize")
            handler.armed = holder.clear
        pykka_logger = logging.getLogger("pykka")
        pykka_logger.addHandler(handler)
        pykka_logger.setLevel(logging.DEBUG)


def main() -> None:
    started = time.monotonic()
    arm(SPEC["trigger"])
    connection = actors.connect(SPEC["url"], driver=DRIVER, auth=auth)
    if SPEC["trigger"] == "atexit_after":
        atexit.register(call_back, "atexit after")
    db = actors.instrument(sqlite3, host=SPEC["url"], auth=auth).connect(":memory:")
    db.execute("SELECT 1").fetchall()
    broken = actors.connect(SPEC["url"], driver=DRIVER, auth=lambda: 1 / 0)  # we log about it
    for i in range(3):
        connection.tell(ev.ErrorOccurred(error_name="E", session_id=f"main-{i}"))
        broken.tell(ev.ErrorOccurred(error_name="E", session_id=f"broken-{i}"))
    wait = threading.Event()
    deadline_s = time.monotonic() + 5.0
    while not connection.enabled and time.monotonic() < deadline_s:
        wait.wait(0.01)
    actors.flush(2.0)
    db.close()
    broken.close()
    connection.close()
    flushed = actors.flush(2.0)
    hosts = actors.dump_state(2.0)["hosts"].values()
    balanced = [host["accounting"]["balanced"] for host in hosts]
    report(main_done_s=time.monotonic() - started, flushed=flushed, balanced=balanced)


if __name__ == "__main__":
    main()
