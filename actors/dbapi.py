"""Telemetry for any PEP 249 driver with one call: ``db = instrument(sqlite3, host=...)``.

``instrument(module_or_connect, host=...)`` returns a module-like object whose ``connect()``
returns an `InstrumentedConnection`; ``instrument_connection(raw, host=...)`` wraps a connection
that is already open. The wrappers behave exactly like the driver's own objects (same results,
same exceptions, the very same exception objects re-raised; anything not wrapped passes through,
reads and writes alike) and tell `messages.events` to `actors.connect()`'s `Connection`, which
never blocks and never raises. No SQL text, parameter or row value is ever put in an event.

Event order, per DB connection (session id: a uuid4) and per execute (statement id: a uuid4):

- connect: ``ConnectionOpened`` (latency measured around the driver's own connect); a failed
  connect tells ``ErrorOccurred`` on a short-lived telemetry connection instead.
- ``execute``/``executemany``/``executescript``: ``StatementStarted``, then the driver call. A
  statement without a result set (``description is None``) is complete at once:
  ``StatementCompleted``. One with a result set stays open while it is fetched.
- fetches: ``ChunkDownloaded`` per ``fetchmany``/``fetchall`` call that returned rows; rows
  taken one at a time (``fetchone``, iteration) are gathered into one chunk per
  `ROWS_PER_CHUNK` rows, so per-row cost is two clock reads and a few additions.
- ``StatementCompleted`` (``operation_latency_ms`` and ``result_ready_latency_ms``: the execute
  call; ``consumption_latency_ms``: from then until the end) when the result is exhausted, or on
  the next execute, cursor close, cursor ``with`` exit or connection close, whichever is first.
  The aggregator emits a statement's log at ``StatementCompleted``, so telling it at the end of
  consumption, not right after execute, is what lands the chunk facts in that one log.
  ``StatementClosed`` is never told: for a statement already emitted the aggregator would make a
  second, ``CLOSE_STATEMENT`` log of it.
- a driver exception: ``ErrorOccurred`` (class name, ``str(exc)`` redacted downstream,
  retryable per `actors.classify.classify_exception`), then the original exception is re-raised
  unchanged. A terminal error ends its statement's log at once; a retryable one is held by the
  aggregator, so ``StatementCompleted`` follows it. ``commit``, ``rollback``, ``cursor()`` and
  ``close`` failures are told as session errors without a statement.
- ``close``: open statements complete, then ``ConnectionClosed`` and the telemetry connection is
  released (also when a never-closed connection is garbage collected).

A driver that owns its code (pyodbc-style, with its own connection and cursor classes) should
embed the library instead of being wrapped, because only it knows the server's statement ids,
result chunks and status polls::

    import actors
    from messages import events as ev

    DRIVER = actors.DriverInfo(name="MyDriver", version=__version__)

    class Connection:
        def __init__(self, host, token, properties):
            self._server = _open_session(host, token)               # the driver's own work
            self._telemetry = actors.connect(                       # never waits on the network
                host, properties, driver=DRIVER,
                auth=lambda: {"Authorization": f"Bearer {token}"},
            )
            self._telemetry.tell(ev.ConnectionOpened(session_id=self._server.session_id))

        def close(self):
            self._server.close()
            self._telemetry.tell(ev.ConnectionClosed(session_id=self._server.session_id))
            self._telemetry.close()

    # and in the cursor: tell StatementStarted with the server's statement id, OperationPolled
    # per status poll, ChunkDownloaded per downloaded chunk, StatementCompleted at the end.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import time
import types
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from actors import telemetry as _telemetry
from actors.classify import ErrorKind, classify_exception
from actors.hosts import normalise_host
from messages.commands import AuthProvider
from messages.config import TelemetrySettings
from messages.enums import StatementType
from messages.events import (
    ChunkDownloaded,
    ConnectionClosed,
    ConnectionOpened,
    ErrorOccurred,
    StatementCompleted,
    StatementStarted,
)
from messages.records import DriverConnectionParams
from messages.sysconfig import DriverInfo

__all__ = [
    "ROWS_PER_CHUNK",
    "InstrumentedConnection",
    "InstrumentedCursor",
    "InstrumentedModule",
    "driver_info_of",
    "instrument",
    "instrument_connection",
    "statement_type_of",
]

logger = logging.getLogger("actors.dbapi")

ROWS_PER_CHUNK = 1000
"""Rows taken one at a time (``fetchone``, iteration) that make one `ChunkDownloaded`."""

_perf = time.perf_counter
# Possessive: no backtracking into skipped whitespace and comments, so matching is linear.
_LEADING_WORD = re.compile(r"(?:\s|--[^\n]*+|/\*.*?\*/|\()*+([A-Za-z]+)", re.DOTALL)
_QUERY_WORDS = frozenset(
    {"SELECT", "WITH", "VALUES", "PRAGMA", "EXPLAIN", "SHOW", "DESCRIBE", "DESC", "TABLE"}
)
_UPDATE_WORDS = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "UPSERT"})
_VERSION_ATTRS = ("__version__", "version", "sqlite_version")


def statement_type_of(operation: object) -> StatementType:
    """QUERY, UPDATE or SQL from the operation's first keyword (comments and ``(`` skipped)."""
    if not isinstance(operation, str):
        return StatementType.SQL
    match = _LEADING_WORD.match(operation, 0, 4096)
    word = match.group(1).upper() if match else ""
    if word in _QUERY_WORDS:
        return StatementType.QUERY
    return StatementType.UPDATE if word in _UPDATE_WORDS else StatementType.SQL


