"""A local telemetry endpoint (the protocol's server side) for integration tests and demos."""

from .cli import add_commands, run_serve, run_show
from .faults import FAULT_MODES, Fault
from .handler import FLAG_NAME
from .server import LocalEndpoint
from .store import LogStore, derive_kind
from .validate import (
    MAX_BODY_BYTES,
    MAX_PROTO_LOG_BYTES,
    MAX_PROTO_LOGS,
    WireError,
    validate_request,
)

__all__ = [
    "FAULT_MODES",
    "FLAG_NAME",
    "MAX_BODY_BYTES",
    "MAX_PROTO_LOGS",
    "MAX_PROTO_LOG_BYTES",
    "Fault",
    "LocalEndpoint",
    "LogStore",
    "WireError",
    "add_commands",
    "derive_kind",
    "run_serve",
    "run_show",
    "validate_request",
]
