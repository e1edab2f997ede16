"""Plain per-statement aggregation and log building, used only inside the AggregatorActor."""

from __future__ import annotations

import os
import random

from messages import events as ev
from messages.commands import ConnectionContext
from messages.enums import OperationType, StatementType
from messages.mask import error_trace
from messages.privacy import LogKind, apply_allow_list
from messages.records import (
    ChunkDetails,
    ClientContext,
    DriverErrorInfo,
    FrontendLog,
    FrontendLogContext,
    FrontendLogEntry,
    OperationDetail,
    ResultLatency,
    SqlDriverLog,
    SqlExecutionEvent,
)

__all__ = ["StatementAggregate", "build_log", "error_info", "event_id", "ms"]


def ms(value: float | None) -> int | None:
    """Milliseconds as the int64 the proto wants (``None`` stays unset)."""
    return None if value is None else round(value)


class StatementAggregate:
    """Everything known so far about one statement (actor-confined, mutable)."""

    __slots__ = (
        "chunk_sum_ms",
        "chunks",
        "compressed",
        "context",
        "done",
        "error",
        "events",
        "first_chunk_ms",
        "operation_type",
        "poll_ms",
        "polls",
        "session_id",
        "size_bytes",
        "slowest_chunk_ms",
        "statement_id",
        "statement_type",
    )

    def __init__(self, context: ConnectionContext, statement_id: str) -> None:
        self.context = context
        self.statement_id = statement_id
        self.session_id: str | None = None
        self.statement_type = StatementType.TYPE_UNSPECIFIED
        self.operation_type = OperationType.EXECUTE_STATEMENT
        self.events = 0
        self.polls = 0
        self.poll_ms = 0.0
        self.chunks = 0
        self.first_chunk_ms: float | None = None
        self.slowest_chunk_ms = 0.0
        self.chunk_sum_ms = 0.0
        self.size_bytes = 0
        self.compressed = False
        self.error: ev.ErrorOccurred | None = None
        self.done: ev.StatementCompleted | None = None

    def add_chunk(self, chunk: ev.ChunkDownloaded) -> None:
        """Fold one chunk into the chunk details."""
        self.chunks += 1
        if chunk.chunk_index == 0 or self.first_chunk_ms is None:
            self.first_chunk_ms = chunk.latency_ms
        self.slowest_chunk_ms = max(self.slowest_chunk_ms, chunk.latency_ms)
        self.chunk_sum_ms += chunk.latency_ms
        self.size_bytes += chunk.size_bytes
        self.compressed = self.compressed or bool(chunk.compressed)

    def sql_operation(self) -> SqlExecutionEvent:
        """The aggregated `sql_operation` record."""
        done = self.done
        chunk_details = None
        if self.chunks:
            chunk_details = ChunkDetails(
                initial_chunk_latency_millis=ms(self.first_chunk_ms),
                slowest_chunk_latency_millis=ms(self.slowest_chunk_ms),
                total_chunks_present=done.total_chunks_present if done else None,
                total_chunks_iterated=self.chunks,
                sum_chunks_download_time_millis=ms(self.chunk_sum_ms),
            )
        result_latency = None
        if done and (
            done.result_ready_latency_ms is not None or done.consumption_latency_ms is not None
        ):
            result_latency = ResultLatency(
                result_set_ready_latency_millis=ms(done.result_ready_latency_ms),
                result_set_consumption_latency_millis=ms(done.consumption_latency_ms),
            )
        return SqlExecutionEvent(
            statement_type=self.statement_type,
            is_compressed=self.compressed if self.chunks else None,
            execution_result=done.execution_result if done else None,
            retry_count=done.retry_count if done else None,
            chunk_details=chunk_details,
            result_latency=result_latency,
            operation_detail=OperationDetail(
                n_operation_status_calls=self.polls,
                operation_status_latency_millis=ms(self.poll_ms),
                operation_type=self.operation_type,
            ),
        )

    def driver_log(self, error_text: str = "masked") -> tuple[LogKind, SqlDriverLog]:
        """The statement's log (an error log if an error was held with it)."""
        done = self.done
        log = SqlDriverLog(
            session_id=self.session_id,
            sql_statement_id=self.statement_id,
            system_configuration=self.context.system_configuration,
            sql_operation=self.sql_operation(),
            error_info=error_info(self.error, error_text) if self.error else None,
            operation_latency_ms=ms(done.operation_latency_ms) if done else None,
        )
        return (LogKind.ERROR if self.error else LogKind.STATEMENT), log


def error_info(error: ev.ErrorOccurred, error_text: str = "masked") -> DriverErrorInfo:
    """The exported error: class name, ``[code]`` and the masked, capped message."""
    trace = error_trace(error.message, error.error_code, error_text)
    return DriverErrorInfo(error_name=error.error_name, stack_trace=trace)


# Event ids only have to be unique, not unpredictable: a private generator seeded from the OS
# (reseeded in a forked child) makes them without uuid4's system call and object per log.
_ids = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))
_UUID4_KEEP = ~(0xF000 << 64) & ~(0xC000 << 48)
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


def event_id() -> str:
    """A fresh random (version 4) UUID string for `frontend_log_event_id`."""
    h = ((_ids.getrandbits(128) & _UUID4_KEEP) | _UUID4_SET).to_bytes(16, "big").hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def build_log(
    context: ConnectionContext, kind: LogKind, log: SqlDriverLog, now_ms: int
) -> FrontendLog:
    """Wrap an allow-listed driver log into a frontend log with a fresh event id."""
    return FrontendLog(
        frontend_log_event_id=event_id(),
        context=_log_context(now_ms, context.user_agent),
        entry=FrontendLogEntry(sql_driver_log=apply_allow_list(kind, log)),
        workspace_id=context.workspace_id,
    )


# The logs the aggregator builds from one lane take share a millisecond and mostly one user
# agent: the last (frozen) client context is reused while both match. Rebinding the one global
# is atomic; aggregators of two hosts only miss more often.
_last: tuple[int, str, FrontendLogContext | None] = (-1, "", None)


def _log_context(now_ms: int, user_agent: str) -> FrontendLogContext:
    global _last
    last_ms, last_agent, made = _last
    if made is None or last_ms != now_ms or last_agent != user_agent:
        made = FrontendLogContext(
            client_context=ClientContext(timestamp_millis=now_ms, user_agent=user_agent)
        )
        _last = (now_ms, user_agent, made)
    return made
