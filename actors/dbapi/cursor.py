"""`InstrumentedCursor`: a driver cursor that tells one statement's telemetry per execute."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

from actors.dbapi.support import (
    Passthrough,
    SessionOwner,
    _error,
    _no_exit_protocol,
    _perf,
    _row_bytes,
    logger,
    statement_type_of,
)
from messages.events import ChunkDownloaded, StatementCompleted, StatementStarted

ROWS_PER_CHUNK = 1000
"""Rows taken one at a time (``fetchone``, iteration) that make one `ChunkDownloaded`."""


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


class InstrumentedCursor(Passthrough):
    """A cursor that tells statement telemetry; otherwise exactly the driver's cursor."""

    __slots__ = ("__weakref__", "_conn", "_last_sid", "_raw", "_st")
    _OWN = frozenset({"_raw", "_conn", "_st", "_last_sid"})
    _raw: Any
    _conn: SessionOwner
    _st: _Statement | None
    _last_sid: str | None

    def __init__(self, raw: Any, connection: SessionOwner) -> None:
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

    def __exit__(self, *exc_info: Any) -> Any:
        exit_ = getattr(type(self._raw), "__exit__", None)
        if exit_ is None:
            raise _no_exit_protocol(self._raw)
        self._finish(exhausted=False)
        return exit_(self._raw, *exc_info)
