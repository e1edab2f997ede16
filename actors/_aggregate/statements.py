"""Plain per-statement aggregation and log building, used only inside the AggregatorActor."""

from __future__ import annotations

import math
import os
import random
import typing
from typing import Any

import attrs

from messages import events as ev
from messages.commands import ConnectionContext
from messages.enums import ExecutionResultFormat, OperationType, StatementType
from messages.errors import is_error_code
from messages.mask import error_trace
from messages.privacy import LogKind, apply_allow_list
from messages.records import (
    ChunkDetails,
    ClientContext,
    DriverConnectionParams,
    DriverErrorInfo,
    FrontendLog,
    FrontendLogContext,
    FrontendLogEntry,
    OperationDetail,
    ResultLatency,
    SqlDriverLog,
    SqlExecutionEvent,
    SystemConfiguration,
)

__all__ = ["StatementAggregate", "build_log", "invalid_reason", "ms"]

_MAX_ID_CHARS = 256
_MAX_MS = 10.0**12


def ms(value: float | None) -> int | None:
    """Milliseconds as the int64 the proto wants (``None`` stays unset)."""
    return None if value is None else round(value)


def _bad_str(value: object) -> bool:
    """Not a str, longer than an id may be, or not UTF-8 encodable (a lone surrogate).

    Any of these would fail the whole batch the log joins: its encoding, or the server's limit
    on one log (escaped, a character can take 7 bytes on the wire). Exact builtin types only,
    here and below: a subclass may override hashing, comparison or rounding to raise, which would
    fail the aggregator's handler instead of this check.
    """
    if type(value) is not str or len(value) > _MAX_ID_CHARS:
        return True
    if value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _bad_id(value: object) -> bool:
    return type(value) is not str or not value or len(value) > _MAX_ID_CHARS or _bad_str(value)


_FIELD_TYPES: dict[type[Any], tuple[tuple[str, type[Any]], ...]] = {}


def _field_types(cls: type[Any]) -> tuple[tuple[str, type[Any]], ...]:
    """Each field of a record with its declared type, `None` taken out of the union."""
    found = _FIELD_TYPES.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = _FIELD_TYPES[cls] = tuple(
            (field.name, _not_none(hints[field.name])) for field in attrs.fields(cls)
        )
    return found


def _not_none(hint: Any) -> type[Any]:
    members = typing.get_args(hint) or (hint,)
    return next(t for t in members if t is not type(None))  # type: ignore[no-any-return]


def _bad_record(value: object, cls: type[Any]) -> bool:
    """Whether a driver-built record could not be sent: wrong type anywhere inside it.

    One such log would fail the encoding, or the server's validation, of its whole batch.
    """
    if value is None:
        return False
    if type(value) is not cls:
        return True
    for name, wanted in _field_types(cls):
        item = getattr(value, name)
        if item is None:
            continue
        if attrs.has(wanted):
            bad = _bad_record(item, wanted)
        elif wanted is int:
            bad = type(item) is not int or not 0 <= item < 2**63
        elif wanted is str:
            bad = _bad_str(item)
        else:  # bool and enums
            bad = not isinstance(item, wanted)
        if bad:
            return True
    return False


def _bad_ms(value: object, optional: bool = True) -> bool:
    if value is None:
        return not optional
    if type(value) is int or type(value) is float:
        return not (math.isfinite(value) and 0 <= value <= _MAX_MS)
    return True


def _bad_count(value: object) -> bool:
    return type(value) is not int or not 0 <= value < 2**31


def invalid_reason(event: object) -> str | None:
    """Why an event cannot be aggregated, or None when it is well formed."""
    match event:
        case ev.ConnectionOpened(session_id=sid, latency_ms=lat) as opened:
            if _bad_id(sid):
                return "session_id"
            if _bad_ms(lat):
                return "latency_ms"
            if opened.auth_type is not None and _bad_str(opened.auth_type):
                return "auth_type"
            if _bad_record(opened.connection_params, DriverConnectionParams):
                return "connection_params"
            if _bad_record(opened.system_configuration, SystemConfiguration):
                return "system_configuration"
            return None
        case ev.ConnectionClosed(session_id=sid, latency_ms=lat):
            return "session_id" if _bad_id(sid) else "latency_ms" if _bad_ms(lat) else None
        case ev.StatementStarted(
            statement_id=st, session_id=sid, statement_type=t, operation_type=o
        ):
            if _bad_id(st) or _bad_id(sid):
                return "id"
            ok = isinstance(t, StatementType) and isinstance(o, OperationType)
            return None if ok else "enum"
        case ev.OperationPolled(statement_id=st, latency_ms=lat):
            return "statement_id" if _bad_id(st) else "latency_ms" if _bad_ms(lat, False) else None
        case ev.ChunkDownloaded(statement_id=st, chunk_index=i, latency_ms=lat, size_bytes=b):
            if _bad_id(st) or _bad_count(i) or _bad_ms(lat, False):
                return "chunk"
            if not isinstance(event.compressed, bool):
                return "compressed"
            return "size_bytes" if type(b) is not int or b < 0 else None
        case ev.StatementCompleted(statement_id=st, retry_count=r) as done:
            if _bad_id(st) or _bad_count(r):
                return "statement"
            if not isinstance(done.execution_result, ExecutionResultFormat):
                return "enum"
            for value in (
                done.result_ready_latency_ms,
                done.consumption_latency_ms,
                done.operation_latency_ms,
            ):
                if _bad_ms(value):
                    return "latency_ms"
            present = done.total_chunks_present
            return None if present is None or not _bad_count(present) else "total_chunks_present"
        case ev.StatementCancelled(statement_id=st) | ev.StatementClosed(statement_id=st):
            return "statement_id" if _bad_id(st) else None
        case ev.ErrorOccurred(error_name=name, statement_id=st, session_id=sid, http_status=hs):
            if _bad_id(name):
                return "error_name"
            if event.error_code is not None and not is_error_code(event.error_code):
                return "error_code"
            if event.retryable is not None and not isinstance(event.retryable, bool):
                return "retryable"
            if (st is not None and _bad_id(st)) or (sid is not None and _bad_id(sid)):
                return "id"
            bad_status = hs is not None and (_bad_count(hs) or not 100 <= hs <= 599)
            return "http_status" if bad_status else None
    return "type"


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
        context=FrontendLogContext(
            client_context=ClientContext(timestamp_millis=now_ms, user_agent=context.user_agent)
        ),
        entry=FrontendLogEntry(sql_driver_log=apply_allow_list(kind, log)),
        workspace_id=context.workspace_id,
    )


def describe(value: Any) -> str:
    """A safe, short type name for logs (never calls the value's own `__repr__`)."""
    return type(value).__name__
