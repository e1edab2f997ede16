"""Plain helpers of `actors.dbapi`: statement typing, driver info, row sizes, telemetry handles."""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import re
import sys
import time
import types
from collections.abc import Mapping
from typing import Any, Protocol

from actors import telemetry as _telemetry
from actors._export.classify import ErrorKind, classify_exception
from messages.commands import AuthProvider
from messages.config import TelemetrySettings
from messages.enums import StatementType
from messages.errors import error_code, error_message
from messages.events import ErrorOccurred
from messages.records import DriverConnectionParams
from messages.sysconfig import DriverInfo

logger = logging.getLogger("actors.dbapi")

_perf = time.perf_counter
# Possessive: no backtracking into skipped whitespace and comments, so matching is linear.
_LEADING_WORD = re.compile(r"(?:\s|--[^\n]*+|/\*.*?\*/|\()*+([A-Za-z]+)", re.DOTALL)
_QUERY_WORDS = frozenset(
    {"SELECT", "WITH", "VALUES", "PRAGMA", "EXPLAIN", "SHOW", "DESCRIBE", "DESC", "TABLE"}
)
_UPDATE_WORDS = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "UPSERT"})
_VERSION_ATTRS = ("__version__", "sqlite_version", "version")
_SCAN_CHARS = 4096
_HEAP_TYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: made at run time (Python classes, many C types)
_IMMUTABLE_TYPE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE: C types, static or made from a spec
_COPY_DIRECTION = re.compile(r"\)?\s*\b(TO|FROM)\s+(?:STDIN|STDOUT|PROGRAM|')", re.IGNORECASE)
_COMPOSABLE_MODULES = ("psycopg.sql", "psycopg2.sql")
_CACHED_CHARS = 2048
_CACHE_SIZE = 512
_TYPES: dict[str, StatementType] = {}  # any driver thread: get/set/clear are atomic


def statement_type_of(operation: object) -> StatementType:
    """QUERY, UPDATE or SQL from the operation's first keyword (comments and ``(`` skipped).

    The operation may be ``str``, ``bytes`` or a composed query object (psycopg's and psycopg2's
    ``sql.SQL`` / ``sql.Composed``: their first SQL piece is read, without a connection).
    ``COPY … TO`` is a QUERY, ``COPY … FROM`` an UPDATE. A driver runs the same few texts again
    and again, so the type of a plain ``str`` of up to `_CACHED_CHARS` is remembered (at most
    `_CACHE_SIZE` texts; the memo starts over when full): one dict look-up instead of a regex.
    """
    if type(operation) is str and len(operation) <= _CACHED_CHARS:
        known = _TYPES.get(operation)
        if known is None:
            if len(_TYPES) >= _CACHE_SIZE:
                _TYPES.clear()
            known = _TYPES[operation] = _statement_type(operation)
        return known
    return _statement_type(operation)


def _statement_type(operation: object) -> StatementType:
    try:
        text = _leading_text(operation, 0)
    except Exception:  # whatever the driver is handed, reading it never raises into its call
        return StatementType.SQL
    if text is None:
        return StatementType.SQL
    match = _LEADING_WORD.match(text, 0, _SCAN_CHARS)
    word = match.group(1).upper() if match else ""
    if word in _QUERY_WORDS:
        return StatementType.QUERY
    if word == "COPY":
        return _copy_type(text)
    return StatementType.UPDATE if word in _UPDATE_WORDS else StatementType.SQL


def _copy_type(text: str) -> StatementType:
    direction = _COPY_DIRECTION.search(text, 0, _SCAN_CHARS)
    if direction is None:
        return StatementType.SQL
    return StatementType.QUERY if direction.group(1).upper() == "TO" else StatementType.UPDATE


def _leading_text(operation: object, depth: int) -> str | None:
    """The text a statement starts with, or None when it cannot be read cheaply."""
    if isinstance(operation, str):
        return operation
    if isinstance(operation, bytes | bytearray | memoryview):
        return bytes(operation[:_SCAN_CHARS]).decode("utf-8", "ignore")
    if depth > 4:
        return None
    for module_name in _COMPOSABLE_MODULES:
        module = sys.modules.get(module_name)  # only a driver already imported can have made it
        if module is None:
            continue
        try:
            if isinstance(operation, module.SQL):
                text = getattr(operation, "string", None)  # psycopg2
                return text if isinstance(text, str) else operation.as_string(None)
            if isinstance(operation, module.Composed):
                for index, part in enumerate(operation):
                    found = _leading_text(part, depth + 1) if index < 8 else None
                    if found is not None and found.strip():
                        return found
                return None
        except Exception:
            return None
    return None


def driver_info_of(source: object) -> DriverInfo:
    """The driver's name and version from a module, a connect callable or a connection class.

    A module gives its ``__name__``; anything else its top-level package (``_sqlite3`` is read as
    ``sqlite3``). The version is the installed distribution's (``importlib.metadata``: module
    attributes such as psycopg2's ``__version__`` carry build flags, sqlite3's ``version`` is a
    frozen compatibility value), else the first of ``__version__``, ``sqlite_version``,
    ``version``.
    """
    try:
        return _cached_driver_info(source)
    except TypeError:  # unhashable
        return _driver_info(source)


@functools.lru_cache(maxsize=64)
def _cached_driver_info(source: object) -> DriverInfo:
    return _driver_info(source)


