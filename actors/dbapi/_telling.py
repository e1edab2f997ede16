"""`Telling`: the statement telemetry of one cursor, for the generic wrapper and driver subclasses.

Every method takes the driver's own callable (the wrapped cursor's method, or ``super()``'s in a
driver subclass), calls it once, and tells around it; what the driver returns or raises comes
back unchanged (the very exception object, by a bare ``raise``). Cursor-confined, like the cursor.

The rules, one statement log each: an execute-like call (``execute``, ``executemany``,
``callproc``, ``copy_*``, a catalog function) starts a statement; one without a result set
(``description is None``, and not a server-side cursor) completes at once, one with a result set
stays open while fetched. A ``nextset()`` that moves to another result set completes the current
log and starts a new one for that result set, whose chunks count from 0 again: each result set is
its own statement log with its own chunk sequence (`actors.dbapi._results`, with streams and
copy blocks).

The cursor folds a statement itself while it runs (its chunks, its error) and tells it once, as
one `StatementSummary`, when it ends: one event per statement on the driver's thread, and one
item for the aggregator, instead of a start, a chunk per fetch and a completion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from actors._runtime.ids import new_id
from actors.dbapi._session import Session
from actors.dbapi.support import _error, _perf, _row_bytes, logger, statement_type_of
from messages.enums import OperationType, StatementType
from messages.events import ErrorOccurred, StatementSummary

ROWS_PER_CHUNK = 1000
"""Rows taken one at a time (``fetchone``, iteration) that make one chunk of a statement."""

EXECUTE = OperationType.EXECUTE_STATEMENT
Kind = tuple[StatementType, OperationType]


class _Statement:
    """One statement's telemetry state, folded as it runs (cursor-confined, mutable)."""

    __slots__ = (
        "chunk_first_ms",
        "chunk_max_ms",
        "chunk_sum_ms",
        "chunks",
        "exec_ms",
        "has_result",
        "kind",
        "ready_at",
        "row_bytes",
        "row_s",
        "rows",
        "sid",
        "size_bytes",
    )

    def __init__(self, sid: str, kind: Kind) -> None:
        self.sid = sid
        self.kind = kind
        self.exec_ms = 0.0
        self.ready_at = 0.0
        self.has_result = False
        self.chunks = 0
        self.chunk_first_ms = 0.0
        self.chunk_max_ms = 0.0
        self.chunk_sum_ms = 0.0
        self.size_bytes = 0
        self.rows = 0  # rows taken one at a time since the last chunk
        self.row_s = 0.0
        self.row_bytes = 0  # the size of the first of those rows

    def add_chunk(self, seconds: float, size_bytes: int) -> None:
        """Fold one chunk (a fetch that returned rows, or `ROWS_PER_CHUNK` single rows)."""
        latency_ms = seconds * 1000.0
        if not self.chunks:
            self.chunk_first_ms = latency_ms
        if latency_ms > self.chunk_max_ms:
            self.chunk_max_ms = latency_ms
        self.chunk_sum_ms += latency_ms
        self.size_bytes += size_bytes
        self.chunks += 1

    def flush_rows(self) -> None:
        """The single rows taken since the last chunk, as one chunk."""
        self.add_chunk(self.row_s, self.row_bytes * self.rows)
        self.rows = 0
        self.row_s = 0.0

    def summary(
        self, session_id: str, *, exhausted: bool, error: ErrorOccurred | None
    ) -> StatementSummary:
        """The statement as one event; a terminal `error` ends it without completing."""
        if self.rows:
            self.flush_rows()
        consumed_ms = (_perf() - self.ready_at) * 1000.0 if self.has_result else None
        return StatementSummary(
            statement_id=self.sid,
            session_id=session_id,
            statement_type=self.kind[0],
            operation_type=self.kind[1],
            completed=error is None or bool(error.retryable),
            result_ready_latency_ms=self.exec_ms,
            operation_latency_ms=self.exec_ms,
            consumption_latency_ms=consumed_ms,
            total_chunks_present=self.chunks if exhausted else None,
            chunks=self.chunks,
            first_chunk_latency_ms=self.chunk_first_ms,
            slowest_chunk_latency_ms=self.chunk_max_ms,
            chunks_latency_ms=self.chunk_sum_ms,
            size_bytes=self.size_bytes,
            error=error,
        )


