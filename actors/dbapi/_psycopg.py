"""psycopg 3 and psycopg2 instrumented through their own class hooks: the driver's types kept.

Both drivers let a caller choose the connection and cursor classes (psycopg 3: a `Connection`
subclass and its ``cursor_factory`` / ``server_cursor_factory``; psycopg2: ``connection_factory``
and ``cursor_factory``), so instead of wrapping their objects we hand them subclasses of their own
classes (of the caller's own factory classes when given) that tell telemetry. ``isinstance``
holds and the driver's helpers (``TypeInfo.fetch``, ``register_type``, ``quote_ident``,
``sql.Composed.as_string``) accept them. Neither driver is imported here: the classes come from
the module the caller instrumented.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, cast

from actors.dbapi._results import ResultSets
from actors.dbapi._session import Session
from actors.dbapi._telling import EXECUTE
from actors.dbapi.support import _perf, _Target
from messages.enums import StatementType

_PG2_CONNECTION = ("psycopg2.extensions", "connection")
Hooks = tuple[Callable[..., Any], Callable[[Any, _Target, str, float | None], Any]]


def hooks(module: object, connect: Callable[..., Any]) -> Hooks | None:
    """The connect callable and the attach step for psycopg 3 or psycopg2; None for others."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None:
        owner = psycopg.Connection if module is psycopg else getattr(connect, "__self__", None)
        if isinstance(owner, type) and issubclass(owner, psycopg.Connection):
            told: Any = _subclass(owner, _Psycopg3Connection, "psycopg", "Connection")
            return told.connect, _attach
    psycopg2 = sys.modules.get("psycopg2")
    if psycopg2 is not None and (module is psycopg2 or connect is psycopg2.connect):
        return functools.partial(_connect2, connect, psycopg2.extensions.connection), _attach
    return None


def _subclass(cls: type, mixin: type, module: str, driver_base: str) -> type:
    """`cls` told by `mixin`, under the driver's own names (repr and module unchanged).

    The caller's own subclasses of the driver's class (psycopg2's ``RealDictCursor``,
    ``DictConnection``) keep their methods first: theirs, then ours, then the driver's, so
    their overrides (a default cursor factory, rows as dicts) work as without us.
    """
    if not isinstance(cls, type):  # not a class: the driver takes or refuses it as it is
        return cls
    return _told_class(cls, mixin, getattr(sys.modules[module], driver_base))


@functools.lru_cache(maxsize=64)
def _told_class(cls: type, mixin: type, base: type) -> type:
    if issubclass(cls, mixin):
        return cls
    if not issubclass(cls, base):  # not the driver's class: ours in front, as best we can
        return _named(cls, (mixin, cls))
    root = _named(base, (mixin, base)) if cls is base else _told_class(base, mixin, base)
    return root if cls is base else _named(cls, (cls, root))


def _named(like: type, bases: tuple[type, ...]) -> type:
    namespace = {"__module__": like.__module__, "__qualname__": like.__qualname__}
    return type(like.__name__, bases, namespace)


def _attach(conn: Any, target: _Target, session_id: str, latency_ms: float | None) -> Any:
    conn._tm_session = Session.open(conn, target, session_id, latency_ms)
    return conn


class _TellingConnection:
    """What both drivers' connection subclasses add: session errors, and the end at close."""

    _tm_session: Session | None = None

    @property
    def telemetry_session_id(self) -> str | None:
        """The session id this connection's telemetry is told under."""
        session = self._tm_session
        return None if session is None else session.session_id

    def _tm_call(self, name: str, *args: Any) -> Any:
        try:
            return getattr(cast(Any, super()), name)(*args)
        except Exception as exc:
            if self._tm_session is not None:
                self._tm_session.report(exc)
            raise

    def commit(self) -> Any:
        """The driver's commit; a failure is told as a session error."""
        return self._tm_call("commit")

    def rollback(self) -> Any:
        """The driver's rollback; a failure is told as a session error."""
        return self._tm_call("rollback")

    def close(self) -> Any:
        """The driver's close (also reached by psycopg 3's ``with``); ends the session."""
        started = _perf()
        result = self._tm_call("close")
        if self._tm_session is not None:
            self._tm_session.end((_perf() - started) * 1000.0)
        return result


