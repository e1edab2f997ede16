"""Frontend logs as OTLP LogRecords: semantic-convention attributes, resource and scope.

The logs arrive already allow-listed and with their error text masked (as for the Databricks
path); nothing here adds statement text. A log's kind is read from which fields it carries.
"""

from __future__ import annotations

import enum
import functools
import importlib.metadata
import re
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any

import attrs

from messages.records import FrontendLog, SqlDriverLog, SystemConfiguration

__all__ = [
    "OtlpResource",
    "ServerAddress",
    "batch_system",
    "log_kind",
    "log_record",
    "logs_request",
    "namespace_of",
    "operation_name",
    "remember_namespaces",
    "resource_attributes",
    "status_code",
]

Message = dict[str, Any]

SEVERITY_INFO = 9
SEVERITY_WARN = 13
EXCEPTION_EVENT = "db.client.operation.exception"
_CLOSING = frozenset({"DELETE_SESSION", "CLOSE_STATEMENT", "CANCEL_STATEMENT"})
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i386": "x86"}
_SDK_NAME = "driver-telemetry"
# The exported error text starts with `[code]` when the driver knew a SQLSTATE or vendor code.
_CODE_PREFIX = re.compile(r"\[([A-Za-z0-9_.\-]{1,64})\]")
MAX_SESSIONS = 1024


@attrs.frozen(kw_only=True)
class ServerAddress:
    """The database server a tree exports for (`server.address`, `server.port`)."""

    host: str
    port: int | None = None


@attrs.frozen(kw_only=True)
class OtlpResource:
    """What the operator adds to every resource: a service name and extra attributes."""

    service_name: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()
    db_system: str = "databricks"


def _scalar(value: object) -> object:
    if type(value) in (str, bool, int, float):
        return value
    if isinstance(value, str):  # a str subclass: its plain text, never its own methods
        return str.__str__(value)
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def key_values(pairs: Iterable[tuple[str, object]]) -> list[Any]:
    """`KeyValue`s (as `(key, scalar)` tuples, which the encoders take) for the set pairs."""
    return [(k, _scalar(v)) for k, v in pairs if v is not None]


@functools.cache
def _sdk_version() -> str:
    try:
        return importlib.metadata.version(_SDK_NAME)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def resource_attributes(
    system: SystemConfiguration | None, resource: OtlpResource
) -> list[tuple[str, object]]:
    """Resource attributes from the driver's system configuration and the operator's settings."""
    s = system or SystemConfiguration()
    found: dict[str, object] = {
        "service.name": s.client_app_name or "unknown_service:python",
        "telemetry.sdk.name": _SDK_NAME,
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": _sdk_version(),
        "process.runtime.name": s.runtime_vendor.lower() if s.runtime_vendor else None,
        "process.runtime.version": s.runtime_version,
        "process.runtime.description": s.runtime_name,
        "os.type": s.os_name.lower() if s.os_name else None,
        "os.version": s.os_version,
        "host.arch": _ARCH.get((s.os_arch or "").lower(), s.os_arch),
    }
    found.update(resource.attributes)  # the operator's OTEL_RESOURCE_ATTRIBUTES win
    if resource.service_name:
        found["service.name"] = resource.service_name
    return [(k, v) for k, v in found.items() if v is not None]


def log_kind(log: SqlDriverLog) -> str:
    """`connection`, `statement`, `error` or `close`, from the fields the log carries."""
    if log.error_info is not None:
        return "error"
    if operation_name(log) in _CLOSING:
        return "close"
    if log.sql_statement_id is not None or log.sql_operation is not None:
        return "statement"
    return "connection"


def operation_name(log: SqlDriverLog) -> str | None:
    """`db.operation.name`: the driver operation, or CREATE_SESSION for a connection log."""
    detail = log.sql_operation.operation_detail if log.sql_operation else None
    if detail is not None and detail.operation_type is not None:
        return str(detail.operation_type.value)
    if log.driver_connection_params is not None or log.auth_type is not None:
        return "CREATE_SESSION"
    return None


def status_code(log: SqlDriverLog) -> str | None:
    """`db.response.status_code`: the `[code]` the error text starts with (a SQLSTATE), if any."""
    trace = log.error_info.stack_trace if log.error_info else None
    found = _CODE_PREFIX.match(trace) if isinstance(trace, str) else None
    return found.group(1) if found else None


def namespace_of(log: SqlDriverLog) -> str | None:
    """The `http_path` a connection log carries (the warehouse or cluster: `db.namespace`)."""
    params = log.driver_connection_params
    return params.http_path if params is not None and params.http_path else None


def remember_namespaces(logs: Iterable[FrontendLog], into: MutableMapping[str, str]) -> None:
    """Note each session's namespace from its connection log, keeping at most MAX_SESSIONS."""
    for frontend in logs:
        log = frontend.entry.sql_driver_log if frontend.entry else None
        path = namespace_of(log) if log is not None else None
        if path is None or log is None or log.session_id is None:
            continue
        into.pop(log.session_id, None)
        into[log.session_id] = path
        while len(into) > MAX_SESSIONS:  # the oldest sessions go first
            del into[next(iter(into))]


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _flat(prefix: str, record: Any) -> list[tuple[str, object]]:
    """Every set field of a record as `prefix.field`, nested records flattened."""
    cls = type(record)
    names = _FIELD_NAMES.get(cls)
    if names is None:  # the server address (`host_info`) is never exported
        names = _FIELD_NAMES[cls] = tuple(
            f.name for f in attrs.fields(cls) if f.name != "host_info"
        )
    pairs: list[tuple[str, object]] = []
    for name in names:
        value = getattr(record, name)
        if value is None:
            continue
        if hasattr(type(value), "__attrs_attrs__"):
            pairs += _flat(f"{prefix}.{name}", value)
        else:
            pairs.append((f"{prefix}.{name}", value))
    return pairs


