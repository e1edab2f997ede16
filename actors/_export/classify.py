"""Sorting HTTP statuses and exceptions into terminal, retryable, or unknown failures."""

from __future__ import annotations

import enum
import re

import urllib3.exceptions

TERMINAL_STATUSES = frozenset({400, 401, 403, 404})
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

_STATUS_ATTRS = ("status", "status_code", "http_status", "code")
_RESPONSE_STATUS_ATTRS = ("status_code", "status")
_AUTH_NAME = re.compile(r"Auth|Unauthori[sz]ed|Forbidden")
_TRANSIENT_NAME = re.compile(r"Timeout|Connection")
_RETRYABLE_TYPES: tuple[type[BaseException], ...] = (
    TimeoutError,  # socket.timeout is an alias of it
    ConnectionError,  # refused, reset, aborted, broken pipe
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.TimeoutError,  # includes ReadTimeoutError, ConnectTimeoutError
)
# Base classes whose names say nothing about the failure.
_GENERIC_BASES = frozenset({"object", "BaseException", "Exception"})


class ErrorKind(enum.Enum):
    """How a failed call should be treated: give up, retry, or decide by policy."""

    TERMINAL = "TERMINAL"
    RETRYABLE = "RETRYABLE"
    UNKNOWN = "UNKNOWN"


def classify_status(status: int) -> ErrorKind:
    """Classify an HTTP status; statuses that are not errors (1xx-3xx) give UNKNOWN."""
    if status in TERMINAL_STATUSES:
        return ErrorKind.TERMINAL
    if status in RETRYABLE_STATUSES:
        return ErrorKind.RETRYABLE
    if 400 <= status < 500:
        return ErrorKind.TERMINAL
    if 500 <= status < 600:
        return ErrorKind.RETRYABLE
    return ErrorKind.UNKNOWN


def _as_status(value: object) -> int | None:
    # bool is an int subclass, but True is no HTTP status.
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return int(value)
    return None


def _safe_getattr(obj: object, name: str) -> object:
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def http_status_of(exc: BaseException) -> int | None:
    """Find an HTTP status carried by an exception or its ``.response``; never raises."""
    try:
        for name in _STATUS_ATTRS:
            status = _as_status(_safe_getattr(exc, name))
            if status is not None:
                return status
        response = _safe_getattr(exc, "response")
        if response is not None:
            for name in _RESPONSE_STATUS_ATTRS:
                status = _as_status(_safe_getattr(response, name))
                if status is not None:
                    return status
    except Exception:
        pass
    return None


def _class_names(exc: BaseException) -> list[str]:
    try:
        return [
            str(cls.__name__) for cls in type(exc).__mro__ if cls.__name__ not in _GENERIC_BASES
        ]
    except Exception:
        return []


def classify_exception(exc: BaseException) -> ErrorKind:
    """Classify an exception from an HTTP or driver call; never raises.

    A carried HTTP status decides first; then auth failures are terminal; then timeouts
    and connection failures are retryable; anything else (including a PEP 249
    ``OperationalError`` without a status) is UNKNOWN.
    """
    try:
        status = http_status_of(exc)
        if status is not None:
            return classify_status(status)
        names = _class_names(exc)
        if isinstance(exc, PermissionError) or any(_AUTH_NAME.search(n) for n in names):
            return ErrorKind.TERMINAL
        if isinstance(exc, _RETRYABLE_TYPES) or any(_TRANSIENT_NAME.search(n) for n in names):
            return ErrorKind.RETRYABLE
    except Exception:
        pass
    return ErrorKind.UNKNOWN
