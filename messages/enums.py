"""Enumerations of the Databricks driver-telemetry proto, valued as their UPPER_CASE wire names."""

from __future__ import annotations

import enum

__all__ = [
    "AuthFlow",
    "AuthMech",
    "DriverMode",
    "ExecutionResultFormat",
    "OperationType",
    "StatementType",
]


class StatementType(enum.Enum):
    """What kind of statement a `sql_operation` describes."""

    TYPE_UNSPECIFIED = "TYPE_UNSPECIFIED"
    QUERY = "QUERY"
    SQL = "SQL"
    UPDATE = "UPDATE"
    METADATA = "METADATA"
    VOLUME = "VOLUME"


class OperationType(enum.Enum):
    """The driver operation a statement or session event stands for."""

    TYPE_UNSPECIFIED = "TYPE_UNSPECIFIED"
    CREATE_SESSION = "CREATE_SESSION"
    DELETE_SESSION = "DELETE_SESSION"
    EXECUTE_STATEMENT = "EXECUTE_STATEMENT"
    EXECUTE_STATEMENT_ASYNC = "EXECUTE_STATEMENT_ASYNC"
    CLOSE_STATEMENT = "CLOSE_STATEMENT"
    CANCEL_STATEMENT = "CANCEL_STATEMENT"
    LIST_TYPE_INFO = "LIST_TYPE_INFO"
    LIST_CATALOGS = "LIST_CATALOGS"
    LIST_SCHEMAS = "LIST_SCHEMAS"
    LIST_TABLES = "LIST_TABLES"
    LIST_TABLE_TYPES = "LIST_TABLE_TYPES"
    LIST_COLUMNS = "LIST_COLUMNS"
    LIST_FUNCTIONS = "LIST_FUNCTIONS"
    LIST_PRIMARY_KEYS = "LIST_PRIMARY_KEYS"
    LIST_IMPORTED_KEYS = "LIST_IMPORTED_KEYS"
    LIST_EXPORTED_KEYS = "LIST_EXPORTED_KEYS"
    LIST_CROSS_REFERENCES = "LIST_CROSS_REFERENCES"


class ExecutionResultFormat(enum.Enum):
    """How a statement's result came back."""

    FORMAT_UNSPECIFIED = "FORMAT_UNSPECIFIED"
    INLINE_ARROW = "INLINE_ARROW"
    INLINE_JSON = "INLINE_JSON"
    EXTERNAL_LINKS = "EXTERNAL_LINKS"
    COLUMNAR_INLINE = "COLUMNAR_INLINE"


class DriverMode(enum.Enum):
    """The protocol the driver speaks to the server."""

    THRIFT = "THRIFT"
    SEA = "SEA"


class AuthMech(enum.Enum):
    """Authentication mechanism of a connection."""

    PAT = "PAT"
    OAUTH = "OAUTH"
    OTHER = "OTHER"


class AuthFlow(enum.Enum):
    """OAuth flow of a connection."""

    TOKEN_PASSTHROUGH = "TOKEN_PASSTHROUGH"
    CLIENT_CREDENTIALS = "CLIENT_CREDENTIALS"
    BROWSER_BASED_AUTHENTICATION = "BROWSER_BASED_AUTHENTICATION"