class _TellingCursor(ResultSets):
    """What both drivers' cursor subclasses add: the statement methods, told."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cast(Any, super()).__init__(*args, **kwargs)
        session = getattr(getattr(self, "connection", None), "_tm_session", None)
        if isinstance(session, Session):
            self._tm_session = session
            session.add(self)

    @property
    def telemetry_statement_id(self) -> str | None:
        """The statement id of the latest statement told to telemetry, if any."""
        return self._tm_sid

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        return self._tm_run(cast(Any, super()).execute, args, kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        return self._tm_run(cast(Any, super()).executemany, args, kwargs)

    def fetchone(self) -> Any:
        st = self._tm_st
        if st is None:
            return super().fetchone()  # type: ignore[misc]
        started = _perf()  # this runs once per row: no helper call
        try:
            row = super().fetchone()  # type: ignore[misc]
        except Exception as exc:
            self._tm_abort(st, exc)
            raise
        if row is None:
            self._tm_finish(exhausted=True)
        else:
            self._tm_one_row(st, row, _perf() - started)
        return row

    def fetchmany(self, *args: Any, **kwargs: Any) -> Any:
        return self._tm_fetchmany(cast(Any, super()).fetchmany, args, kwargs)

    def fetchall(self) -> Any:
        return self._tm_fetchall(cast(Any, super()).fetchall)

    def nextset(self) -> Any:
        return self._tm_nextset(cast(Any, super()).nextset)

    def close(self) -> Any:
        self._tm_finish(exhausted=False)
        return cast(Any, super()).close()

    def __del__(self) -> None:
        try:
            if self._tm_st is not None:
                self._tm_finish(exhausted=False)
        except Exception:
            pass
        delete = getattr(super(), "__del__", None)
        if delete is not None:
            delete()


# --- psycopg 3 ------------------------------------------------------------------------------


class _Psycopg3Connection(_TellingConnection):
    """A psycopg 3 connection whose cursor factories are always instrumented subclasses."""

    @property
    def cursor_factory(self) -> Any:
        return self.__dict__["_tm_cursor_factory"]

    @cursor_factory.setter
    def cursor_factory(self, factory: type) -> None:
        self.__dict__["_tm_cursor_factory"] = _subclass(
            factory, _Psycopg3Cursor, "psycopg", "Cursor"
        )

    @property
    def server_cursor_factory(self) -> Any:
        return self.__dict__["_tm_server_cursor_factory"]

    @server_cursor_factory.setter
    def server_cursor_factory(self, factory: type) -> None:
        self.__dict__["_tm_server_cursor_factory"] = _subclass(
            factory, _Psycopg3ServerCursor, "psycopg", "ServerCursor"
        )


class _Psycopg3Cursor(_TellingCursor):
    """A psycopg 3 client-side cursor that tells; iteration, ``copy`` and ``stream`` too."""

    def __iter__(self) -> Any:
        rows = cast(Any, super()).__iter__()
        return rows if self._tm_st is None else self._tm_iterate(rows)

    def copy(self, *args: Any, **kwargs: Any) -> Any:
        return self._tm_copy(cast(Any, super()).copy, args, kwargs)

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        return self._tm_stream(cast(Any, super()).stream, args, kwargs)


class _Psycopg3ServerCursor(_Psycopg3Cursor):
    """A psycopg 3 server-side (named) cursor: its rows are fetched when asked for."""

    def _tm_server_side(self) -> bool:
        return True


# --- psycopg2 -------------------------------------------------------------------------------


def _connect2(connect: Callable[..., Any], base: type, *args: Any, **kwargs: Any) -> Any:
    """psycopg2.connect with the caller's ``connection_factory`` (or the driver's) subclassed."""
    if len(args) > 1:
        args = (
            args[0],
            _subclass(args[1] or base, _Psycopg2Connection, *_PG2_CONNECTION),
            *args[2:],
        )
    else:
        factory = kwargs.get("connection_factory") or base
        kwargs["connection_factory"] = _subclass(factory, _Psycopg2Connection, *_PG2_CONNECTION)
    return connect(*args, **kwargs)


class _Psycopg2Connection(_TellingConnection):
    """A psycopg2 connection whose cursors are instrumented subclasses of the chosen factory."""

    cursor_factory: Any

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        """The driver's cursor (named or not), of an instrumented subclass of its factory."""
        given = args[1] if len(args) > 1 else kwargs.get("cursor_factory")
        factory = given or self.cursor_factory or sys.modules["psycopg2.extensions"].cursor
        told = _subclass(factory, _Psycopg2Cursor, "psycopg2.extensions", "cursor")
        if len(args) > 1:
            args = (args[0], told, *args[2:])
        else:
            kwargs["cursor_factory"] = told
        return cast(Any, super()).cursor(*args, **kwargs)


class _Psycopg2Cursor(_TellingCursor):
    """A psycopg2 cursor (named: server-side) that tells; ``callproc`` and copies too."""

    name: Any

    def _tm_server_side(self) -> bool:
        return self.name is not None

    def __next__(self) -> Any:
        st = self._tm_st
        if st is None:
            return super().__next__()  # type: ignore[misc]
        started = _perf()  # this runs once per row: no helper call
        try:
            row = super().__next__()  # type: ignore[misc]
        except StopIteration:
            self._tm_finish(exhausted=True)
            raise
        except Exception as exc:
            self._tm_abort(st, exc)
            raise
        self._tm_one_row(st, row, _perf() - started)
        return row

    def callproc(self, *args: Any, **kwargs: Any) -> Any:
        return self._tm_run(cast(Any, super()).callproc, args, kwargs, (StatementType.SQL, EXECUTE))

    def copy_expert(self, *args: Any, **kwargs: Any) -> Any:
        return self._tm_run(cast(Any, super()).copy_expert, args, kwargs)

    def copy_from(self, *args: Any, **kwargs: Any) -> Any:
        kind = (StatementType.UPDATE, EXECUTE)
        return self._tm_run(cast(Any, super()).copy_from, args, kwargs, kind)

    def copy_to(self, *args: Any, **kwargs: Any) -> Any:
        kind = (StatementType.QUERY, EXECUTE)
        return self._tm_run(cast(Any, super()).copy_to, args, kwargs, kind)
