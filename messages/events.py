"""Events a driver tells: immutable facts about connections and statements, in driver terms.

Construct them on the driver thread and hand them to `Connection.tell()`. They carry no SQL text,
no parameters and no result data by design; the only free text is `ErrorOccurred.message`, which
is masked (`messages.mask`) and capped before it can reach the wire. No validation runs here
(that would cost the driver's thread); the aggregator checks each event and counts bad ones as
`invalid_event`.
"""

from __future__ import annotations

import attrs

from messages.enums import ExecutionResultFormat, OperationType, StatementType
from messages.records import DriverConnectionParams, SystemConfiguration

__all__ = [
    "ChunkDownloaded",
    "ConnectionClosed",
    "ConnectionOpened",
    "ErrorOccurred",
    "Event",
    "OperationPolled",
    "StatementCancelled",
    "StatementClosed",
    "StatementCompleted",
    "StatementStarted",
    "StatementSummary",
]


@attrs.frozen(kw_only=True)
class ConnectionOpened:
    """A session was opened; exported at once as a connection log."""

    session_id: str
    connection_params: DriverConnectionParams | None = None
    auth_type: str | None = None
    latency_ms: float | None = None
    system_configuration: SystemConfiguration | None = None


@attrs.frozen(kw_only=True)
class ConnectionClosed:
    """A session was closed; its open statements are emitted, then a close log."""

    session_id: str
    latency_ms: float | None = None


@attrs.frozen(kw_only=True)
class StatementStarted:
    """A statement began executing."""

    statement_id: str
    session_id: str
    statement_type: StatementType = StatementType.QUERY
    operation_type: OperationType = OperationType.EXECUTE_STATEMENT


@attrs.frozen(kw_only=True)
class OperationPolled:
    """The driver polled a statement's status once."""

    statement_id: str
    latency_ms: float


@attrs.frozen(kw_only=True)
class ChunkDownloaded:
    """One result chunk (or fetch) of a statement arrived."""

    statement_id: str
    chunk_index: int
    latency_ms: float
    size_bytes: int = 0
    compressed: bool = False


@attrs.frozen(kw_only=True)
class StatementCompleted:
    """A statement finished; its aggregated log is emitted."""

    statement_id: str
    execution_result: ExecutionResultFormat = ExecutionResultFormat.FORMAT_UNSPECIFIED
    retry_count: int = 0
    result_ready_latency_ms: float | None = None
    consumption_latency_ms: float | None = None
    operation_latency_ms: float | None = None
    total_chunks_present: int | None = None


@attrs.frozen(kw_only=True)
class StatementSummary:
    """One whole statement, folded by the driver itself; its log is emitted at once.

    What `StatementStarted`, the statement's `OperationPolled`s and `ChunkDownloaded`s, an
    `ErrorOccurred` held with it and `StatementCompleted` would tell, as one event: the PEP 249
    wrapper tells this when a statement ends, and a driver may too. The completion fields have
    `StatementCompleted`'s names and meaning; they are exported only when `completed` (a
    statement ended by a terminal `error` is not). Chunk latencies are the first chunk's, the
    slowest one's and their sum, over `chunks` chunks of `size_bytes` in all.
    """

    statement_id: str
    session_id: str
    statement_type: StatementType = StatementType.QUERY
    operation_type: OperationType = OperationType.EXECUTE_STATEMENT
    completed: bool = True
    execution_result: ExecutionResultFormat = ExecutionResultFormat.FORMAT_UNSPECIFIED
    retry_count: int = 0
    result_ready_latency_ms: float | None = None
    consumption_latency_ms: float | None = None
    operation_latency_ms: float | None = None
    total_chunks_present: int | None = None
    polls: int = 0
    poll_latency_ms: float = 0.0
    chunks: int = 0
    first_chunk_latency_ms: float = 0.0
    slowest_chunk_latency_ms: float = 0.0
    chunks_latency_ms: float = 0.0
    size_bytes: int = 0
    compressed: bool = False
    error: ErrorOccurred | None = None


@attrs.frozen(kw_only=True)
class StatementCancelled:
    """A statement was cancelled; its aggregated log is emitted."""

    statement_id: str


@attrs.frozen(kw_only=True)
class StatementClosed:
    """A statement was closed; its aggregated log is emitted if still pending."""

    statement_id: str


@attrs.frozen(kw_only=True)
class ErrorOccurred:
    """An error seen by the driver.

    `retryable` is the driver's classification (see `actors._export.classify`); when ``None`` the
    aggregator classifies by `http_status`. Terminal errors are exported at once; retryable ones
    are held with their statement until it completes. `error_code` is the SQLSTATE or vendor
    code (`messages.errors.error_code` reads it from an exception): 1..64 letters, digits, ``_``,
    ``.`` or ``-``; any other value makes the event invalid.
    """

    error_name: str
    message: str = ""
    error_code: str | None = None
    http_status: int | None = None
    statement_id: str | None = None
    session_id: str | None = None
    retryable: bool | None = None


Event = (
    ConnectionOpened
    | ConnectionClosed
    | StatementStarted
    | OperationPolled
    | ChunkDownloaded
    | StatementCompleted
    | StatementSummary
    | StatementCancelled
    | StatementClosed
    | ErrorOccurred
)