def driver_info_of(source: object) -> DriverInfo:
    """The driver's name and version from a module, a connect callable or a connection class.

    A module gives its ``__name__``; anything else its top-level package (``_sqlite3`` is read as
    ``sqlite3``). The version is the first of ``__version__``, ``version``, ``sqlite_version``.
    """
    try:
        return _cached_driver_info(source)
    except TypeError:  # unhashable
        return _driver_info(source)


@functools.lru_cache(maxsize=64)
def _cached_driver_info(source: object) -> DriverInfo:
    return _driver_info(source)


def _driver_info(source: object) -> DriverInfo:
    if isinstance(source, types.ModuleType):
        module: object | None = source
        name = source.__name__
    else:
        owner = str(getattr(source, "__module__", None) or type(source).__module__)
        top = owner.split(".", 1)[0]
        name = top.lstrip("_") or top
        module = sys.modules.get(name) or sys.modules.get(top)
    # The module's own dict: a deprecated attribute served by a module __getattr__ is skipped
    # rather than warned about.
    attributes = getattr(module, "__dict__", {})
    for attr in _VERSION_ATTRS:
        value = attributes.get(attr)
        if isinstance(value, str) and value.strip():
            return DriverInfo(name=name, version=value.strip())
    return DriverInfo(name=name, version="unknown")


def _row_bytes(row: object) -> int:
    """A cheap size estimate of one row: text and bytes by length, anything else 8 bytes."""
    try:
        if isinstance(row, dict):
            values: Any = row.values()
        elif isinstance(row, tuple | list) or hasattr(row, "keys"):  # sqlite3.Row has keys()
            values = row
        else:
            return sys.getsizeof(row)
        size = 0
        for value in values:
            if isinstance(value, str | bytes | bytearray | memoryview):
                size += len(value)
            else:
                size += 1 if value is None else 8
        return size
    except Exception:
        return 0


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return ""


class _Target:
    """Where and as what one instrumented driver reports (fixed at `instrument()` time)."""

    __slots__ = ("auth", "auth_type", "driver", "host", "http_path", "options", "params")

    def __init__(
        self,
        host: str,
        driver: DriverInfo,
        auth: AuthProvider | None,
        auth_type: str | None,
        properties: Mapping[str, object] | None,
        settings: TelemetrySettings | None,
        http_path: str | None,
        connection_params: DriverConnectionParams | None,
    ) -> None:
        # The checks `actors.connect()` would make, made now: bad code fails at setup, and later
        # connects cannot raise for them.
        normalise_host(host)
        if not isinstance(driver, DriverInfo):
            raise ValueError(f"driver must be a DriverInfo, got {type(driver).__name__}")
        if settings is not None and not isinstance(settings, TelemetrySettings):
            raise ValueError(f"settings must be TelemetrySettings, got {type(settings).__name__}")
        if auth is not None and not callable(auth):
            raise ValueError("auth must be a callable returning headers, or None")
        self.host = host
        self.driver = driver
        self.auth = auth
        self.auth_type = auth_type
        self.options = (properties, settings)
        self.http_path = http_path
        if connection_params is None and http_path is not None:
            connection_params = DriverConnectionParams(http_path=http_path)
        self.params = connection_params


