"""Plain per-statement aggregation and log building, used only inside the AggregatorActor."""

from __future__ import annotations

from typing import Any

from actors._runtime.ids import new_id
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

__all__ = ["StatementAggregate", "build_log", "error_info", "event_id", "ms", "statement_log"]


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
        self.done: ev.StatementCompleted | ev.StatementSummary | None = None

    def add_chunk(self, chunk: ev.ChunkDownloaded) -> None:
        """Fold one chunk into the chunk details."""
        self.chunks += 1
        if chunk.chunk_index == 0 or self.first_chunk_ms is None:
            self.first_chunk_ms = chunk.latency_ms
        self.slowest_chunk_ms = max(self.slowest_chunk_ms, chunk.latency_ms)
        self.chunk_sum_ms += chunk.latency_ms
        self.size_bytes += chunk.size_bytes
        self.compressed = self.compressed or bool(chunk.compressed)

    def driver_log(self, error_text: str = "masked") -> tuple[LogKind, SqlDriverLog]:
        """The statement's log (an error log if an error was held with it)."""
        return statement_log(
            self.context,
            self.statement_id,
            self.session_id,
            self.statement_type,
            self.operation_type,
            self.polls,
            self.poll_ms,
            self.chunks,
            self.first_chunk_ms,
            self.slowest_chunk_ms,
            self.chunk_sum_ms,
            self.compressed,
            self.done,
            self.error,
            error_text,
        )


def statement_log(
    context: ConnectionContext,
    statement_id: str,
    session_id: str | None,
    statement_type: StatementType,
    operation_type: OperationType,
    polls: int,
    poll_ms: float,
    chunks: int,
    first_chunk_ms: float | None,
    slowest_chunk_ms: float,
    chunk_sum_ms: float,
    compressed: bool,
    done: ev.StatementCompleted | ev.StatementSummary | None,
    error: ev.ErrorOccurred | None,
    error_text: str = "masked",
) -> tuple[LogKind, SqlDriverLog]:
    """A statement's log from what is known of it: its events folded (`StatementAggregate`), or
    the summary its driver folded (`done` is the completion, None if it never completed).

    The `sql_operation` record holds only kinds, counts and whole milliseconds, so fast
    statements of one kind make equal ones: the last few are shared (they are immutable), and
    the encoder writes a shared one's JSON once (`messages.encode`).
    """
    first = ms(first_chunk_ms) if chunks else None
    present = ready = consumed = result = retries = None
    if done is not None:
        present, result, retries = (
            done.total_chunks_present,
            done.execution_result,
            done.retry_count,
        )
        ready, consumed = ms(done.result_ready_latency_ms), ms(done.consumption_latency_ms)
    slowest, chunk_sum, poll = round(slowest_chunk_ms), round(chunk_sum_ms), round(poll_ms)
    # Enum members by identity: they are singletons, and their hash is Python code.
    key = (id(statement_type), id(operation_type), polls, poll, chunks, first, slowest,
           chunk_sum, compressed, present, id(result), retries, ready, consumed)  # fmt: skip
    operation = _OPERATIONS.get(key)
    if operation is None:
        chunk_details = None
        if chunks:
            chunk_details = ChunkDetails(
                initial_chunk_latency_millis=first,
                slowest_chunk_latency_millis=slowest,
                total_chunks_present=present,
                total_chunks_iterated=chunks,
                sum_chunks_download_time_millis=chunk_sum,
            )
        result_latency = None
        if ready is not None or consumed is not None:
            result_latency = ResultLatency(
                result_set_ready_latency_millis=ready,
                result_set_consumption_latency_millis=consumed,
            )
        operation = SqlExecutionEvent(
            statement_type=statement_type,
            is_compressed=compressed if chunks else None,
            execution_result=result,
            retry_count=retries,
            chunk_details=chunk_details,
            result_latency=result_latency,
            operation_detail=OperationDetail(
                n_operation_status_calls=polls,
                operation_status_latency_millis=poll,
                operation_type=operation_type,
            ),
        )
        if len(_OPERATIONS) >= _OPERATIONS_KEPT:
            _OPERATIONS.clear()
        _OPERATIONS[key] = operation  # a race between aggregators only costs a recomputation
    log = SqlDriverLog(
        session_id=session_id,
        sql_statement_id=statement_id,
        system_configuration=context.system_configuration,
        sql_operation=operation,
        error_info=error_info(error, error_text) if error else None,
        operation_latency_ms=ms(done.operation_latency_ms) if done else None,
    )
    return (LogKind.ERROR if error else LogKind.STATEMENT), log


_OPERATIONS: dict[tuple[Any, ...], SqlExecutionEvent] = {}
_OPERATIONS_KEPT = 256


def error_info(error: ev.ErrorOccurred, error_text: str = "masked") -> DriverErrorInfo:
    """The exported error: class name, ``[code]`` and the masked, capped message."""
    trace = error_trace(error.message, error.error_code, error_text)
    return DriverErrorInfo(error_name=error.error_name, stack_trace=trace)


def event_id() -> str:
    """A fresh UUID-shaped (version 4) id for `frontend_log_event_id`, unique in the process."""
    return new_id()


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