class Telling:
    """Mixin: tell one cursor's statements. Subclasses set the four ``_tm_`` attributes."""

    if not TYPE_CHECKING:  # no __dict__ in the generic wrapper; mypy checks the attributes below
        __slots__ = ()
    _tm_session: Session | None = None
    _tm_st: _Statement | None = None
    _tm_sid: str | None = None  # the latest statement told
    _tm_kind: Kind | None = None  # its kinds, for the result sets `nextset()` moves to

    description: Any
    arraysize: Any

    def _tm_server_side(self) -> bool:
        """Whether rows stay on the server until fetched (a named cursor): result even if
        ``description`` is not known yet."""
        return False

    # --- executing --------------------------------------------------------------------------

    def _tm_run(
        self,
        method: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        kind: Kind | None = None,
        adopt: Callable[[Any], None] | None = None,
    ) -> Any:
        """One statement around ``method(*args, **kwargs)``; typed by its first argument unless
        `kind` is given. `adopt` sees the result before the result set is looked at."""
        st = self._tm_begin(kind, args, kwargs)
        started = _perf()
        try:
            result = method(*args, **kwargs)
        except Exception as exc:
            if st is not None:
                st.exec_ms = (_perf() - started) * 1000.0
                self._tm_end(st, exhausted=False, exc=exc)
            raise
        if adopt is not None:
            adopt(result)
        if st is not None:
            now = _perf()
            st.exec_ms = (now - started) * 1000.0
            st.ready_at = now
            self._tm_executed(st)
        return result

    def _tm_begin(
        self, kind: Kind | None, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> _Statement | None:
        """Complete the previous statement; start telling a new one if telemetry is on. With no
        `kind`, the statement is typed by the operation in `args` or `kwargs`, only then."""
        if self._tm_st is not None:
            self._tm_finish(exhausted=False)
        session = self._tm_session
        try:
            handle = None if session is None else session.handle
            if handle is None or not handle.enabled or session is None:
                return None
            if kind is None:
                operation = args[0] if args else next(iter((kwargs or {}).values()), None)
                kind = (statement_type_of(operation), EXECUTE)
            st = _Statement(new_id(), kind)
            self._tm_sid = st.sid
            self._tm_kind = kind
            return st
        except Exception:
            logger.debug("telemetry: statement not started", exc_info=True)
            return None

    def _tm_executed(self, st: _Statement) -> None:
        try:
            st.has_result = self.description is not None or self._tm_server_side()
        except Exception:
            st.has_result = False
        self._tm_st = st
        if not st.has_result:
            self._tm_finish(exhausted=True)

    # --- fetching ---------------------------------------------------------------------------

    def _tm_fetchmany(self, method: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        st = self._tm_st
        if st is None:
            return method(*args, **kwargs)
        started = _perf()
        try:
            rows = method(*args, **kwargs)
        except Exception as exc:
            self._tm_abort(st, exc)
            raise
        self._tm_many_rows(st, rows, _perf() - started)
        try:
            size = args[0] if args else kwargs.get("size")
            size = self.arraysize if size is None else size
            exhausted = size > 0 and len(rows) < size  # fewer than asked for: no more rows
        except Exception:
            exhausted = not rows
        if exhausted:
            self._tm_finish(exhausted=True)
        return rows

    def _tm_fetchall(self, method: Callable[[], Any]) -> Any:
        st = self._tm_st
        if st is None:
            return method()
        started = _perf()
        try:
            rows = method()
        except Exception as exc:
            self._tm_abort(st, exc)
            raise
        self._tm_many_rows(st, rows, _perf() - started)
        self._tm_finish(exhausted=True)
        return rows

    def _tm_iterate(self, source: Iterator[Any]) -> Iterator[Any]:
        """Rows of a driver whose cursor hands out a separate iterator (`_tm_step` inlined:
        this runs once per row)."""
        while True:
            st = self._tm_st
            if st is None:
                yield from source
                return
            started = _perf()
            try:
                row = next(source)
            except StopIteration:
                self._tm_finish(exhausted=True)
                return
            except Exception as exc:
                self._tm_abort(st, exc)
                raise
            self._tm_one_row(st, row, _perf() - started)
            yield row

    def _tm_step(self, st: _Statement, source: Iterator[Any]) -> Any:
        started = _perf()
        try:
            row = next(source)
        except StopIteration:
            self._tm_finish(exhausted=True)
            raise
        except Exception as exc:
            self._tm_abort(st, exc)
            raise
        self._tm_one_row(st, row, _perf() - started)
        return row

    def _tm_one_row(self, st: _Statement, row: Any, seconds: float) -> None:
        if not st.rows:
            st.row_bytes = _row_bytes(row)
        st.rows += 1
        st.row_s += seconds
        if st.rows >= ROWS_PER_CHUNK:
            st.flush_rows()

    def _tm_many_rows(self, st: _Statement, rows: Any, seconds: float) -> None:
        if st.rows:
            st.flush_rows()  # keep chunks in the order the rows were fetched
        try:
            count = len(rows)
            if count:
                st.add_chunk(seconds, _row_bytes(rows[0]) * count)
        except Exception:  # never into the driver's fetch
            logger.debug("telemetry: chunk not folded", exc_info=True)

    # --- ending -----------------------------------------------------------------------------

    def _tm_finish(self, exhausted: bool) -> None:
        """Complete the open statement, if any (result exhausted, replaced or closed)."""
        st = self._tm_st
        if st is not None:
            self._tm_st = None
            self._tm_end(st, exhausted=exhausted, exc=None)

    def _tm_abort(self, st: _Statement, exc: Exception) -> None:
        self._tm_st = None
        self._tm_end(st, exhausted=False, exc=exc)

    def _tm_end(self, st: _Statement, *, exhausted: bool, exc: Exception | None) -> None:
        """Tell the statement, once; never raises (may run while `exc` propagates)."""
        session = self._tm_session
        try:
            if session is None:
                return
            error = None if exc is None else _error(exc, session.session_id, st.sid)
            session.handle.tell(st.summary(session.session_id, exhausted=exhausted, error=error))
        except Exception:
            logger.debug("telemetry: statement not told", exc_info=True)