def _open_telemetry(target: _Target) -> Any:
    """One telemetry `Connection` for one DB connection, or None; never raises."""
    properties, settings = target.options
    try:
        return _telemetry.connect(
            target.host,
            properties,
            driver=target.driver,
            auth=target.auth,
            http_path=target.http_path,
            settings=settings,
        )
    except Exception:
        logger.debug("telemetry: could not open for %s", target.host, exc_info=True)
        return None


def _error(exc: Exception, session_id: str, statement_id: str | None = None) -> ErrorOccurred:
    return ErrorOccurred(
        error_name=type(exc).__name__,
        message=_message(exc),
        statement_id=statement_id,
        session_id=session_id,
        retryable=classify_exception(exc) is ErrorKind.RETRYABLE,
    )


def _release(handle: Any, session_id: str) -> None:
    """End a session's telemetry: for `close()`, or a connection collected without one."""
    handle.tell(ConnectionClosed(session_id=session_id))
    handle.close()


def _no_exit_protocol(raw: object) -> TypeError:
    name = type(raw).__name__
    return TypeError(f"'{name}' object does not support the context manager protocol")


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
    driver = driver if driver is not None else driver_info_of(type(raw_conn))
    target = _Target(
        host, driver, auth, auth_type, properties, settings, http_path, connection_params
    )
    return InstrumentedConnection(raw_conn, target, session_id or str(uuid.uuid4()), None)


_CONNECTION_SLOTS = frozenset({"_raw", "_handle", "_session_id", "_cursors", "_finalizer"})