def _attributes(
    frontend: FrontendLog,
    log: SqlDriverLog,
    server: ServerAddress | None,
    db_system: str,
    namespace: str | None,
) -> list[tuple[str, object]]:
    error = log.error_info
    client = frontend.context.client_context if frontend.context else None
    pairs: list[tuple[str, object]] = [
        ("db.system.name", db_system),
        ("db.namespace", namespace),
        ("db.operation.name", operation_name(log)),
        ("db.response.status_code", status_code(log) if error else None),
        ("server.address", server.host if server else None),
        ("server.port", server.port if server else None),
        ("error.type", (error.error_name or "_OTHER") if error else None),
        ("exception.type", error.error_name if error else None),
        ("exception.message", error.stack_trace if error else None),
        ("log.record.uid", frontend.frontend_log_event_id),
        ("user_agent.original", client.user_agent if client else None),
        ("databricks.workspace_id", frontend.workspace_id),
        ("databricks.session_id", log.session_id),
        ("databricks.statement_id", log.sql_statement_id),
        ("databricks.auth_type", log.auth_type),
        ("databricks.operation_latency_ms", log.operation_latency_ms),
    ]
    if log.sql_operation is not None:
        pairs += _flat("databricks.sql_operation", log.sql_operation)
    if log.driver_connection_params is not None:
        pairs += _flat("databricks.connection", log.driver_connection_params)
    return pairs


def log_record(
    frontend: FrontendLog,
    *,
    server: ServerAddress | None,
    observed_ns: int,
    db_system: str = "databricks",
    namespaces: Mapping[str, str] | None = None,
) -> Message:
    """One `LogRecord`; an error is a `db.client.operation.exception` event at WARN.

    `namespaces` maps a session to its namespace, for the logs after its connection log.
    """
    log = (frontend.entry.sql_driver_log if frontend.entry else None) or SqlDriverLog()
    namespace = namespace_of(log)
    if namespace is None and namespaces and log.session_id is not None:
        namespace = namespaces.get(log.session_id)
    kind = log_kind(log)
    client = frontend.context.client_context if frontend.context else None
    when_ms = client.timestamp_millis if client else None
    error = kind == "error"
    body = (log.error_info.stack_trace or log.error_info.error_name) if log.error_info else None
    return {
        "time_unix_nano": when_ms * 1_000_000 if when_ms else None,
        "observed_time_unix_nano": observed_ns,
        "severity_number": SEVERITY_WARN if error else SEVERITY_INFO,
        "severity_text": "WARN" if error else "INFO",
        "body": {"string_value": body or f"databricks.driver.{kind}"},
        "attributes": key_values(_attributes(frontend, log, server, db_system, namespace)),
        "event_name": EXCEPTION_EVENT if error else f"databricks.driver.{kind}",
    }


def batch_system(systems: Iterable[SystemConfiguration | None]) -> SystemConfiguration | None:
    """A batch is one connection's: a log without a system configuration (a close) is its too."""
    return next((s for s in systems if s is not None), None)


def _system_of(frontend: FrontendLog) -> SystemConfiguration | None:
    log = frontend.entry.sql_driver_log if frontend.entry else None
    return log.system_configuration if log else None


def logs_request(
    logs: Sequence[FrontendLog],
    *,
    resource: OtlpResource,
    server: ServerAddress | None,
    observed_ns: int,
    systems: Sequence[SystemConfiguration | None] | None = None,
    namespaces: Mapping[str, str] | None = None,
) -> Message:
    """An `ExportLogsServiceRequest`: one ResourceLogs per system configuration, scope = driver.

    `systems`, if given, are the logs' system configurations (decoded once per batch rather
    than once per log); by default each log's own. `namespaces`: sessions' namespaces.
    """
    if systems is None:
        systems = [_system_of(frontend) for frontend in logs]
    known = batch_system(systems)
    groups: dict[SystemConfiguration | None, list[Message]] = {}
    for frontend, system in zip(logs, systems, strict=True):
        record = log_record(
            frontend,
            server=server,
            observed_ns=observed_ns,
            db_system=resource.db_system,
            namespaces=namespaces,
        )
        groups.setdefault(system or known, []).append(record)
    return {"resource_logs": [_resource_logs(s, r, resource) for s, r in groups.items()]}


def _resource_logs(
    system: SystemConfiguration | None, records: list[Message], resource: OtlpResource
) -> Message:
    scope = {
        "name": (system.driver_name if system else None) or _SDK_NAME,
        "version": system.driver_version if system else None,
    }
    return {
        "resource": {"attributes": key_values(resource_attributes(system, resource))},
        "scope_logs": [{"scope": scope, "log_records": records}],
    }
