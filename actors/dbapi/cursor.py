"""`InstrumentedCursor`: the generic wrapper of a driver cursor, one statement log per execute.

Methods the driver's cursor lacks are absent here too (``AttributeError`` as the driver's own):
every statement method below is a `_Told` descriptor that looks the driver's method up first.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from actors.dbapi._results import ResultSets
from actors.dbapi._session import Session
from actors.dbapi._telling import EXECUTE, ROWS_PER_CHUNK, Kind, _Statement
from actors.dbapi.support import Passthrough, SessionOwner, _no_exit_protocol, _perf, _row_bytes
from messages.enums import OperationType as Op
from messages.enums import StatementType

__all__ = ["CATALOG_OPERATIONS", "ROWS_PER_CHUNK", "InstrumentedCursor"]

_META = StatementType.METADATA
CATALOG_OPERATIONS: dict[str, Op] = {
    "tables": Op.LIST_TABLES,
    "columns": Op.LIST_COLUMNS,
    "statistics": Op.LIST_COLUMNS,
    "rowIdColumns": Op.LIST_COLUMNS,
    "rowVerColumns": Op.LIST_COLUMNS,
    "primaryKeys": Op.LIST_PRIMARY_KEYS,
    "foreignKeys": Op.LIST_IMPORTED_KEYS,
    "procedures": Op.LIST_FUNCTIONS,
    "procedureColumns": Op.LIST_FUNCTIONS,
    "getTypeInfo": Op.LIST_TYPE_INFO,
    "tablePrivileges": Op.LIST_TABLES,
}
"""ODBC-style catalog functions (pyodbc's names), told as METADATA with the proto's LIST_* type."""


def _foreign_keys_kind(kwargs: dict[str, Any], args: tuple[Any, ...]) -> Op:
    """``foreignKeys(table=, foreignTable=)``: keys of both is a cross reference; of the
    primary table only, the keys exported from it; else those imported into foreignTable."""
    table = args[0] if args else kwargs.get("table")
    foreign = args[3] if len(args) > 3 else kwargs.get("foreignTable")
    if table and foreign:
        return Op.LIST_CROSS_REFERENCES
    return Op.LIST_EXPORTED_KEYS if table else Op.LIST_IMPORTED_KEYS


class _Told:
    """A driver cursor method told as a statement; absent where the driver's cursor lacks it."""

    def __init__(self, kind: Kind | None = None, how: str = "run") -> None:
        self.kind = kind
        self.call = f"_call_{how}"
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, cursor: Any, owner: type | None = None) -> Any:
        if cursor is None:
            return self
        method = getattr(cursor._raw, self.name)  # the driver's AttributeError when it has none
        return functools.partial(getattr(cursor, self.call), method, self)


