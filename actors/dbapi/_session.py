"""One DB connection's telemetry session, shared by the generic wrapper and the driver subclasses.

A `Session` holds the telemetry `Connection` (or None), the session id and the cursors that may
hold an open statement. It ends exactly once: at the driver connection's close (however the
connection's own code reaches it), or when the object it watches is garbage collected.
Thread contract: `end()` may race with a cursor made on another thread; that cursor's statement
is then told when the cursor ends it (or not at all), never raised about.
"""

from __future__ import annotations

import weakref
from typing import Any, Protocol

from actors._runtime.operations import end_before_exit
from actors.dbapi.support import _error, _open_telemetry, _Target, logger
from messages.events import ConnectionClosed, ConnectionOpened


class Finishing(Protocol):
    """A cursor that can complete its open statement (`Telling`)."""

    def _tm_finish(self, exhausted: bool) -> None: ...


class Session:
    """The telemetry of one DB connection; never raises."""

    __slots__ = ("__weakref__", "cursors", "finalizer", "handle", "session_id")

    def __init__(self, handle: Any, session_id: str) -> None:
        self.handle = handle  # the telemetry `Connection`, or None when it could not be opened
        self.session_id = session_id
        self.cursors: weakref.WeakSet[Any] | None = None  # made by the first cursor
        self.finalizer: weakref.finalize[Any, Any] | None = None

    @classmethod
    def open(
        cls, owner: object, target: _Target, session_id: str, latency_ms: float | None
    ) -> Session:
        """Open telemetry for `owner` (the object the user holds) and tell ``ConnectionOpened``."""
        session = cls(_open_telemetry(target), session_id)
        handle = session.handle
        if handle is None:
            return session
        try:
            handle.tell(
                ConnectionOpened(
                    session_id=session_id,
                    connection_params=target.params,
                    auth_type=target.auth_type,
                    latency_ms=latency_ms,
                )
            )
            session.finalizer = weakref.finalize(owner, _release, session)
            end_before_exit(session)
        except Exception:
            logger.debug("telemetry: session not opened", exc_info=True)
        return session

    def end_at_exit(self) -> None:
        """At exit, before the drain: tell the close log as collection would; never raises."""
        finalizer = self.finalizer
        try:
            if finalizer is not None:
                finalizer()  # runs once: weakref's own exit hook then finds it dead
        except Exception:
            logger.debug("telemetry: session end not told at exit", exc_info=True)

    @property
    def live(self) -> bool:
        """True until the session has ended (and False when telemetry is off)."""
        finalizer = self.finalizer
        return finalizer is not None and finalizer.alive

    def add(self, cursor: Finishing) -> None:
        """Remember a cursor whose open statement the session's end must complete."""
        try:
            cursors = self.cursors
            if cursors is None:  # first cursors made at once on two threads: one may go
                cursors = self.cursors = weakref.WeakSet()  # untracked, as in a race with end()
            cursors.add(cursor)
        except Exception:
            logger.debug("telemetry: cursor not tracked", exc_info=True)

    def report(self, exc: Exception) -> None:
        """Tell a session-level error; never raises (called while `exc` propagates)."""
        if self.live:
            try:
                self.handle.tell(_error(exc, self.session_id))
            except Exception:
                logger.debug("telemetry: error not told", exc_info=True)

    def end(self, latency_ms: float | None) -> None:
        """Complete open statements, tell ``ConnectionClosed`` and release; once only."""
        finalizer = self.finalizer
        if finalizer is None or not finalizer.detach():
            return  # telemetry off, or already ended
        try:
            _release(self, latency_ms)
        except Exception:
            logger.debug("telemetry: session end not told", exc_info=True)


def _release(session: Session, latency_ms: float | None = None) -> None:
    """End a session's telemetry: its cursors' open statements, then ``ConnectionClosed``.

    For `close()`, for a connection collected without one, and at exit (the finalizer, which
    holds the session, never the connection it watches).
    """
    try:
        open_cursors: list[Finishing] = list(session.cursors or ())
    except Exception:  # a cursor made on another thread meanwhile: its statement is not told
        open_cursors = []
    for cursor in open_cursors:
        cursor._tm_finish(exhausted=False)
    session.handle.tell(ConnectionClosed(session_id=session.session_id, latency_ms=latency_ms))
    session.handle.close()


def report_failed_connect(target: _Target, session_id: str, exc: Exception) -> None:
    """Tell a failed connect on a short-lived telemetry connection; never raises."""
    try:
        handle = _open_telemetry(target)
        if handle is not None:
            handle.tell(_error(exc, session_id))
            handle.close()
    except Exception:
        logger.debug("telemetry: failed connect not told", exc_info=True)


def closed_now(raw: object) -> bool:
    """Whether a driver connection says it is closed: ``closed`` true, or ``open`` false.

    Drivers spell it differently (sqlite3 none, pyodbc and psycopg ``closed``, psycopg2 an int,
    PyMySQL ``open``); anything that cannot be read counts as not closed.
    """
    try:
        closed = getattr(raw, "closed", None)
        if closed is True or (type(closed) is int and closed):
            return True
        return getattr(raw, "open", None) is False
    except Exception:
        return False
