"""Privacy by construction: which `sql_driver_log` fields each kind of log may carry on the wire.

Events have no field for SQL text, parameters or results, so those cannot be sent; this
allow-list additionally keeps every log kind to the fields it needs (no server address), and
`strip_for_unauth` reduces a log to what may go to `/telemetry-unauth`.
"""

from __future__ import annotations

import enum

import attrs

from messages.records import FrontendLog, FrontendLogEntry, SqlDriverLog, SystemConfiguration

__all__ = ["EXPORT_ALLOW_LIST", "LogKind", "apply_allow_list", "strip_for_unauth"]


class LogKind(enum.Enum):
    """The kinds of frontend log the aggregator emits."""

    CONNECTION = "connection"
    STATEMENT = "statement"
    ERROR = "error"
    CLOSE = "close"


_COMMON = frozenset({"session_id", "system_configuration", "operation_latency_ms"})
EXPORT_ALLOW_LIST: dict[LogKind, frozenset[str]] = {
    LogKind.CONNECTION: _COMMON | {"driver_connection_params", "auth_type"},
    LogKind.STATEMENT: _COMMON | {"sql_statement_id", "sql_operation", "error_info"},
    LogKind.ERROR: _COMMON | {"sql_statement_id", "sql_operation", "error_info"},
    LogKind.CLOSE: _COMMON | {"sql_statement_id", "sql_operation"},  # which statement closed
}
_ALL_FIELDS = tuple(a.name for a in attrs.fields(SqlDriverLog))
# Per kind, the fields it may not export (one pass over these, per log).
_BARRED: dict[LogKind, tuple[str, ...]] = {
    kind: tuple(name for name in _ALL_FIELDS if name not in allowed)
    for kind, allowed in EXPORT_ALLOW_LIST.items()
}


def apply_allow_list(kind: LogKind, log: SqlDriverLog) -> SqlDriverLog:
    """Unset every field `kind` may not export; the server address is never exported."""
    changes: dict[str, None] = {
        name: None for name in _BARRED[kind] if getattr(log, name) is not None
    }
    params = log.driver_connection_params
    if (
        params is not None
        and params.host_info
        and "driver_connection_params" in EXPORT_ALLOW_LIST[kind]
    ):
        log = attrs.evolve(log, driver_connection_params=attrs.evolve(params, host_info=None))
    return attrs.evolve(log, **changes) if changes else log


def strip_for_unauth(log: FrontendLog) -> FrontendLog:
    """What an unauthenticated connection may send: no ids, workspace or connection details."""
    entry = log.entry.sql_driver_log if log.entry else None
    if entry is None:
        return attrs.evolve(log, workspace_id=None)
    system = entry.system_configuration
    if system is not None:
        system = SystemConfiguration(
            driver_name=system.driver_name,
            driver_version=system.driver_version,
            runtime_name=system.runtime_name,
            runtime_version=system.runtime_version,
            runtime_vendor=system.runtime_vendor,
            os_name=system.os_name,
            os_version=system.os_version,
            os_arch=system.os_arch,
            char_set_encoding=system.char_set_encoding,
        )
    stripped = SqlDriverLog(
        system_configuration=system,
        sql_operation=entry.sql_operation,
        error_info=entry.error_info,
        operation_latency_ms=entry.operation_latency_ms,
    )
    return attrs.evolve(log, workspace_id=None, entry=FrontendLogEntry(sql_driver_log=stripped))
