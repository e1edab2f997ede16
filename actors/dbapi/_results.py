"""`ResultSets`: the statement paths beyond execute-and-fetch, on top of `Telling`.

``nextset()`` that moves to another result set completes the current log and starts the next
set's own (its chunks from 0); a stream (psycopg ``stream()``) is one statement whose rows are
chunks as they are yielded; a copy block (psycopg ``copy()``) is one statement from the call to
the block's end. Cursor-confined, like the cursor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from actors.dbapi._telling import EXECUTE, Telling
from actors.dbapi.support import _perf, statement_type_of


class ResultSets(Telling):
    """Mixin: `Telling` plus result sets, streams and copy blocks."""

    if not TYPE_CHECKING:
        __slots__ = ()

    def _tm_nextset(self, method: Callable[[], Any]) -> Any:
        """The driver's nextset; moving to another result set starts that set's own log."""
        kind = self._tm_kind
        if kind is None:
            return method()
        st = self._tm_st
        started = _perf()
        try:
            more = method()
        except Exception as exc:
            if st is not None:
                self._tm_abort(st, exc)
            elif self._tm_session is not None:
                self._tm_session.report(exc)
            raise
        self._tm_finish(exhausted=False)
        if more:
            following = self._tm_begin(kind)
            if following is not None:
                now = _perf()
                following.exec_ms = (now - started) * 1000.0
                following.ready_at = now
                self._tm_executed(following)
        return more

    def _tm_stream(self, method: Callable[..., Any], args: Any, kwargs: Any) -> Iterator[Any]:
        """A stream (psycopg ``stream()``): one statement, rows counted as they are yielded."""
        operation = args[0] if args else kwargs.get("query")
        st = self._tm_begin((statement_type_of(operation), EXECUTE))
        source = method(*args, **kwargs)
        if st is None:
            yield from source
            return
        st.has_result = True
        self._tm_st = st
        started = _perf()
        try:
            first = self._tm_step(st, source)
            st.ready_at = _perf()
            st.exec_ms = (st.ready_at - started) * 1000.0
            yield first
            yield from self._tm_iterate(source)
        except StopIteration:
            return
        finally:
            if self._tm_st is st:  # closed before the end
                self._tm_finish(exhausted=False)
            close = getattr(source, "close", None)
            if close is not None:
                close()

    @contextlib.contextmanager
    def _tm_copy(self, method: Callable[..., Any], args: Any, kwargs: Any) -> Iterator[Any]:
        """A copy block (psycopg ``copy()``): one statement, from the call to the block's end."""
        operation = args[0] if args else kwargs.get("statement")
        st = self._tm_begin((statement_type_of(operation), EXECUTE))
        self._tm_st = st
        started = _perf()
        try:
            with method(*args, **kwargs) as copy:
                yield copy
        except Exception as exc:
            if st is not None and self._tm_st is st:
                self._tm_st = None
                st.exec_ms = (_perf() - started) * 1000.0
                self._tm_end(st, exhausted=False, exc=exc)
            raise
        if st is not None and self._tm_st is st:
            st.ready_at = _perf()
            st.exec_ms = (st.ready_at - started) * 1000.0
            self._tm_finish(exhausted=True)
