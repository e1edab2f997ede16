"""The proto records a frontend log is made of: frozen data, serialised only by `messages.wire`.

Every field is optional and defaults to ``None``: unset fields are omitted on the wire. Nothing
here is free text from the driver except `DriverErrorInfo.stack_trace`, which is always masked
before it is built (see `messages.mask`).
"""

from __future__ import annotations

import attrs

from messages.enums import (
    AuthFlow,
    AuthMech,
    DriverMode,
    ExecutionResultFormat,
    OperationType,
    StatementType,
)

__all__ = [
    "ChunkDetails",
    "ClientContext",
    "DriverConnectionParams",
    "DriverErrorInfo",
    "ExportResponse",
    "FeatureFlag",
    "FeatureFlagResponse",
    "FrontendLog",
    "FrontendLogContext",
    "FrontendLogEntry",
    "HostInfo",
    "OperationDetail",
    "ResultLatency",
    "SqlDriverLog",
    "SqlExecutionEvent",
    "SystemConfiguration",
]


@attrs.frozen(kw_only=True)
class SystemConfiguration:
    """Driver and client machine facts (`system_configuration`)."""

    driver_name: str | None = None
    driver_version: str | None = None
    runtime_name: str | None = None
    runtime_version: str | None = None
    runtime_vendor: str | None = None
    os_name: str | None = None
    os_version: str | None = None
    os_arch: str | None = None
    client_app_name: str | None = None
    locale_name: str | None = None
    char_set_encoding: str | None = None
    process_name: str | None = None


@attrs.frozen(kw_only=True)
class HostInfo:
    """The server a connection talks to (`host_info`)."""

    host_url: str | None = None
    port: int | None = None


@attrs.frozen(kw_only=True)
class DriverConnectionParams:
    """Connection settings the driver knows (`driver_connection_params`; a subset of the proto)."""

    http_path: str | None = None
    mode: DriverMode | None = None
    host_info: HostInfo | None = None
    auth_mech: AuthMech | None = None
    auth_flow: AuthFlow | None = None
    use_proxy: bool | None = None
    use_system_proxy: bool | None = None
    use_cf_proxy: bool | None = None
    allow_self_signed_support: bool | None = None
    use_system_trust_store: bool | None = None
    enable_arrow: bool | None = None
    enable_direct_results: bool | None = None
    rows_fetched_per_block: int | None = None
    socket_timeout: int | None = None
    async_poll_interval_millis: int | None = None
    http_connection_pool_size: int | None = None


@attrs.frozen(kw_only=True)
class ChunkDetails:
    """Result chunk download facts of one statement (`chunk_details`)."""

    initial_chunk_latency_millis: int | None = None
    slowest_chunk_latency_millis: int | None = None
    total_chunks_present: int | None = None
    total_chunks_iterated: int | None = None
    sum_chunks_download_time_millis: int | None = None


@attrs.frozen(kw_only=True)
class ResultLatency:
    """Latency until the result was ready and until it was consumed (`result_latency`)."""

    result_set_ready_latency_millis: int | None = None
    result_set_consumption_latency_millis: int | None = None


@attrs.frozen(kw_only=True)
class OperationDetail:
    """Status polling facts and the operation type (`operation_detail`)."""

    n_operation_status_calls: int | None = None
    operation_status_latency_millis: int | None = None
    operation_type: OperationType | None = None
    is_internal_call: bool | None = None


@attrs.frozen(kw_only=True)
class SqlExecutionEvent:
    """One statement's aggregated execution (`sql_operation`)."""

    statement_type: StatementType | None = None
    is_compressed: bool | None = None
    execution_result: ExecutionResultFormat | None = None
    retry_count: int | None = None
    chunk_id: int | None = None
    chunk_details: ChunkDetails | None = None
    result_latency: ResultLatency | None = None
    operation_detail: OperationDetail | None = None


@attrs.frozen(kw_only=True)
class DriverErrorInfo:
    """An error's class name and its ``[code]`` and masked, capped message (`error_info`)."""

    error_name: str | None = None
    stack_trace: str | None = None


@attrs.frozen(kw_only=True)
class SqlDriverLog:
    """The driver log proper (`entry.sql_driver_log`, proto `OssSqlDriverTelemetryLog`)."""

    session_id: str | None = None
    sql_statement_id: str | None = None
    system_configuration: SystemConfiguration | None = None
    driver_connection_params: DriverConnectionParams | None = None
    auth_type: str | None = None
    sql_operation: SqlExecutionEvent | None = None
    error_info: DriverErrorInfo | None = None
    operation_latency_ms: int | None = None


@attrs.frozen(kw_only=True)
class ClientContext:
    """When and by which client a log was made (`context.client_context`)."""

    timestamp_millis: int | None = None
    user_agent: str | None = None


@attrs.frozen(kw_only=True)
class FrontendLogContext:
    """The `context` of a frontend log."""

    client_context: ClientContext | None = None


@attrs.frozen(kw_only=True)
class FrontendLogEntry:
    """The `entry` of a frontend log."""

    sql_driver_log: SqlDriverLog | None = None


@attrs.frozen(kw_only=True)
class FrontendLog:
    """One `TelemetryFrontendLog`: the unit the server counts in `numProtoSuccess`."""

    frontend_log_event_id: str
    context: FrontendLogContext | None = None
    entry: FrontendLogEntry | None = None
    workspace_id: int | None = None


@attrs.frozen(kw_only=True)
class ExportResponse:
    """The server's answer to an export: how many logs it took, and its errors."""

    num_proto_success: int = 0
    num_success: int = 0
    num_realtime_success: int = 0
    errors: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class FeatureFlag:
    """One named flag from the feature-flag endpoint; values are strings."""

    name: str
    value: str


@attrs.frozen(kw_only=True)
class FeatureFlagResponse:
    """The feature-flag endpoint's answer."""

    flags: tuple[FeatureFlag, ...] = ()
    ttl_seconds: int | None = None
