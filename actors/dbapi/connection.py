"""The instrumented module and connection: the driver's own objects, timed and told."""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

from actors._runtime.ids import new_id
from actors.dbapi._psycopg import hooks as driver_hooks
from actors.dbapi._session import Session, closed_now, report_failed_connect
from actors.dbapi.cursor import InstrumentedCursor
from actors.dbapi.support import (
    Passthrough,
    _no_exit_protocol,
    _perf,
    _Target,
    driver_info_of,
)
from messages.commands import AuthProvider
from messages.config import TelemetrySettings
from messages.records import DriverConnectionParams
from messages.sysconfig import DriverInfo

__all__ = ["InstrumentedConnection", "InstrumentedModule", "instrument", "instrument_connection"]


class InstrumentedModule:
    """The driver module, but its ``connect()`` returns `InstrumentedConnection` objects."""

    __slots__ = ("_connect", "_module", "_target", "_wrap")

    def __init__(
        self,
        connect: Callable[..., Any],
        module: object,
        target: _Target,
        wrap: Callable[[Any, _Target, str, float | None], Any] | None = None,
    ) -> None:
        self._connect = connect
        self._module = module
        self._target = target
        self._wrap = wrap or InstrumentedConnection

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        """The driver's own connect, timed and told as ``ConnectionOpened`` (or an error)."""
        session_id = new_id()
        started = _perf()
        try:
            raw = self._connect(*args, **kwargs)
        except Exception as exc:
            report_failed_connect(self._target, session_id, exc)
            raise
        latency_ms = (_perf() - started) * 1000.0
        return self._wrap(raw, self._target, session_id, latency_ms)

    def __getattr__(self, name: str) -> Any:
        return getattr(object.__getattribute__(self, "_module"), name)

    def __dir__(self) -> list[str]:
        return sorted({*dir(self._module), "connect"})

    def __repr__(self) -> str:
        return f"<instrumented {self._module!r}>"


class _OffModule(InstrumentedModule):
    """Telemetry is off in configuration: ``connect`` is the driver's own, so are its objects."""

    __slots__ = ()

    @property
    def connect(self) -> Callable[..., Any]:
        """The driver's own ``connect``: nothing of ours runs per connection or statement."""
        return self._connect


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

    psycopg 3 and psycopg2 connect through the driver's own class hooks, so their connections
    and cursors stay the driver's types (instrumented subclasses); any other driver's objects
    are wrapped (`InstrumentedConnection`). `driver` defaults to
    `driver_info_of(module_or_connect)`. The other arguments are those of `actors.connect()`;
    `auth_type` is sent as is in the connection log. When telemetry is off in configuration
    (``telemetry.enabled=false`` in `properties` or the environment, or the kill switch, read
    now), ``connect`` is the driver's own and hands back the driver's own objects.
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
    resolved = settings if settings is not None else TelemetrySettings.from_sources(properties)
    if not resolved.active:
        return _OffModule(connect, module, target)  # off in configuration: the driver's own
    hooked = driver_hooks(module, connect)
    if hooked is not None:
        return InstrumentedModule(hooked[0], module, target, hooked[1])
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
    return InstrumentedConnection(raw_conn, target, session_id or new_id(), None)


class _Shortcut:
    """A connection-level statement method (sqlite3's and pyodbc's ``execute``): the driver's own,
    told as a statement and its result wrapped; absent where the driver's connection lacks it."""

    def __init__(self) -> None:
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, conn: Any, owner: type | None = None) -> Any:
        if conn is None:
            return self
        method = getattr(conn._raw, self.name)  # the driver's AttributeError when it has none
        return functools.partial(conn._shortcut, method)


class InstrumentedConnection(Passthrough):
    """A DB connection that tells telemetry; otherwise exactly the driver's connection."""

    __slots__ = ("__weakref__", "_raw", "_session")
    _OWN = frozenset({"_raw", "_session"})
    _raw: Any
    _session: Session

    def __init__(
        self, raw: Any, target: _Target, session_id: str, latency_ms: float | None
    ) -> None:
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "_session", Session.open(self, target, session_id, latency_ms))

    @property
    def telemetry_session_id(self) -> str:
        """The session id this connection's telemetry is told under."""
        return self._session.session_id

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except Exception as exc:
            self._session.report(exc)
            raise

    def cursor(self, *args: Any, **kwargs: Any) -> InstrumentedCursor:
        """The driver's cursor, wrapped."""
        try:
            raw_cursor = self._raw.cursor(*args, **kwargs)
        except Exception as exc:
            self._session.report(exc)
            raise
        return InstrumentedCursor(raw_cursor, self)

    execute = _Shortcut()
    executemany = _Shortcut()
    executescript = _Shortcut()

    def _shortcut(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run the driver's own connection-level method as one statement of a cursor wrapper
        that adopts the cursor it returns; the connection itself stands for this wrapper."""
        cursor = InstrumentedCursor(None, self)

        def adopt(result: Any) -> None:
            if result is not self._raw and hasattr(result, "fetchone"):
                object.__setattr__(cursor, "_raw", result)

        result = cursor._tm_run(method, args, kwargs, adopt=adopt)
        if result is self._raw:
            return self
        return cursor if cursor._raw is result else result

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
        self._session.end((_perf() - started) * 1000.0)
        return result

    def __exit__(self, *exc_info: Any) -> Any:
        exit_ = getattr(type(self._raw), "__exit__", None)
        if exit_ is None:
            raise _no_exit_protocol(self._raw)
        result = self._call(exit_, self._raw, *exc_info)
        if closed_now(self._raw):  # drivers whose `with` closes (psycopg 3, PyMySQL)
            self._session.end(None)
        return result