def _driver_info(source: object) -> DriverInfo:
    if isinstance(source, types.ModuleType):
        module: object | None = source
        name = source.__name__
    else:
        owner = str(getattr(source, "__module__", None) or type(source).__module__)
        top = owner.split(".", 1)[0]
        name = top.lstrip("_") or top
        module = sys.modules.get(name) or sys.modules.get(top)
    installed = _distribution_version(name.split(".", 1)[0])
    if installed is not None:
        return DriverInfo(name=name, version=installed)
    # The module's own dict: a deprecated attribute served by a module __getattr__ is skipped
    # rather than warned about.
    attributes = getattr(module, "__dict__", {})
    if not (name.isascii() and name.isprintable() and 0 < len(name) <= 128):
        name = "unknown"  # a module name that cannot go into User-Agent
    for attr in _VERSION_ATTRS:
        value = attributes.get(attr)
        if isinstance(value, str) and value.strip():
            try:
                return DriverInfo(name=name, version=value.strip())
            except ValueError:  # not usable in User-Agent: try the next attribute
                continue
    return DriverInfo(name=name, version="unknown")


def _distribution_version(top_level: str) -> str | None:
    """The version of the installed distribution that provides a top-level package, if any."""
    try:
        return importlib.metadata.version(top_level)
    except Exception:
        pass
    try:
        for distribution in _top_level_distributions().get(top_level, ()):
            return importlib.metadata.version(distribution)
    except Exception:
        logger.debug("telemetry: no distribution version for %s", top_level, exc_info=True)
    return None


@functools.cache
def _top_level_distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _row_bytes(row: object) -> int:
    """A cheap size estimate of one row: text and bytes by length, anything else 8 bytes."""
    try:
        if isinstance(row, dict):
            values: Any = row.values()
        elif isinstance(row, tuple | list) or hasattr(row, "keys"):  # sqlite3.Row has keys()
            values = row
        else:
            return sys.getsizeof(row)
        size = 0
        for value in values:
            if isinstance(value, str | bytes | bytearray | memoryview):
                size += len(value)
            else:
                size += 1 if value is None else 8
        return size
    except Exception:
        return 0


class _Target:
    """Where and as what one instrumented driver reports (fixed at `instrument()` time)."""

    __slots__ = ("address", "auth", "auth_type", "driver", "host", "http_path", "options", "params")

    def __init__(
        self,
        host: str,
        driver: DriverInfo,
        auth: AuthProvider | None,
        auth_type: str | None,
        properties: Mapping[str, object] | None,
        settings: TelemetrySettings | None,
        http_path: str | None,
        connection_params: DriverConnectionParams | None,
    ) -> None:
        # The checks `actors.connect()` would make, made now: bad code fails at setup, and later
        # connects cannot raise for them.
        address = _telemetry.check_setup(host, driver, settings, auth, properties, http_path)
        if auth_type is not None and (type(auth_type) is not str or not 0 < len(auth_type) <= 64):
            raise ValueError(f"auth_type must be a short str (e.g. 'pat') or None: {auth_type!r}")
        if connection_params is not None and not isinstance(
            connection_params, DriverConnectionParams
        ):
            raise ValueError(
                f"connection_params must be DriverConnectionParams or None, "
                f"got {type(connection_params).__name__}"
            )
        self.host = host
        self.address = address
        self.driver = driver
        self.auth = auth
        self.auth_type = auth_type
        self.options = (properties, settings)
        self.http_path = http_path
        if connection_params is None and http_path is not None:
            connection_params = DriverConnectionParams(http_path=http_path)
        self.params = connection_params


def _open_telemetry(target: _Target) -> Any:
    """One telemetry `Connection` for one DB connection, or None; never raises."""
    properties, settings = target.options
    try:
        return _telemetry.open_checked(  # checked by `_Target`: not again per connection
            target.address, properties, target.driver, target.auth, target.http_path, settings
        )
    except Exception:
        logger.debug("telemetry: could not open for %s", target.host, exc_info=True)
        return None


def _error(exc: Exception, session_id: str, statement_id: str | None = None) -> ErrorOccurred:
    return ErrorOccurred(
        error_name=type(exc).__name__,
        message=error_message(exc),
        error_code=error_code(exc),
        statement_id=statement_id,
        session_id=session_id,
        retryable=classify_exception(exc) is ErrorKind.RETRYABLE,
    )


def _type_name(kind: type) -> str:
    """The name Python's own messages give a type: ``module.Name`` for a C type, else ``Name``."""
    made_by_python = kind.__flags__ & (_HEAP_TYPE | _IMMUTABLE_TYPE) == _HEAP_TYPE
    if made_by_python or kind.__module__ == "builtins":
        return kind.__name__
    return f"{kind.__module__}.{kind.__name__}"


def _no_exit_protocol(raw: object) -> TypeError:
    name = _type_name(type(raw))
    return TypeError(f"'{name}' object does not support the context manager protocol")


class SessionOwner(Protocol):
    """What a cursor needs of its instrumented connection (imported by the connection module)."""

    _raw: Any
    _session: Any  # its `actors.dbapi._session.Session`


class Passthrough:
    """Everything a wrapper does not own is read from, written to and deleted on `_raw`."""

    __slots__ = ()
    _OWN: frozenset[str] = frozenset()

    def __getattr__(self, name: str) -> Any:
        return getattr(object.__getattribute__(self, "_raw"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(object.__getattribute__(self, "_raw"), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(object.__getattribute__(self, "_raw"), name)

    def __repr__(self) -> str:
        return f"<instrumented {object.__getattribute__(self, '_raw')!r}>"

    def __enter__(self) -> Any:
        """The driver's own `__enter__`; the wrapper stands in when it returns its object."""
        raw = object.__getattribute__(self, "_raw")
        enter = getattr(type(raw), "__enter__", None)
        if enter is None:
            raise _no_exit_protocol(raw)
        result = enter(raw)
        return self if result is raw else result