class InstrumentedConnection:
    """A DB connection that tells telemetry; otherwise exactly the driver's connection."""

    __slots__ = ("__weakref__", "_cursors", "_finalizer", "_handle", "_raw", "_session_id")
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

    def __enter__(self) -> Any:
        enter = getattr(type(self._raw), "__enter__", None)
        if enter is None:
            raise _no_exit_protocol(self._raw)
        result = enter(self._raw)
        return self if result is self._raw else result

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

    def __getattr__(self, name: str) -> Any:
        return getattr(object.__getattribute__(self, "_raw"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _CONNECTION_SLOTS:
            object.__setattr__(self, name, value)
        else:
            setattr(self._raw, name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._raw, name)

    def __repr__(self) -> str:
        return f"<instrumented {self._raw!r}>"


class _Statement:
    """One execute's telemetry state (cursor-confined, mutable)."""

    __slots__ = ("chunks", "exec_ms", "has_result", "ready_at", "row_bytes", "row_s", "rows", "sid")

    def __init__(self, sid: str) -> None:
        self.sid = sid
        self.exec_ms = 0.0
        self.ready_at = 0.0
        self.has_result = False
        self.chunks = 0
        self.rows = 0  # rows taken one at a time since the last chunk
        self.row_s = 0.0
        self.row_bytes = 0  # the size of the first of those rows


_CURSOR_SLOTS = frozenset({"_raw", "_conn", "_st", "_last_sid"})


class InstrumentedCursor:
    """A cursor that tells statement telemetry; otherwise exactly the driver's cursor."""

    __slots__ = ("__weakref__", "_conn", "_last_sid", "_raw", "_st")
    _raw: Any
    _conn: InstrumentedConnection
    _st: _Statement | None
    _last_sid: str | None

    def __init__(self, raw: Any, connection: InstrumentedConnection) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "_raw", raw)
        setattr_(self, "_conn", connection)
        setattr_(self, "_st", None)
        setattr_(self, "_last_sid", None)

    @property
    def telemetry_statement_id(self) -> str | None:
        """The statement id of the latest execute told to telemetry, if any."""
        return self._last_sid

    @property
    def connection(self) -> Any:
        """The wrapped connection when the driver's cursor names the wrapped driver connection."""
        raw_connection = self._raw.connection
        return self._conn if raw_connection is self._conn._raw else raw_connection

    # --- executing --------------------------------------------------------------------------

    def execute(self, operation: Any, *args: Any, **kwargs: Any) -> Any:
        """The driver's execute; returns this wrapper where the driver returns its cursor."""
        return self._run(self._raw.execute, operation, args, kwargs)

    def executemany(self, operation: Any, *args: Any, **kwargs: Any) -> Any:
        """The driver's executemany, as one statement."""
        return self._run(self._raw.executemany, operation, args, kwargs)

    def executescript(self, script: Any, *args: Any, **kwargs: Any) -> Any:
        """The driver's executescript (sqlite3), as one statement."""
        return self._run(self._raw.executescript, script, args, kwargs)

    def _run(self, method: Callable[..., Any], operation: Any, args: Any, kwargs: Any) -> Any:
        st = self._begin(operation)
        if st is None:
            result = method(operation, *args, **kwargs)
        else:
            started = _perf()
            try:
                result = method(operation, *args, **kwargs)
            except Exception as exc:
                st.exec_ms = (_perf() - started) * 1000.0
                self._end(st, exhausted=False, exc=exc)
                raise
            now = _perf()
            st.exec_ms = (now - started) * 1000.0
            st.ready_at = now
            self._executed(st)
        return self if result is self._raw else result

    def _begin(self, operation: Any) -> _Statement | None:
        """Complete the previous statement; start telling a new one if telemetry is on."""
        if self._st is not None:
            self._finish(exhausted=False)
        conn = self._conn
        handle = conn._handle
        try:
            if handle is None or not handle.enabled:
                return None
            st = _Statement(str(uuid.uuid4()))
            self._last_sid = st.sid
            handle.tell(
                StatementStarted(
                    statement_id=st.sid,
                    session_id=conn._session_id,
                    statement_type=statement_type_of(operation),
                )
            )
            return st
        except Exception:
            logger.debug("telemetry: statement not started", exc_info=True)
            return None

    def _executed(self, st: _Statement) -> None:
        try:
            st.has_result = self._raw.description is not None
        except Exception:
            st.has_result = False
        self._st = st
        if not st.has_result:
            self._finish(exhausted=True)

    # --- fetching ---------------------------------------------------------------------------

    def fetchone(self) -> Any:
        """The driver's fetchone; rows count toward a chunk of `ROWS_PER_CHUNK`."""
        st = self._st
        if st is None:
            return self._raw.fetchone()
        started = _perf()
        try:
            row = self._raw.fetchone()
        except Exception as exc:
            self._abort(st, exc)
            raise
        if row is None:
            self._finish(exhausted=True)
        else:
            self._one_row(st, row, _perf() - started)
        return row

    def fetchmany(self, *args: Any, **kwargs: Any) -> Any:
        """The driver's fetchmany; one chunk per call that returns rows."""
        st = self._st
        if st is None:
            return self._raw.fetchmany(*args, **kwargs)
        started = _perf()
        try:
            rows = self._raw.fetchmany(*args, **kwargs)
        except Exception as exc:
            self._abort(st, exc)
            raise
        self._many_rows(st, rows, _perf() - started)
        try:
            size = args[0] if args else kwargs.get("size")
            size = self._raw.arraysize if size is None else size
            exhausted = size > 0 and len(rows) < size  # fewer than asked for: no more rows
        except Exception:
            exhausted = not rows
        if exhausted:
            self._finish(exhausted=True)
        return rows

    def fetchall(self) -> Any:
        """The driver's fetchall; one chunk, and the statement completes."""
        st = self._st
        if st is None:
            return self._raw.fetchall()
        started = _perf()
        try:
            rows = self._raw.fetchall()
        except Exception as exc:
            self._abort(st, exc)
            raise
        self._many_rows(st, rows, _perf() - started)
        self._finish(exhausted=True)
        return rows

    def __iter__(self) -> Any:
        source = iter(self._raw)
        if self._st is None:
            return source  # nothing to count: the driver's own iterator, at no cost per row
        return self if source is self._raw else self._iterate(source)

    def __next__(self) -> Any:
        st = self._st
        if st is None:
            return next(self._raw)
        # `_step` and `_one_row` inlined: this runs once per row.
        started = _perf()
        try:
            row = next(self._raw)
        except StopIteration:
            self._finish(exhausted=True)
            raise
        except Exception as exc:
            self._abort(st, exc)
            raise
        st.row_s += _perf() - started
        if not st.rows:
            st.row_bytes = _row_bytes(row)
        st.rows += 1
        if st.rows >= ROWS_PER_CHUNK:
            self._flush_rows(st)
        return row

    def _iterate(self, source: Any) -> Iterator[Any]:
        """Rows of a driver whose cursor hands out a separate iterator."""
        while True:
            st = self._st
            try:
                row = next(source) if st is None else self._step(st, source)
            except StopIteration:
                return
            yield row

    def _step(self, st: _Statement, source: Any) -> Any:
        started = _perf()
        try:
            row = next(source)
        except StopIteration:
            self._finish(exhausted=True)
            raise
        except Exception as exc:
            self._abort(st, exc)
            raise
        self._one_row(st, row, _perf() - started)
        return row

    def _one_row(self, st: _Statement, row: Any, seconds: float) -> None:
        if not st.rows:
            st.row_bytes = _row_bytes(row)
        st.rows += 1
        st.row_s += seconds
        if st.rows >= ROWS_PER_CHUNK:
            self._flush_rows(st)

    def _many_rows(self, st: _Statement, rows: Any, seconds: float) -> None:
        if st.rows:
            self._flush_rows(st)  # keep chunks in the order the rows were fetched
        try:
            count = len(rows)
            if count:
                self._chunk(st, seconds, _row_bytes(rows[0]) * count)
        except Exception:
            logger.debug("telemetry: chunk not told", exc_info=True)

    def _flush_rows(self, st: _Statement) -> None:
        self._chunk(st, st.row_s, st.row_bytes * st.rows)
        st.rows = 0
        st.row_s = 0.0

    def _chunk(self, st: _Statement, seconds: float, size_bytes: int) -> None:
        self._conn._handle.tell(
            ChunkDownloaded(
                statement_id=st.sid,
                chunk_index=st.chunks,
                latency_ms=seconds * 1000.0,
                size_bytes=size_bytes,
            )
        )
        st.chunks += 1

    # --- ending -----------------------------------------------------------------------------

    def _finish(self, exhausted: bool) -> None:
        """Complete the open statement, if any (result exhausted, replaced or closed)."""
        st = self._st
        if st is not None:
            self._st = None
            self._end(st, exhausted=exhausted, exc=None)

    def _abort(self, st: _Statement, exc: Exception) -> None:
        self._st = None
        self._end(st, exhausted=False, exc=exc)

    def _end(self, st: _Statement, *, exhausted: bool, exc: Exception | None) -> None:
        """Tell a statement's last events; never raises (may run while `exc` propagates)."""
        conn = self._conn
        try:
            tell = conn._handle.tell
            if st.rows:
                self._flush_rows(st)
            if exc is not None:
                error = _error(exc, conn._session_id, st.sid)
                tell(error)
                if not error.retryable:
                    return  # a terminal error ends the statement's log by itself
            consumed_ms = (_perf() - st.ready_at) * 1000.0 if st.has_result else None
            tell(
                StatementCompleted(
                    statement_id=st.sid,
                    result_ready_latency_ms=st.exec_ms,
                    operation_latency_ms=st.exec_ms,
                    consumption_latency_ms=consumed_ms,
                    total_chunks_present=st.chunks if exhausted else None,
                )
            )
        except Exception:
            logger.debug("telemetry: statement end not told", exc_info=True)

    def close(self) -> Any:
        """Complete the open statement, then close the driver's cursor."""
        self._finish(exhausted=False)
        return self._raw.close()

    def __del__(self) -> None:
        # A cursor dropped mid-result (``conn.execute(...).fetchone()``) still ends its log.
        try:
            if self._st is not None:
                self._finish(exhausted=False)
        except Exception:
            pass

    def __enter__(self) -> Any:
        enter = getattr(type(self._raw), "__enter__", None)
        if enter is None:
            raise _no_exit_protocol(self._raw)
        result = enter(self._raw)
        return self if result is self._raw else result

    def __exit__(self, *exc_info: Any) -> Any:
        exit_ = getattr(type(self._raw), "__exit__", None)
        if exit_ is None:
            raise _no_exit_protocol(self._raw)
        self._finish(exhausted=False)
        return exit_(self._raw, *exc_info)

    def __getattr__(self, name: str) -> Any:
        return getattr(object.__getattribute__(self, "_raw"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _CURSOR_SLOTS:
            object.__setattr__(self, name, value)
        else:
            setattr(self._raw, name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._raw, name)

    def __repr__(self) -> str:
        return f"<instrumented {self._raw!r}>"