class InstrumentedCursor(ResultSets, Passthrough):
    """A cursor that tells statement telemetry; otherwise exactly the driver's cursor."""

    __slots__ = ("__weakref__", "_conn", "_raw", "_tm_kind", "_tm_session", "_tm_sid", "_tm_st")
    _OWN = frozenset({"_raw", "_conn", "_tm_st", "_tm_sid", "_tm_session", "_tm_kind"})
    _raw: Any
    _conn: SessionOwner
    _tm_session: Session | None
    _tm_st: _Statement | None
    _tm_sid: str | None
    _tm_kind: Kind | None

    def __init__(self, raw: Any, connection: SessionOwner) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "_raw", raw)
        setattr_(self, "_conn", connection)
        setattr_(self, "_tm_session", connection._session)
        setattr_(self, "_tm_st", None)
        setattr_(self, "_tm_sid", None)
        setattr_(self, "_tm_kind", None)
        connection._session.add(self)

    def _tm_server_side(self) -> bool:
        """A named cursor (psycopg2 ``cursor(name)``, psycopg 3 ``ServerCursor``) keeps its rows
        on the server until fetched, though ``description`` may not be known yet."""
        try:
            name = self._raw.name
        except Exception:
            return False
        return isinstance(name, str) and bool(name)

    @property
    def telemetry_statement_id(self) -> str | None:
        """The statement id of the latest statement told to telemetry, if any."""
        return self._tm_sid

    @property
    def connection(self) -> Any:
        """The wrapped connection when the driver's cursor names the wrapped driver connection."""
        raw_connection = self._raw.connection
        return self._conn if raw_connection is self._conn._raw else raw_connection

    # --- statements: each returns this wrapper where the driver returns its cursor --------------

    execute = _Told()
    executemany = _Told()
    executescript = _Told()  # sqlite3
    callproc = _Told((StatementType.SQL, EXECUTE))
    copy_expert = _Told()  # psycopg2
    copy_from = _Told((StatementType.UPDATE, EXECUTE))
    copy_to = _Told((StatementType.QUERY, EXECUTE))
    copy = _Told(how="copy")  # psycopg 3
    stream = _Told(how="stream")
    nextset = _Told(how="nextset")
    fetchval = _Told(how="fetchval")  # pyodbc: the first column of the next row
    for _name, _op in CATALOG_OPERATIONS.items():
        locals()[_name] = _Told((_META, _op))
    del _name, _op
    foreignKeys = _Told(how="foreign_keys")  # pyodbc's name

    def _call_run(self, method: Callable[..., Any], told: _Told, *args: Any, **kwargs: Any) -> Any:
        result = self._tm_run(method, args, kwargs, told.kind)
        return self if result is self._raw else result

    def _call_foreign_keys(
        self, method: Callable[..., Any], _: _Told, *args: Any, **kw: Any
    ) -> Any:
        result = self._tm_run(method, args, kw, (_META, _foreign_keys_kind(kw, args)))
        return self if result is self._raw else result

    def _call_copy(self, method: Callable[..., Any], told: _Told, *args: Any, **kwargs: Any) -> Any:
        return self._tm_copy(method, args, kwargs)

    def _call_stream(self, method: Callable[..., Any], told: _Told, *args: Any, **kw: Any) -> Any:
        return self._tm_stream(method, args, kw)

    def _call_nextset(self, method: Callable[..., Any], told: _Told) -> Any:
        return self._tm_nextset(method)

    def _call_fetchval(self, method: Callable[..., Any], told: _Told) -> Any:
        """A value is a row taken (None may be a NULL or no row: not counted, not an end)."""
        st = self._tm_st
        if st is None:
            return method()
        started = _perf()
        try:
            value = method()
        except Exception as exc:
            self._tm_abort(st, exc)
            raise
        if value is not None:
            self._tm_one_row(st, (value,), _perf() - started)
        return value

    # --- fetching ---------------------------------------------------------------------------

    def fetchmany(self, *args: Any, **kwargs: Any) -> Any:
        """The driver's fetchmany; one chunk per call that returns rows."""
        return self._tm_fetchmany(self._raw.fetchmany, args, kwargs)

    def fetchall(self) -> Any:
        """The driver's fetchall; one chunk, and the statement completes."""
        return self._tm_fetchall(self._raw.fetchall)

    def __iter__(self) -> Any:
        source = iter(self._raw)
        if self._tm_st is None:
            return source  # nothing to count: the driver's own iterator, at no cost per row
        return self if source is self._raw else self._tm_iterate(source)

    def __next__(self) -> Any:
        st = self._tm_st
        if st is None:
            return next(self._raw)
        # `Telling._tm_step` inlined: this runs once per row.
        started = _perf()
        try:
            row = next(self._raw)
        except StopIteration:
            self._tm_finish(exhausted=True)
            raise
        except Exception as exc:
            self._tm_abort(st, exc)
            raise
        st.row_s += _perf() - started
        if not st.rows:
            st.row_bytes = _row_bytes(row)
        st.rows += 1
        if st.rows >= ROWS_PER_CHUNK:
            st.flush_rows()
        return row

    def fetchone(self) -> Any:
        """The driver's fetchone; rows count toward a chunk of `ROWS_PER_CHUNK`."""
        st = self._tm_st
        if st is None:
            return self._raw.fetchone()
        started = _perf()
        try:
            row = self._raw.fetchone()
        except Exception as exc:
            self._tm_abort(st, exc)
            raise
        if row is None:
            self._tm_finish(exhausted=True)
        else:
            self._tm_one_row(st, row, _perf() - started)
        return row

    # --- ending -----------------------------------------------------------------------------

    def _finish(self, exhausted: bool) -> None:
        self._tm_finish(exhausted)

    def close(self) -> Any:
        """Complete the open statement, then close the driver's cursor."""
        self._tm_finish(exhausted=False)
        return self._raw.close()

    def __del__(self) -> None:
        # A cursor dropped mid-result (``conn.execute(...).fetchone()``) still ends its log.
        try:
            if self._tm_st is not None:
                self._tm_finish(exhausted=False)
        except Exception:
            pass

    def __exit__(self, *exc_info: Any) -> Any:
        exit_ = getattr(type(self._raw), "__exit__", None)
        if exit_ is None:
            raise _no_exit_protocol(self._raw)
        self._tm_finish(exhausted=False)
        return exit_(self._raw, *exc_info)
