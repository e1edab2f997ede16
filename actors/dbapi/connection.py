"""The instrumented module and connection: the driver's own objects, timed and told."""

from __future__ import annotations

import sys
import types
import uuid
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from actors.dbapi.cursor import InstrumentedCursor
from actors.dbapi.support import (
    Passthrough,
    _error,
    _no_exit_protocol,
    _open_telemetry,
    _perf,
    _release,
    _Target,
    driver_info_of,
    logger,
)
from messages.commands import AuthProvider
from messages.config import TelemetrySettings
from messages.events import ConnectionClosed, ConnectionOpened
from messages.records import DriverConnectionParams
from messages.sysconfig import DriverInfo

__all__ = ["InstrumentedConnection", "InstrumentedModule", "instrument", "instrument_connection"]


class InstrumentedModule:
    """The driver module, but its ``connect()`` returns `InstrumentedConnection` objects."""

    __slots__ = ("_connect", "_module", "_target")

    def __init__(self, connect: Callable[..., Any], module: object, target: _Target) -> None:
        self._connect = connect
        self._module = module
        self._target = target

    def connect(self, *args: Any, **kwargs: Any) -> InstrumentedConnection:
        """The driver's own connect, timed and told as ``ConnectionOpened`` (or an error)."""
        session_id = str(uuid.uuid4())
        started = _perf()
        try:
            raw = self._connect(*args, **kwargs)
        except Exception as exc:
            try:
                handle = _open_telemetry(self._target)
                if handle is not None:
                    handle.tell(_error(exc, session_id))
                    handle.close()
            except Exception:
                logger.debug("telemetry: failed connect not told", exc_info=True)
            raise
        latency_ms = (_perf() - started) * 1000.0
        return InstrumentedConnection(raw, self._target, session_id, latency_ms)

    def __getattr__(self, name: str) -> Any:
        return getattr(object.__getattribute__(self, "_module"), name)

    def __dir__(self) -> list[str]:
        return sorted({*dir(self._module), "connect"})

    def __repr__(self) -> str:
        return f"<instrumented {self._module!r}>"


def instrument(
    module_or_connect: Any,
    *,
    host: str,
    driver: DriverInfo | None = None,
    auth: AuthProvider | None = None,
    auth_type: str | None = None,
    properties: Mapping[str, object] | None = None,
    settings: TelemetrySettings | None = None,
    http_path: str | None = None,
    connection_params: DriverConnectionParams | None = None,
) -> InstrumentedModule:
    """Wrap a PEP 249 module (or its ``connect`` callable); raises ValueError for bad setup only.

    `driver` defaults to `driver_info_of(module_or_connect)`. The other arguments are those of
    `actors.connect()`; `auth_type` is sent as is in the connection log.
    """
    if isinstance(module_or_connect, types.ModuleType):
        module: object = module_or_connect
        connect = module_or_connect.connect
    elif callable(module_or_connect):
        connect = module_or_connect
        owner = str(getattr(connect, "__module__", "") or "")
        top = owner.split(".", 1)[0]
        module = sys.modules.get(top.lstrip("_")) or sys.modules.get(top) or connect
    else:
        raise ValueError(f"expected a DB-API module or connect callable, got {module_or_connect!r}")
    driver = driver if driver is not None else driver_info_of(module_or_connect)
    target = _Target(
        host, driver, auth, auth_type, properties, settings, http_path, connection_params
    )
    return InstrumentedModule(connect, module, target)


def instrument_connection(
    raw_conn: Any,
    *,
    host: str,
    driver: DriverInfo | None = None,
    auth: AuthProvider | None = None,
    auth_type: str | None = None,
    properties: Mapping[str, object] | None = None,
    settings: TelemetrySettings | None = None,
    http_path: str | None = None,
    connection_params: DriverConnectionParams | None = None,
    session_id: str | None = None,
) -> InstrumentedConnection:
    """Wrap a DB connection that is already open (no open latency is known)."""
    if session_id is not None and (type(session_id) is not str or not 0 < len(session_id) <= 256):
        raise ValueError("session_id must be a non-empty str of at most 256 characters or None")
    driver = driver if driver is not None else driver_info_of(type(raw_conn))
    target = _Target(
        host, driver, auth, auth_type, properties, settings, http_path, connection_params
    )
    return InstrumentedConnection(raw_conn, target, session_id or str(uuid.uuid4()), None)


