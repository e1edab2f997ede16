"""The benchmark's unit of work: one statement told as five events, as a driver would tell it.

start, one status poll, two result chunks, complete. Events are built on the telling thread
(their construction is part of the driver's cost); ids are made beforehand.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from _common import pc_ns

from messages.enums import ExecutionResultFormat, StatementType
from messages.events import (
    ChunkDownloaded,
    OperationPolled,
    StatementCompleted,
    StatementStarted,
)

EVENTS_PER_STATEMENT = 5
SESSION_ID = "5e55a0b2-0000-4000-8000-000000000001"

Tell = Callable[[Any], Any]


def tell_statement(tell: Tell, sid: str, session: str = SESSION_ID) -> None:
    """Construct and tell the five events of one statement."""
    tell(StatementStarted(statement_id=sid, session_id=session, statement_type=StatementType.QUERY))
    tell(OperationPolled(statement_id=sid, latency_ms=1.5))
    tell(ChunkDownloaded(statement_id=sid, chunk_index=0, latency_ms=3.0, size_bytes=4096))
    tell(ChunkDownloaded(statement_id=sid, chunk_index=1, latency_ms=2.0, size_bytes=4096))
    tell(
        StatementCompleted(
            statement_id=sid,
            execution_result=ExecutionResultFormat.INLINE_ARROW,
            operation_latency_ms=12.0,
            total_chunks_present=2,
        )
    )


def timed_statement(tell: Tell, sid: str, out: list[int], session: str = SESSION_ID) -> None:
    """`tell_statement`, appending each event's construct+tell wall time (ns) to `out`."""
    t0 = pc_ns()
    tell(StatementStarted(statement_id=sid, session_id=session, statement_type=StatementType.QUERY))
    t1 = pc_ns()
    tell(OperationPolled(statement_id=sid, latency_ms=1.5))
    t2 = pc_ns()
    tell(ChunkDownloaded(statement_id=sid, chunk_index=0, latency_ms=3.0, size_bytes=4096))
    t3 = pc_ns()
    tell(ChunkDownloaded(statement_id=sid, chunk_index=1, latency_ms=2.0, size_bytes=4096))
    t4 = pc_ns()
    tell(
        StatementCompleted(
            statement_id=sid,
            execution_result=ExecutionResultFormat.INLINE_ARROW,
            operation_latency_ms=12.0,
            total_chunks_present=2,
        )
    )
    t5 = pc_ns()
    out += (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)


def timed_construct_only(sid: str, out: list[int], session: str = SESSION_ID) -> None:
    """The five constructions alone, timed the same way (the part no tell can avoid)."""
    t0 = pc_ns()
    StatementStarted(statement_id=sid, session_id=session, statement_type=StatementType.QUERY)
    t1 = pc_ns()
    OperationPolled(statement_id=sid, latency_ms=1.5)
    t2 = pc_ns()
    ChunkDownloaded(statement_id=sid, chunk_index=0, latency_ms=3.0, size_bytes=4096)
    t3 = pc_ns()
    ChunkDownloaded(statement_id=sid, chunk_index=1, latency_ms=2.0, size_bytes=4096)
    t4 = pc_ns()
    StatementCompleted(
        statement_id=sid,
        execution_result=ExecutionResultFormat.INLINE_ARROW,
        operation_latency_ms=12.0,
        total_chunks_present=2,
    )
    t5 = pc_ns()
    out += (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)


class Pacer:
    """Tells statements at a fixed rate from one thread, in small bursts between short waits."""

    def __init__(self, tell: Tell, statements_per_s: float, sids: list[str]) -> None:
        self._tell = tell
        self._rate = statements_per_s
        self._sids = sids
        self.told_statements = 0

    def run(self, duration_s: float, stop: threading.Event, clock: Callable[[], float]) -> None:
        """Tell until `duration_s` passes or `stop` is set."""
        start = clock()
        sids, count = self._sids, len(self._sids)
        n = 0
        while not stop.is_set():
            elapsed = clock() - start
            if elapsed >= duration_s:
                break
            due = int(elapsed * self._rate) + 1
            while n < due:
                tell_statement(self._tell, sids[n % count])
                n += 1
            self.told_statements = n
            stop.wait(0.002)