class InstrumentedConnection(Passthrough):
    """A DB connection that tells telemetry; otherwise exactly the driver's connection."""

    __slots__ = ("__weakref__", "_cursors", "_finalizer", "_handle", "_raw", "_session_id")
    _OWN = frozenset({"_raw", "_handle", "_session_id", "_cursors", "_finalizer"})
    _raw: Any
    _handle: Any  # the telemetry `Connection`, or None when it could not be opened
    _session_id: str
    _cursors: weakref.WeakSet[InstrumentedCursor]
    _finalizer: weakref.finalize[Any, Any] | None

    def __init__(
        self, raw: Any, target: _Target, session_id: str, latency_ms: float | None
    ) -> None:
        handle = _open_telemetry(target)
        setattr_ = object.__setattr__
        setattr_(self, "_raw", raw)
        setattr_(self, "_handle", handle)
        setattr_(self, "_session_id", session_id)
        setattr_(self, "_cursors", weakref.WeakSet())
        setattr_(self, "_finalizer", None)
        if handle is None:
            return
        handle.tell(
            ConnectionOpened(
                session_id=session_id,
                connection_params=target.params,
                auth_type=target.auth_type,
                latency_ms=latency_ms,
            )
        )
        setattr_(self, "_finalizer", weakref.finalize(self, _release, handle, session_id))

    @property
    def telemetry_session_id(self) -> str:
        """The session id this connection's telemetry is told under."""
        return self._session_id

    def _report(self, exc: Exception) -> None:
        """Tell a session-level error; never raises (called while `exc` propagates)."""
        finalizer = self._finalizer
        if finalizer is not None and finalizer.alive:  # not after the session's end
            try:
                self._handle.tell(_error(exc, self._session_id))
            except Exception:
                logger.debug("telemetry: error not told", exc_info=True)

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except Exception as exc:
            self._report(exc)
            raise

    def cursor(self, *args: Any, **kwargs: Any) -> InstrumentedCursor:
        """The driver's cursor, wrapped."""
        try:
            raw_cursor = self._raw.cursor(*args, **kwargs)
        except Exception as exc:
            self._report(exc)
            raise
        cursor = InstrumentedCursor(raw_cursor, self)
        self._cursors.add(cursor)
        return cursor

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        """The non-standard shortcut (sqlite3): a new cursor's ``execute``."""
        self._shortcut("execute")
        return self.cursor().execute(*args, **kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        """The non-standard shortcut (sqlite3): a new cursor's ``executemany``."""
        self._shortcut("executemany")
        return self.cursor().executemany(*args, **kwargs)

    def executescript(self, *args: Any, **kwargs: Any) -> Any:
        """The non-standard shortcut (sqlite3): a new cursor's ``executescript``."""
        self._shortcut("executescript")
        return self.cursor().executescript(*args, **kwargs)

    def _shortcut(self, name: str) -> None:
        if not hasattr(self._raw, name):
            raise AttributeError(f"{type(self._raw).__name__!r} object has no attribute {name!r}")

    def commit(self) -> Any:
        """The driver's commit; a failure is told as a session error."""
        return self._call(self._raw.commit)

    def rollback(self) -> Any:
        """The driver's rollback; a failure is told as a session error."""
        return self._call(self._raw.rollback)

    def close(self) -> Any:
        """Close the driver connection, complete open statements, end the session's telemetry."""
        started = _perf()
        result = self._call(self._raw.close)
        self._end_session((_perf() - started) * 1000.0)
        return result

    def _end_session(self, latency_ms: float | None) -> None:
        finalizer = self._finalizer
        if finalizer is None or not finalizer.detach():
            return  # telemetry off, or already ended
        try:
            cursors = list(self._cursors)
        except Exception:  # a cursor made on another thread meanwhile: leave them to the aggregator
            cursors = []
        for cursor in cursors:
            cursor._finish(exhausted=False)
        self._handle.tell(ConnectionClosed(session_id=self._session_id, latency_ms=latency_ms))
        self._handle.close()

    def __exit__(self, *exc_info: Any) -> Any:
        exit_ = getattr(type(self._raw), "__exit__", None)
        if exit_ is None:
            raise _no_exit_protocol(self._raw)
        result = self._call(exit_, self._raw, *exc_info)
        try:
            closed = getattr(self._raw, "closed", False)  # drivers whose `with` closes (psycopg 3)
        except Exception:
            closed = False
        if closed is True or (type(closed) is int and closed):
            self._end_session(None)
        return result
